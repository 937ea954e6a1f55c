// `smolvlm make-model`: a complete Hugging Face-layout model folder with random weights.
#ifndef SMOLSERVE_TOOLS_SMOLVLM_MAKE_MODEL_H_
#define SMOLSERVE_TOOLS_SMOLVLM_MAKE_MODEL_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/model/config.h"

namespace smolserve::cli {

struct TensorSpec {
  std::string name;           // the checkpoint key
  std::vector<int64_t> shape;
  enum class Init { kNormal, kOnes, kZeros } init = Init::kNormal;
  double std = 0.02;          // for kNormal
};

// Every tensor a SmolVLM checkpoint of this configuration holds (reference §4.6, §5.2, §6.3).
std::vector<TensorSpec> CheckpointLayout(const model::ModelConfig& config);

struct MakeModelOptions {
  std::string preset;        // a folder under presets_dir
  std::string presets_dir;   // models/presets
  std::string tokenizer_dir; // models/SmolVLM-256M-Instruct
  std::string out_dir;
  uint64_t seed = 0;
  bool bf16 = false;         // store weights as bfloat16 instead of float32
};

// Writes config/processor/tokenizer files and model.safetensors. Weights are
// N(0, std) with std = 0.02 (the reference's initializer_range) for projections and
// embeddings, layer norms at 1/0, the same for a given seed on every machine.
absl::Status MakeModel(const MakeModelOptions& options);

}  // namespace smolserve::cli

#endif  // SMOLSERVE_TOOLS_SMOLVLM_MAKE_MODEL_H_
