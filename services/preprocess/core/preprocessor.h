// The preprocessing half of SmolVLM2: conversations in; token ids, masks and pixel tiles out.
//
// Pipeline per request (reference §1–3, §8): read each media item (MediaAccess), decode
// (image: PNG/JPEG/WebP/BMP/GIF; video: FFmpeg), resize/tile images exactly as the
// reference image processor, sample and resize video frames as the reference video
// processor, render the chat template, expand the placeholders into the image-token
// layout, tokenize, and left-pad the batch. Limits are checked before expensive work.
// A caller with a media cache passes a MediaLookup: items it already holds (by content or by
// client id, media_key.h) skip decoding and tiling and only shape the prompt.
#ifndef SMOLSERVE_SERVICES_PREPROCESS_CORE_PREPROCESSOR_H_
#define SMOLSERVE_SERVICES_PREPROCESS_CORE_PREPROCESSOR_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "absl/status/statusor.h"
#include "services/preprocess/core/chat_template.h"
#include "common/cache/sha256.h"
#include "common/concurrency/byte_budget.h"
#include "common/pixels/normalize.h"
#include "services/preprocess/core/limits.h"
#include "services/preprocess/core/media_info.h"
#include "services/preprocess/core/media_source.h"
#include "services/preprocess/core/processor_config.h"
#include "services/preprocess/core/request.h"
#include "common/tokenizer/tokenizer.h"

namespace smolserve::preprocess {

struct PreprocessorOptions {
  std::string model_dir;     // tokenizer, chat template and processor files
  MediaLimits limits;
  // Bound on the pixel memory of all requests in flight (shared, may be null): each Prepare
  // reserves its pixel tensors before allocating them and holds the reservation in the
  // PreparedBatch; when it does not fit, RESOURCE_EXHAUSTED with a retry hint.
  ByteBudget* media_budget = nullptr;
  MediaAccess media_access;  // media_access.max_bytes is raised/lowered to limits.max_encoded_bytes
  int pad_token_id = 2;      // <|im_end|>; batches are left-padded with it
};

struct PreparedBatch {
  std::vector<std::string> prompt_template;       // rendered chat template, per conversation
  std::vector<std::string> prompt_expanded;       // after placeholder expansion
  std::vector<std::vector<int32_t>> input_ids;    // left-padded to one length
  std::vector<std::vector<int32_t>> attention_mask;
  // uint8 [B, N_max, 3, T, T]: the RGB values (before rescaling and normalisation) of the
  // arrays of every media item not supplied by a MediaLookup, in prompt order; zero arrays pad
  // rows with fewer tiles. Undefined when no conversation has such media. They travel to the
  // vision stage as they are (4x fewer bytes than float32) and are normalised there.
  at::Tensor pixels;
  // uint8 [B, N_max]: each array's normalisation formula (pixels::NormalizeFormula: image or
  // video processor).
  at::Tensor tile_formula;
  pixels::NormalizeParams normalize;
  // uint8 [B, N_max, T, T]: 1 over real arrays, 0 over padding arrays.
  at::Tensor pixel_attention_mask;
  // float32 [B, N_max, 3, T, T]: `pixels` normalised as the reference processor outputs them
  // (padding arrays all zero); computed on each call. Undefined when `pixels` is.
  at::Tensor pixel_values() const;
  // Every media item, batch order then prompt order (the order of its embeddings).
  std::vector<MediaInfo> media;
  int image_seq_len = 64;
  // The pixel memory of this batch counted against PreprocessorOptions::media_budget; given
  // back when the batch is destroyed.
  std::shared_ptr<ByteBudget::Reservation> media_reservation;
  int num_real_tiles() const;      // tiles + frames of every media item, cached or not
  int num_cached_tiles() const;    // those of the items a MediaLookup supplied
  int prompt_tokens(int b) const;  // unpadded length of row b
};

// A caller's store of media items preprocessed before (a media cache). Called once per media
// item, in the order of PreparedBatch::media (`index`), after its bytes are read and its keys
// computed (keys.content when the item has a source, keys.id when it has an id). Returning
// the MediaInfo an earlier Prepare produced for those keys skips decoding and tiling the
// item: it gets no arrays in pixel_values and is marked from_cache. nullopt: processed as usual
// (an item with only an id is then NOT_FOUND).
using MediaLookup = std::function<std::optional<MediaInfo>(int index, const MediaKeys& keys)>;

class Preprocessor {
 public:
  static absl::StatusOr<std::unique_ptr<Preprocessor>> Create(const PreprocessorOptions& options);

  // Thread-safe; each call is independent.
  absl::StatusOr<PreparedBatch> Prepare(const PrepareRequest& request) const;
  // Same, with the media access (base directory) of this request.
  absl::StatusOr<PreparedBatch> Prepare(const PrepareRequest& request,
                                        const MediaAccess& access) const;
  // Same, consulting `lookup` (may be empty) for every media item; with a lookup, every
  // MediaInfo carries its keys so the caller can store what it did not find.
  absl::StatusOr<PreparedBatch> Prepare(const PrepareRequest& request, const MediaAccess& access,
                                        const MediaLookup& lookup) const;

  const ::smolserve::tokenizer::Tokenizer& tokenizer() const { return *tokenizer_; }
  const ProcessorConfig& config() const { return config_; }
  const PreprocessorOptions& options() const { return options_; }
  // ModelIdentity() of the model folder, computed once by Create: part of every media key.
  const cache::Digest& model_identity() const { return model_identity_; }

 private:
  Preprocessor() = default;
  PreprocessorOptions options_;
  ProcessorConfig config_;
  std::unique_ptr<::smolserve::tokenizer::Tokenizer> tokenizer_;
  std::string model_template_;  // the folder's Jinja text ("" if none)
  cache::Digest model_identity_{};
};

}  // namespace smolserve::preprocess

#endif  // SMOLSERVE_SERVICES_PREPROCESS_CORE_PREPROCESSOR_H_
