// Test helper: reads a golden fixture case (tests/golden/cases/<name>) for the decoder tests.
#ifndef SMOLSERVE_SERVICES_DECODER_CORE_GOLDEN_CASE_H_
#define SMOLSERVE_SERVICES_DECODER_CORE_GOLDEN_CASE_H_

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "absl/status/statusor.h"

namespace smolserve::decoder::testing {

inline constexpr char kCasesDir[] = "tests/golden/cases";
inline constexpr char kTinyModelDir[] = "tests/golden/models/tiny-smolvlm2-256m-geometry";
inline constexpr char kTinyModelBf16Dir[] =
    "tests/golden/models/tiny-smolvlm2-256m-geometry-bf16";

struct GoldenCase {
  std::string name;
  std::vector<std::vector<int64_t>> input_ids;
  std::vector<std::vector<int64_t>> attention_mask;
  std::vector<std::vector<int64_t>> generated_ids;       // fp32 model, 16 greedy tokens
  std::vector<std::vector<int64_t>> bf16_generated_ids;  // bf16 model (empty if absent)
  at::Tensor image_hidden_states;       // fp32 [n, 64, 32]; undefined when no images
  at::Tensor logits_last;               // [B, V] float32
  at::Tensor top5_values;               // [B, 16, 5] float32
  at::Tensor top5_ids;                  // [B, 16, 5] int64
  at::Tensor bf16_image_hidden_states;  // bf16 model's features (stored as float32)
  at::Tensor bf16_logits_last;          // [B, V] float32 (undefined if absent)

  at::Tensor InputIdsTensor() const;
  at::Tensor AttentionMaskTensor() const;
};

// Names of the cases under kCasesDir whose case.json has `input_ids`, sorted.
std::vector<std::string> DecoderCaseNames();

absl::StatusOr<GoldenCase> LoadGoldenCase(const std::string& name);

}  // namespace smolserve::decoder::testing

#endif  // SMOLSERVE_SERVICES_DECODER_CORE_GOLDEN_CASE_H_
