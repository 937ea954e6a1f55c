#include "services/decoder/core/golden_case.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/safetensors/safetensors.h"
#include "common/safetensors/torch_tensors.h"
#include "common/status/status_macros.h"

namespace smolserve::decoder::testing {
namespace {

absl::StatusOr<nlohmann::json> ReadJson(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  nlohmann::json j = nlohmann::json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::InvalidArgumentError(absl::StrCat("bad JSON in ", path));
  return j;
}

at::Tensor ToTensor2D(const std::vector<std::vector<int64_t>>& rows) {
  const int64_t b = rows.size(), l = rows.empty() ? 0 : rows[0].size();
  at::Tensor t = at::empty({b, l}, at::TensorOptions().dtype(at::kLong));
  for (int64_t i = 0; i < b; ++i) {
    std::copy(rows[i].begin(), rows[i].end(), t.data_ptr<int64_t>() + i * l);
  }
  return t;
}

// Reads `name` from the safetensors file if present (undefined tensor otherwise).
absl::StatusOr<at::Tensor> Optional(const safetensors::File& f, const std::string& name) {
  const safetensors::TensorView* v = f.Find(name);
  if (v == nullptr) return at::Tensor();
  return safetensors::ToTensor(*v);
}

}  // namespace

at::Tensor GoldenCase::InputIdsTensor() const { return ToTensor2D(input_ids); }
at::Tensor GoldenCase::AttentionMaskTensor() const { return ToTensor2D(attention_mask); }

std::vector<std::string> DecoderCaseNames() {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(kCasesDir, ec)) {
    const std::string json = (entry.path() / "case.json").string();
    auto j = ReadJson(json);
    if (j.ok() && j->contains("input_ids")) names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

absl::StatusOr<GoldenCase> LoadGoldenCase(const std::string& name) {
  const std::string dir = absl::StrCat(kCasesDir, "/", name);
  ASSIGN_OR_RETURN(nlohmann::json j, ReadJson(dir + "/case.json"));
  GoldenCase c;
  c.name = name;
  try {
    c.input_ids = j.at("input_ids").get<std::vector<std::vector<int64_t>>>();
    c.attention_mask = j.at("attention_mask").get<std::vector<std::vector<int64_t>>>();
    c.generated_ids = j.at("generated_ids").get<std::vector<std::vector<int64_t>>>();
    if (j.contains("bf16") && j["bf16"].contains("generated_ids")) {
      c.bf16_generated_ids = j["bf16"]["generated_ids"].get<std::vector<std::vector<int64_t>>>();
    }
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": ", e.what()));
  }
  ASSIGN_OR_RETURN(auto fp32, safetensors::File::Open(dir + "/tensors_fp32.safetensors"));
  ASSIGN_OR_RETURN(c.image_hidden_states, Optional(*fp32, "image_hidden_states"));
  ASSIGN_OR_RETURN(c.logits_last, Optional(*fp32, "logits_last"));
  ASSIGN_OR_RETURN(c.top5_values, Optional(*fp32, "greedy_step_top5_values"));
  ASSIGN_OR_RETURN(c.top5_ids, Optional(*fp32, "greedy_step_top5_ids"));
  const std::string bf16_path = dir + "/tensors_bf16model.safetensors";
  if (std::filesystem::exists(bf16_path)) {
    ASSIGN_OR_RETURN(auto bf16, safetensors::File::Open(bf16_path));
    ASSIGN_OR_RETURN(c.bf16_image_hidden_states, Optional(*bf16, "image_hidden_states"));
    ASSIGN_OR_RETURN(c.bf16_logits_last, Optional(*bf16, "logits_last"));
  }
  return c;
}

}  // namespace smolserve::decoder::testing
