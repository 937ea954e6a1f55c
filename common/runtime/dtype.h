// The --dtype flag of the vision and decoder stages and the CLI, in one place.
//
//   f32   float32 everywhere: exact against the reference (the golden tests' dtype).
//   bf16  bfloat16 weights and activations.
//   auto  (the default) per stage, what measures fastest on this CPU without giving up more
//         than bf16's accuracy: the vision encoder in bf16 where the CPU has native bf16 dot
//         products (avx512_bf16 or AMX-BF16: measured 1.6x its fp32 speed), else fp32; the
//         decoder in fp32, whose batch-invariant AVX kernels decode faster than LibTorch's
//         generic bf16 path (45.7 against 24.5 tokens/s on one stream at 256M shapes).
#ifndef SMOLSERVE_COMMON_RUNTIME_DTYPE_H_
#define SMOLSERVE_COMMON_RUNTIME_DTYPE_H_

#include <string>

#include <c10/core/ScalarType.h>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace smolserve {

enum class DtypeStage { kVision, kDecoder };

// "f32" | "bf16" | "auto" -> the dtype `stage` runs in on this CPU (GetCpuFeatures()).
// INVALID_ARGUMENT for anything else.
absl::StatusOr<c10::ScalarType> ResolveDtype(absl::string_view flag, DtypeStage stage);
// As ResolveDtype, for a CPU that has (or lacks) native bf16: for tests.
absl::StatusOr<c10::ScalarType> ResolveDtype(absl::string_view flag, DtypeStage stage,
                                             bool native_bf16);

// "f32" or "bf16", for logs and reports.
std::string DtypeName(c10::ScalarType dtype);

}  // namespace smolserve

#endif  // SMOLSERVE_COMMON_RUNTIME_DTYPE_H_
