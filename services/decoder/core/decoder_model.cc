#include "services/decoder/core/decoder_model.h"

#include "common/status/status_macros.h"

namespace smolserve::decoder {

absl::StatusOr<std::unique_ptr<DecoderModel>> LoadDecoderModel(const std::string& model_dir,
                                                               at::ScalarType dtype,
                                                               model::WeightStore* weights) {
  ASSIGN_OR_RETURN(model::ModelConfig config, model::LoadModelConfig(model_dir));
  std::unique_ptr<model::WeightStore> own;
  if (weights == nullptr) {
    ASSIGN_OR_RETURN(own, model::WeightStore::Open(model_dir));
    weights = own.get();
  }
  auto dm = std::make_unique<DecoderModel>();
  TextModelOptions text_options;
  text_options.dtype = dtype;
  ASSIGN_OR_RETURN(dm->model, TextModel::Create(config, *weights, text_options));
  ASSIGN_OR_RETURN(dm->tokenizer, tokenizer::Tokenizer::FromModelDir(model_dir));
  absl::StatusOr<model::GenerationConfig> gen = model::LoadGenerationConfig(model_dir);
  if (gen.ok()) {
    dm->generation_config = *gen;
  } else if (gen.status().code() != absl::StatusCode::kNotFound) {
    return gen.status();
  }
  return dm;
}

}  // namespace smolserve::decoder
