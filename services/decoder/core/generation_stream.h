// One prompt's generation on the batch engine as a stream of text deltas. This is the decoder's
// serving behaviour in one place, used by the decoder stage's gRPC adapter and by in-process
// callers (the CLI):
//  - the client's GenerationParams become a core GenerateRequest (FillGenerateRequest:
//    ValidateGenerationParams, generation_config.json defaults, the server's limits);
//  - prompt and image embeddings are checked (length, finiteness) before anything is queued;
//  - tokens become text by incremental detokenization (special tokens skipped), and stop
//    strings end the generation without being streamed (StopMatcher);
//  - the caller's poll (client gone, deadline) ends a waiting or running sequence at the next
//    engine iteration and frees its KV cache.
#ifndef SMOLSERVE_SERVICES_DECODER_CORE_GENERATION_STREAM_H_
#define SMOLSERVE_SERVICES_DECODER_CORE_GENERATION_STREAM_H_

#include <cstdint>
#include <functional>
#include <vector>

#include <ATen/core/Tensor.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/generation/generation_params.h"
#include "common/generation/generation_result.h"
#include "services/decoder/core/batch_engine.h"
#include "services/decoder/core/decoder_model.h"
#include "services/decoder/core/generator.h"

namespace smolserve::decoder {

struct DecoderLimits {
  int64_t default_max_new_tokens = 256;  // when neither request nor generation_config says
  GenerationLimits generation;           // max_new_tokens, stop strings
  int64_t max_prompt_tokens = 8192;
};

// Builds a core GenerateRequest's generation settings from the client's parameters: validation
// (INVALID_ARGUMENT naming the field), generation_config.json defaults, then the request's
// values. Prompt, images and callbacks are left to the caller.
absl::Status FillGenerateRequest(const GenerationParams& params,
                                 const model::GenerationConfig& defaults,
                                 const DecoderLimits& limits, GenerateRequest* out);

struct StreamInput {
  std::vector<int32_t> input_ids;  // one prompt, no padding
  at::Tensor image_hidden_states;  // [n_images, S, D] for the <image> positions, or undefined
  GenerationParams generation;
};

// All run on the engine thread and must not block.
struct StreamCallbacks {
  // Polled before every engine iteration; non-OK ends the sequence with that status
  // (CANCELLED: the client went away; DEADLINE_EXCEEDED). May be empty.
  std::function<absl::Status()> poll;
  // The sequence left the waiting queue and got its KV cache. May be empty.
  std::function<void()> on_start;
  // One call per generated token (text may be empty: incomplete character or held back as a
  // possible stop string start), then, at the end, one call with no token ids carrying the
  // text held back until then (only when non-empty). Required.
  std::function<void(TokenDelta)> on_delta;
  // Exactly once, after the last on_delta: the outcome, or the error that ended the sequence.
  std::function<void(absl::StatusOr<GenerationOutcome>)> on_done;
  // Observer of the logits of the first token (BatchEngine's on_first_logits). May be empty.
  std::function<void(absl::Span<const float> logits)> on_first_logits;
};

// Queues the generation. Errors returned here mean nothing was queued and no callback will
// run: INVALID_ARGUMENT (parameters, empty prompt, embeddings of the wrong shape or not
// finite), RESOURCE_EXHAUSTED (prompt over limits.max_prompt_tokens, the engine's queue full,
// or more KV cache than its budget), UNAVAILABLE (engine shut down). `model` and `engine` must
// outlive the generation.
absl::Status SubmitStream(BatchEngine& engine, const DecoderModel& model,
                          const DecoderLimits& limits, StreamInput input, StreamCallbacks callbacks);

}  // namespace smolserve::decoder

#endif  // SMOLSERVE_SERVICES_DECODER_CORE_GENERATION_STREAM_H_
