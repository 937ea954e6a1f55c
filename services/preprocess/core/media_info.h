// What preprocessing made of one media item: enough to build its prompt and place its
// embeddings again without decoding it (what a media cache keeps), and its cache keys.
#ifndef SMOLSERVE_SERVICES_PREPROCESS_CORE_MEDIA_INFO_H_
#define SMOLSERVE_SERVICES_PREPROCESS_CORE_MEDIA_INFO_H_

#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "common/cache/sha256.h"

namespace smolserve::preprocess {

// The keys a media item is cached under (media_key.h): by content when the request carries
// its bytes (data, path or URL), by the client's id when it names one. Either may be unset.
struct MediaKeys {
  std::optional<cache::Digest> content;
  std::optional<cache::Digest> id;
  bool empty() const { return !content && !id; }
};

struct MediaInfo {
  enum class Kind { kImage, kVideo };
  Kind kind = Kind::kImage;
  int conversation = 0;     // index in the batch
  // Index of its first array in the conversation's pixel_values row; -1 when the item came
  // from a cache (it has no arrays there).
  int first_tile = 0;
  int num_tiles = 0;        // arrays it contributed (tiles + global image, or frames)
  int rows = 0, cols = 0;   // image grid (0, 0 = single image)
  int source_height = 0, source_width = 0;
  // Video only.
  std::vector<int64_t> sampled_frame_indices;          // into the decoded frames
  std::vector<std::pair<int, int>> timestamps;          // (minutes, seconds) per frame
  int duration_int = 0;                                 // whole seconds (header)
  double fps = 0;                                       // header average frame rate
  int64_t total_num_frames = 0;                         // header frame count
  int64_t decoded_frames = 0;
  double decode_ms = 0;     // decoding + resizing time of this item (reading + hashing if cached)
  // Set when the caller asked for media keys (a MediaLookup was given).
  MediaKeys keys;
  // True when the caller's lookup supplied this item: it was neither decoded nor tiled.
  bool from_cache = false;

  // Approximate bytes this record occupies (for byte-bounded caches).
  int64_t ApproximateBytes() const {
    return static_cast<int64_t>(sizeof(MediaInfo) + sampled_frame_indices.capacity() * sizeof(int64_t) +
                                timestamps.capacity() * sizeof(std::pair<int, int>));
  }
};

}  // namespace smolserve::preprocess

#endif  // SMOLSERVE_SERVICES_PREPROCESS_CORE_MEDIA_INFO_H_
