// Writes the CLI's --dump-dir files: outputs.json and tensors.safetensors.
#ifndef SMOLSERVE_TOOLS_SMOLVLM_DUMP_H_
#define SMOLSERVE_TOOLS_SMOLVLM_DUMP_H_

#include <string>

#include "absl/status/status.h"
#include "common/safetensors/safetensors.h"
#include "nlohmann/json.hpp"
#include "services/preprocess/core/preprocessor.h"

namespace smolserve::cli {

// outputs.json fields of a prepared batch (prompt_template, prompt_expanded, input_ids,
// attention_mask, media with video sampling details).
nlohmann::ordered_json PreparedToJson(const preprocess::PreparedBatch& batch);

// Adds pixel_values (float32) and pixel_attention_mask (uint8) when the batch has media.
absl::Status AddPreparedTensors(const preprocess::PreparedBatch& batch,
                                safetensors::Writer& writer);

// Creates `dir` (and parents) and writes outputs.json + tensors.safetensors.
absl::Status WriteDump(const std::string& dir, const nlohmann::ordered_json& outputs,
                       const safetensors::Writer& tensors);

}  // namespace smolserve::cli

#endif  // SMOLSERVE_TOOLS_SMOLVLM_DUMP_H_
