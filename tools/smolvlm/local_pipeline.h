// The whole SmolVLM2 pipeline in one process (no gRPC), for `smolvlm run` and `bench-local`:
// the same chat pipeline the front serves (services/preprocess/core/chat_pipeline.h) over
// in-process stage clients (local_stages.h), generating on the decoder stage's BatchEngine.
#ifndef SMOLSERVE_TOOLS_SMOLVLM_LOCAL_PIPELINE_H_
#define SMOLSERVE_TOOLS_SMOLVLM_LOCAL_PIPELINE_H_

#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "absl/status/statusor.h"
#include "common/model/config.h"
#include "services/decoder/core/batch_engine.h"
#include "services/decoder/core/decoder_model.h"
#include "services/decoder/core/generation_stream.h"
#include "services/preprocess/core/chat_pipeline.h"
#include "services/preprocess/core/preprocessor.h"
#include "services/preprocess/core/media_cache.h"
#include "services/vision/core/vision_model.h"
#include "tools/smolvlm/local_stages.h"

namespace smolserve::cli {

struct LocalPipelineOptions {
  std::string model;  // folder or org/name[@revision]
  decoder::TextModelOptions decoder;  // dtype (float32 or bfloat16), int8 weights
  at::ScalarType vision_dtype = at::kFloat;
  preprocess::MediaLimits limits;
  decoder::DecoderLimits decoder_limits;
  int64_t kv_cache_budget_bytes = int64_t{2} << 30;
  // The front's media cache (bytes; 0: none, so every image goes through the vision model and
  // LocalRun captures its embeddings). bench-local --turns uses one, as a server would.
  int64_t media_cache_bytes = 0;
  bool prefix_cache = true;  // the decoder engine's (as the decoder stage's --prefix_cache)
};

struct LocalRun {
  preprocess::ChatResult result;
  at::Tensor image_hidden_states;  // every vision answer in order ([n, S, D]); undefined if none
  at::Tensor logits_last;          // float32 [B, V]: each conversation's first-token logits
  std::vector<std::string> text_with_special;  // the generated ids decoded with special tokens
};

class LocalPipeline {
 public:
  // Loads everything strictly: every checkpoint tensor must be used by the two models.
  static absl::StatusOr<std::unique_ptr<LocalPipeline>> Load(const LocalPipelineOptions& options);
  ~LocalPipeline();

  // One request, conversations one after another (so the captured tensors are in order).
  // Not for concurrent use.
  absl::StatusOr<LocalRun> Run(const preprocess::ChatRequest& request,
                               const preprocess::MediaAccess& access);

  const preprocess::Preprocessor& preprocessor() const { return *preprocessor_; }
  const model::ModelConfig& config() const { return config_; }
  const std::string& model_dir() const { return model_dir_; }

 private:
  LocalPipeline() = default;
  std::string model_dir_;
  model::ModelConfig config_;
  std::unique_ptr<preprocess::Preprocessor> preprocessor_;
  std::unique_ptr<vision::VisionModel> vision_;
  std::unique_ptr<decoder::DecoderModel> decoder_;
  std::unique_ptr<decoder::BatchEngine> engine_;
  std::unique_ptr<LocalVisionClient> vision_client_;
  std::unique_ptr<LocalDecoderClient> decoder_client_;
  std::unique_ptr<preprocess::MediaCache> media_cache_;
  std::unique_ptr<preprocess::ChatPipeline> pipeline_;
};

}  // namespace smolserve::cli

#endif  // SMOLSERVE_TOOLS_SMOLVLM_LOCAL_PIPELINE_H_
