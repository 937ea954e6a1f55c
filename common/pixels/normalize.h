// Rescale + normalise of uint8 RGB values into float32, bit-exact with the reference
// processors, shared by the stage that prepares tiles (preprocess) and the one that encodes
// them (vision): tiles travel as uint8 (4x fewer bytes than float32) and are normalised where
// they are used. Every output value is a function of one uint8 value and its channel, so the
// result is identical wherever it is computed.
#ifndef SMOLSERVE_COMMON_PIXELS_NORMALIZE_H_
#define SMOLSERVE_COMMON_PIXELS_NORMALIZE_H_

#include <array>
#include <cstdint>

#include <ATen/core/Tensor.h>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace smolserve::pixels {

enum class NormalizeFormula : uint8_t {
  // Image processor: v = float32(float64(u8) * rescale_factor); y = (v - mean) / std (float32).
  kImage = 0,
  // Video processor (rescale and normalise fused): y = (float32(u8) - mean/rescale) / (std/rescale).
  kVideo = 1,
};

struct NormalizeParams {
  double rescale_factor = 0.00392156862745098;
  std::array<float, 3> mean = {0.5f, 0.5f, 0.5f};
  std::array<float, 3> std = {0.5f, 0.5f, 0.5f};
};

using NormalizeTable = std::array<std::array<float, 256>, 3>;  // [channel][u8]

// Per-channel 256-entry lookup tables.
NormalizeTable NormalizeTables(NormalizeFormula formula, const NormalizeParams& params);

// INVALID_ARGUMENT unless rescale_factor and every mean/std are finite and std, rescale > 0.
absl::Status ValidateNormalizeParams(const NormalizeParams& params);

// uint8 [N, 3, H, W] tiles -> float32 [N, 3, H, W], tile i with formulas[i] (0 image,
// 1 video). INVALID_ARGUMENT for a wrong shape/dtype, a formula count that is not N, or an
// unknown formula.
absl::StatusOr<at::Tensor> NormalizeTiles(const at::Tensor& tiles_u8,
                                          absl::Span<const uint8_t> formulas,
                                          const NormalizeParams& params);

}  // namespace smolserve::pixels

#endif  // SMOLSERVE_COMMON_PIXELS_NORMALIZE_H_
