// The preprocessing half of SmolVLM2: conversations in; token ids, masks and pixel tiles out.
//
// Pipeline per request (reference §1–3, §8): read each media item (MediaAccess), decode
// (image: PNG/JPEG/WebP/BMP/GIF; video: FFmpeg), resize/tile images exactly as the
// reference image processor, sample and resize video frames as the reference video
// processor, render the chat template, expand the placeholders into the image-token
// layout, tokenize, and left-pad the batch. Limits are checked before expensive work.
#ifndef SMOLSERVE_SERVICES_PREPROCESS_CORE_PREPROCESSOR_H_
#define SMOLSERVE_SERVICES_PREPROCESS_CORE_PREPROCESSOR_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "absl/status/statusor.h"
#include "services/preprocess/core/chat_template.h"
#include "services/preprocess/core/limits.h"
#include "services/preprocess/core/media_source.h"
#include "services/preprocess/core/processor_config.h"
#include "services/preprocess/core/request.h"
#include "services/preprocess/core/tokenizer/tokenizer.h"

namespace smolserve::preprocess {

struct PreprocessorOptions {
  std::string model_dir;     // tokenizer, chat template and processor files
  MediaLimits limits;
  MediaAccess media_access;  // media_access.max_bytes is raised/lowered to limits.max_encoded_bytes
  int pad_token_id = 2;      // <|im_end|>; batches are left-padded with it
};

// What one media item became.
struct MediaInfo {
  enum class Kind { kImage, kVideo };
  Kind kind = Kind::kImage;
  int conversation = 0;     // index in the batch
  int first_tile = 0;       // index of its first array in the conversation's pixel_values row
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
  double decode_ms = 0;     // decoding + resizing time of this item
};

struct PreparedBatch {
  std::vector<std::string> prompt_template;       // rendered chat template, per conversation
  std::vector<std::string> prompt_expanded;       // after placeholder expansion
  std::vector<std::vector<int32_t>> input_ids;    // left-padded to one length
  std::vector<std::vector<int32_t>> attention_mask;
  // float32 [B, N_max, 3, T, T]; all-zero arrays pad rows with fewer tiles. Undefined
  // when no conversation has media.
  at::Tensor pixel_values;
  // uint8 [B, N_max, T, T]: 1 over real arrays, 0 over padding arrays.
  at::Tensor pixel_attention_mask;
  std::vector<MediaInfo> media;
  int image_seq_len = 64;
  int num_real_tiles() const;
  int prompt_tokens(int b) const;  // unpadded length of row b
};

class Preprocessor {
 public:
  static absl::StatusOr<std::unique_ptr<Preprocessor>> Create(const PreprocessorOptions& options);

  // Thread-safe; each call is independent.
  absl::StatusOr<PreparedBatch> Prepare(const PrepareRequest& request) const;
  // Same, with the media access (base directory) of this request.
  absl::StatusOr<PreparedBatch> Prepare(const PrepareRequest& request,
                                        const MediaAccess& access) const;

  const Tokenizer& tokenizer() const { return *tokenizer_; }
  const ProcessorConfig& config() const { return config_; }
  const PreprocessorOptions& options() const { return options_; }

 private:
  Preprocessor() = default;
  PreprocessorOptions options_;
  ProcessorConfig config_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::string model_template_;  // the folder's Jinja text ("" if none)
};

}  // namespace smolserve::preprocess

#endif  // SMOLSERVE_SERVICES_PREPROCESS_CORE_PREPROCESSOR_H_
