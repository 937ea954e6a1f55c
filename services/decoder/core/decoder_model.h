// What the decoder serves, loaded from a model folder: the text model, the tokenizer that turns
// its tokens into text, and generation_config.json's defaults. Shared by the decoder stage and
// the in-process pipeline of the CLI.
#ifndef SMOLSERVE_SERVICES_DECODER_CORE_DECODER_MODEL_H_
#define SMOLSERVE_SERVICES_DECODER_CORE_DECODER_MODEL_H_

#include <memory>
#include <string>

#include <ATen/core/Tensor.h>

#include "absl/status/statusor.h"
#include "common/model/config.h"
#include "common/model/weights.h"
#include "absl/strings/string_view.h"
#include "common/tokenizer/tokenizer.h"
#include "services/decoder/core/text_model.h"

namespace smolserve::decoder {

struct DecoderModel {
  std::unique_ptr<TextModel> model;
  std::unique_ptr<tokenizer::Tokenizer> tokenizer;
  model::GenerationConfig generation_config;
};

// The text model's options from the --dtype and --weights flags of the decoder stage and the
// CLI: `dtype_flag` as common/runtime/dtype.h; `weights_flag` "" (weights in the compute
// dtype), "f32" / "bf16" (must be that dtype) or "int8" (int8 linear layers, float32 compute;
// with --dtype auto the compute dtype becomes f32). INVALID_ARGUMENT for other values and
// combinations.
absl::StatusOr<TextModelOptions> DecoderOptionsFromFlags(absl::string_view dtype_flag,
                                                         absl::string_view weights_flag);
// "f32", "bf16" or "int8": the weights a model with these options reads while decoding.
std::string WeightsName(const TextModelOptions& options);

// Loads the text model (options: dtype float32 or bfloat16, int8 weights) from the folder's
// checkpoint, the tokenizer and generation_config.json (optional). With `weights`, the text
// model takes its tensors from that store (the caller checks that every tensor was used);
// otherwise the folder's checkpoint is opened here.
absl::StatusOr<std::unique_ptr<DecoderModel>> LoadDecoderModel(
    const std::string& model_dir, const TextModelOptions& options,
    model::WeightStore* weights = nullptr);
absl::StatusOr<std::unique_ptr<DecoderModel>> LoadDecoderModel(
    const std::string& model_dir, at::ScalarType dtype, model::WeightStore* weights = nullptr);

}  // namespace smolserve::decoder

#endif  // SMOLSERVE_SERVICES_DECODER_CORE_DECODER_MODEL_H_
