#include "common/runtime/dtype.h"

#include "absl/strings/str_cat.h"
#include "common/runtime/cpu_features.h"

namespace smolserve {

absl::StatusOr<c10::ScalarType> ResolveDtype(absl::string_view flag, DtypeStage stage,
                                             bool native_bf16) {
  if (flag == "f32") return c10::ScalarType::Float;
  if (flag == "bf16") return c10::ScalarType::BFloat16;
  if (flag == "auto") {
    if (stage == DtypeStage::kVision && native_bf16) return c10::ScalarType::BFloat16;
    return c10::ScalarType::Float;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--dtype must be auto, f32 or bf16 (got '", flag, "')"));
}

absl::StatusOr<c10::ScalarType> ResolveDtype(absl::string_view flag, DtypeStage stage) {
  return ResolveDtype(flag, stage, GetCpuFeatures().native_bf16());
}

std::string DtypeName(c10::ScalarType dtype) {
  return dtype == c10::ScalarType::BFloat16 ? "bf16" : "f32";
}

}  // namespace smolserve
