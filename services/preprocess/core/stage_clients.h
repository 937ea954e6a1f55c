// The two stages the front calls, as small interfaces, so that one chat pipeline
// (chat_pipeline.h) runs over gRPC (the front's server code) and in one process (the CLI).
#ifndef SMOLSERVE_SERVICES_PREPROCESS_CORE_STAGE_CLIENTS_H_
#define SMOLSERVE_SERVICES_PREPROCESS_CORE_STAGE_CLIENTS_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/concurrency/cancellation.h"
#include "common/generation/generation_params.h"
#include "common/generation/generation_result.h"
#include "common/pixels/normalize.h"

namespace smolserve::preprocess {

// What a downstream call inherits from the request it serves.
struct CallContext {
  absl::Time deadline = absl::InfiniteFuture();
  CancellationToken* cancel = nullptr;  // may be null; the call aborts when it is raised
  std::string request_id;
  bool cancelled() const { return cancel != nullptr && cancel->cancelled(); }
};

// Tiles for the vision stage as they travel: uint8 RGB values and how each is normalised
// (common/pixels/normalize.h).
struct EncodeTiles {
  at::Tensor pixels;                // uint8 [N, 3, T, T], N real tiles
  at::Tensor formulas;              // uint8 [N]: pixels::NormalizeFormula of each tile
  pixels::NormalizeParams normalize;
  at::Tensor pixel_attention_mask;  // uint8 [N, T, T]
};

struct EncodeOutcome {
  at::Tensor image_hidden_states;  // [n_tiles, image_seq_len, text_hidden], the stage's dtype
  int cached_tiles = 0;            // answered from the vision stage's embedding cache
  int64_t wire_bytes = 0;          // embedding bytes received (0 in process)
  std::string model_revision;      // of the vision model that computed them ("" unknown)
};

// The vision stage. Implementations are thread-safe.
class VisionClient {
 public:
  virtual ~VisionClient() = default;
  // Errors as the stage reports them (UNAVAILABLE when unreachable, DEADLINE_EXCEEDED,
  // CANCELLED, RESOURCE_EXHAUSTED when its queue is full, ...).
  virtual absl::StatusOr<EncodeOutcome> Encode(const EncodeTiles& tiles, const CallContext& ctx) = 0;
};

struct GenerateCall {
  std::vector<int32_t> input_ids;  // one prompt, no padding
  at::Tensor image_hidden_states;  // for the prompt's <image> positions, in order; or undefined
  GenerationParams generation;
  // The vision model revision of image_hidden_states ("" none): the decoder refuses another.
  std::string vision_model_revision;
};

// The decoder stage. Implementations are thread-safe.
class DecoderClient {
 public:
  virtual ~DecoderClient() = default;
  // Blocks until the generation ends. `on_delta` runs on the calling thread, in order, for
  // every piece of the answer (the stream of TokenDelta the decoder produces).
  virtual absl::StatusOr<GenerationOutcome> Generate(
      const GenerateCall& call, const CallContext& ctx,
      const std::function<void(const TokenDelta&)>& on_delta) = 0;
};

}  // namespace smolserve::preprocess

#endif  // SMOLSERVE_SERVICES_PREPROCESS_CORE_STAGE_CLIENTS_H_
