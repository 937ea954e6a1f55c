#include "services/decoder/core/decoder_model.h"

#include "absl/strings/str_cat.h"
#include "common/runtime/dtype.h"
#include "common/status/status_macros.h"

namespace smolserve::decoder {

absl::StatusOr<TextModelOptions> DecoderOptionsFromFlags(absl::string_view dtype_flag,
                                                         absl::string_view weights_flag) {
  const bool int8 = weights_flag == "int8";
  if (!int8 && !weights_flag.empty() && weights_flag != "f32" && weights_flag != "bf16") {
    return absl::InvalidArgumentError(
        absl::StrCat("--weights '", weights_flag, "': expected f32, bf16 or int8"));
  }
  ASSIGN_OR_RETURN(const at::ScalarType dtype,
                   ResolveDtype(int8 && dtype_flag == "auto" ? "f32" : dtype_flag,
                                DtypeStage::kDecoder));
  TextModelOptions o;
  o.dtype = dtype;
  o.int8_weights = int8;
  if (int8 && dtype != at::kFloat) {
    return absl::InvalidArgumentError("--weights int8 computes in float32: use --dtype f32 or auto");
  }
  if (!int8 && !weights_flag.empty() && weights_flag != DtypeName(dtype)) {
    return absl::InvalidArgumentError(absl::StrCat("--weights ", weights_flag, " with --dtype ",
                                                   DtypeName(dtype), ": weights are kept in the ",
                                                   "compute dtype (or int8)"));
  }
  return o;
}

std::string WeightsName(const TextModelOptions& options) {
  return options.int8_weights ? "int8" : DtypeName(options.dtype);
}

absl::StatusOr<std::unique_ptr<DecoderModel>> LoadDecoderModel(const std::string& model_dir,
                                                               at::ScalarType dtype,
                                                               model::WeightStore* weights) {
  TextModelOptions options;
  options.dtype = dtype;
  return LoadDecoderModel(model_dir, options, weights);
}

absl::StatusOr<std::unique_ptr<DecoderModel>> LoadDecoderModel(const std::string& model_dir,
                                                               const TextModelOptions& options,
                                                               model::WeightStore* weights) {
  ASSIGN_OR_RETURN(model::ModelConfig config, model::LoadModelConfig(model_dir));
  std::unique_ptr<model::WeightStore> own;
  if (weights == nullptr) {
    ASSIGN_OR_RETURN(own, model::WeightStore::Open(model_dir));
    weights = own.get();
  }
  auto dm = std::make_unique<DecoderModel>();
  ASSIGN_OR_RETURN(dm->model, TextModel::Create(config, *weights, options));
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
