// The chat pipeline's stage clients in one process (the CLI): the vision model called
// directly, and generation on the same BatchEngine + SubmitStream the decoder stage serves
// through, so `smolvlm run` behaves as the served path does.
#ifndef SMOLSERVE_TOOLS_SMOLVLM_LOCAL_STAGES_H_
#define SMOLSERVE_TOOLS_SMOLVLM_LOCAL_STAGES_H_

#include <functional>

#include <ATen/core/Tensor.h>

#include "absl/types/span.h"
#include "services/decoder/core/batch_engine.h"
#include "services/decoder/core/decoder_model.h"
#include "services/decoder/core/generation_stream.h"
#include "services/preprocess/core/stage_clients.h"
#include "services/vision/core/vision_model.h"

namespace smolserve::cli {

class LocalVisionClient final : public preprocess::VisionClient {
 public:
  explicit LocalVisionClient(const vision::VisionModel* model) : model_(model) {}
  absl::StatusOr<preprocess::EncodeOutcome> Encode(const preprocess::EncodeTiles& tiles,
                                                   const preprocess::CallContext& ctx) override;
  // Observer of every answer (the CLI's dumps). Set before use; called on the caller's thread.
  std::function<void(const at::Tensor& image_hidden_states)> on_output;

 private:
  const vision::VisionModel* model_;
};

class LocalDecoderClient final : public preprocess::DecoderClient {
 public:
  // All must outlive the client.
  LocalDecoderClient(decoder::BatchEngine* engine, const decoder::DecoderModel* model,
                     decoder::DecoderLimits limits)
      : engine_(engine), model_(model), limits_(limits) {}
  absl::StatusOr<GenerationOutcome> Generate(
      const preprocess::GenerateCall& call, const preprocess::CallContext& ctx,
      const std::function<void(const TokenDelta&)>& on_delta) override;
  // Observer of each generation's first-token logits (float32 [V]), on the engine thread.
  std::function<void(absl::Span<const float> logits)> on_first_logits;

 private:
  decoder::BatchEngine* engine_;
  const decoder::DecoderModel* model_;
  decoder::DecoderLimits limits_;
};

}  // namespace smolserve::cli

#endif  // SMOLSERVE_TOOLS_SMOLVLM_LOCAL_STAGES_H_
