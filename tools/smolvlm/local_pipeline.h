// The whole SmolVLM2 pipeline in one process (no gRPC): preprocessing, vision encoder +
// connector, decoder generation. Used by `smolvlm run` and `smolvlm bench-local`.
#ifndef SMOLSERVE_TOOLS_SMOLVLM_LOCAL_PIPELINE_H_
#define SMOLSERVE_TOOLS_SMOLVLM_LOCAL_PIPELINE_H_

#include <memory>
#include <string>

#include <ATen/core/Tensor.h>

#include "absl/status/statusor.h"
#include "common/model/config.h"
#include "proto/smolserve/v1/common.pb.h"
#include "services/decoder/core/generator.h"
#include "services/decoder/core/text_model.h"
#include "services/preprocess/core/preprocessor.h"
#include "services/vision/core/vision_model.h"

namespace smolserve::cli {

struct LocalPipelineOptions {
  std::string model;          // folder or org/name[@revision]
  at::ScalarType dtype;       // at::kFloat or at::kBFloat16
  preprocess::MediaLimits limits;
};

struct LocalRun {
  preprocess::PreparedBatch prepared;
  at::Tensor image_hidden_states;  // [n_real, S, D] or undefined
  at::Tensor logits_last;          // float32 [B, V]: last position of the first forward
  decoder::GenerateResult generated;
  std::vector<std::string> text;             // special tokens skipped
  std::vector<std::string> text_with_special;
  double preprocess_ms = 0, vision_ms = 0, prefill_ms = 0, decode_ms = 0;
};

class LocalPipeline {
 public:
  // Loads everything strictly: every checkpoint tensor must be used by the two models.
  static absl::StatusOr<std::unique_ptr<LocalPipeline>> Load(const LocalPipelineOptions& options);

  // `generation` as on the wire (max_new_tokens, sampling, ignore_eos, stop).
  absl::StatusOr<LocalRun> Run(const preprocess::PrepareRequest& request,
                               const preprocess::MediaAccess& access,
                               const v1::GenerationParams& generation) const;

  const preprocess::Preprocessor& preprocessor() const { return *preprocessor_; }
  const vision::VisionModel& vision() const { return *vision_; }
  const decoder::TextModel& text() const { return *text_; }
  const model::ModelConfig& config() const { return config_; }
  const std::string& model_dir() const { return model_dir_; }

 private:
  LocalPipeline() = default;
  std::string model_dir_;
  model::ModelConfig config_;
  model::GenerationConfig generation_config_;
  std::unique_ptr<preprocess::Preprocessor> preprocessor_;
  std::unique_ptr<vision::VisionModel> vision_;
  std::unique_ptr<decoder::TextModel> text_;
};

}  // namespace smolserve::cli

#endif  // SMOLSERVE_TOOLS_SMOLVLM_LOCAL_PIPELINE_H_
