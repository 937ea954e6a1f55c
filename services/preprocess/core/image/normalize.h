// Rescale + normalise of uint8 RGB pixels into float32 CHW, bit-exact with the reference.
#ifndef SMOLSERVE_SERVICES_PREPROCESS_CORE_IMAGE_NORMALIZE_H_
#define SMOLSERVE_SERVICES_PREPROCESS_CORE_IMAGE_NORMALIZE_H_

#include <array>
#include <cstdint>

#include "services/preprocess/core/image/image.h"

namespace smolserve::preprocess {

enum class NormalizeFormula {
  // Image processor: v = float32(float64(u8) * rescale_factor); y = (v - mean) / std (float32).
  kImage,
  // Video processor (rescale and normalise fused): y = (float32(u8) - mean/rescale) / (std/rescale).
  kVideo,
};

struct NormalizeParams {
  double rescale_factor = 0.00392156862745098;
  std::array<float, 3> mean = {0.5f, 0.5f, 0.5f};
  std::array<float, 3> std = {0.5f, 0.5f, 0.5f};
};

// Per-channel 256-entry lookup tables; every output is a function of one uint8 value.
inline std::array<std::array<float, 256>, 3> NormalizeTables(NormalizeFormula formula,
                                                             const NormalizeParams& p) {
  std::array<std::array<float, 256>, 3> t;
  for (int c = 0; c < 3; ++c) {
    for (int v = 0; v < 256; ++v) {
      if (formula == NormalizeFormula::kImage) {
        const float x = static_cast<float>(static_cast<double>(v) * p.rescale_factor);
        t[c][v] = (x - p.mean[c]) / p.std[c];
      } else {
        const float m = static_cast<float>(static_cast<double>(p.mean[c]) / p.rescale_factor);
        const float s = static_cast<float>(static_cast<double>(p.std[c]) / p.rescale_factor);
        t[c][v] = (static_cast<float>(v) - m) / s;
      }
    }
  }
  return t;
}

// Writes an RGB image (3 channels) as float32 [3, H, W] into `out` (row stride `out_width`,
// plane stride `out_height * out_width`, so a smaller image lands top-left in a padded
// buffer).
inline void NormalizeToCHW(const Image& rgb, NormalizeFormula formula, const NormalizeParams& p,
                           float* out, int out_height, int out_width) {
  const auto tables = NormalizeTables(formula, p);
  const size_t plane = static_cast<size_t>(out_height) * out_width;
  for (int y = 0; y < rgb.height; ++y) {
    const uint8_t* src = rgb.row(y);
    for (int x = 0; x < rgb.width; ++x) {
      for (int c = 0; c < 3; ++c) {
        out[c * plane + static_cast<size_t>(y) * out_width + x] = tables[c][src[3 * x + c]];
      }
    }
  }
}

}  // namespace smolserve::preprocess

#endif  // SMOLSERVE_SERVICES_PREPROCESS_CORE_IMAGE_NORMALIZE_H_
