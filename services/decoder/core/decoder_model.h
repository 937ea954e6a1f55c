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
#include "common/tokenizer/tokenizer.h"
#include "services/decoder/core/text_model.h"

namespace smolserve::decoder {

struct DecoderModel {
  std::unique_ptr<TextModel> model;
  std::unique_ptr<tokenizer::Tokenizer> tokenizer;
  model::GenerationConfig generation_config;
};

// Loads the text model (`dtype`: float32 or bfloat16) from the folder's checkpoint, the
// tokenizer and generation_config.json (optional). With `weights`, the text model takes its
// tensors from that store (the caller checks that every tensor was used); otherwise the
// folder's checkpoint is opened here.
absl::StatusOr<std::unique_ptr<DecoderModel>> LoadDecoderModel(
    const std::string& model_dir, at::ScalarType dtype, model::WeightStore* weights = nullptr);

}  // namespace smolserve::decoder

#endif  // SMOLSERVE_SERVICES_DECODER_CORE_DECODER_MODEL_H_
