// Rescale + normalise of uint8 RGB pixels into float32 CHW, bit-exact with the reference, and
// the uint8 CHW layout tiles travel in.
#ifndef SMOLSERVE_SERVICES_PREPROCESS_CORE_IMAGE_NORMALIZE_H_
#define SMOLSERVE_SERVICES_PREPROCESS_CORE_IMAGE_NORMALIZE_H_

#include <array>
#include <cstdint>

#include "common/pixels/normalize.h"
#include "services/preprocess/core/image/image.h"

namespace smolserve::preprocess {

// The formulas, parameters and tables live in common/pixels/normalize.h (the vision stage
// normalises the uint8 tiles it receives with the same code).
using pixels::NormalizeFormula;
using pixels::NormalizeParams;
using pixels::NormalizeTables;

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

// Writes an RGB image as uint8 [3, H, W] into `out` (planes of out_height x out_width, the
// image top-left): the tile as it travels to the vision stage, normalised there.
inline void ToCHW(const Image& rgb, uint8_t* out, int out_height, int out_width) {
  const size_t plane = static_cast<size_t>(out_height) * out_width;
  for (int y = 0; y < rgb.height; ++y) {
    const uint8_t* src = rgb.row(y);
    for (int x = 0; x < rgb.width; ++x) {
      for (int c = 0; c < 3; ++c) out[c * plane + static_cast<size_t>(y) * out_width + x] = src[3 * x + c];
    }
  }
}

}  // namespace smolserve::preprocess

#endif  // SMOLSERVE_SERVICES_PREPROCESS_CORE_IMAGE_NORMALIZE_H_
