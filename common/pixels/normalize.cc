#include "common/pixels/normalize.h"

#include <cmath>

#include <ATen/ATen.h>

#include "absl/strings/str_cat.h"

namespace smolserve::pixels {

NormalizeTable NormalizeTables(NormalizeFormula formula, const NormalizeParams& p) {
  NormalizeTable t;
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

absl::Status ValidateNormalizeParams(const NormalizeParams& p) {
  bool ok = std::isfinite(p.rescale_factor) && p.rescale_factor > 0;
  for (int c = 0; c < 3; ++c) {
    ok = ok && std::isfinite(p.mean[c]) && std::isfinite(p.std[c]) && p.std[c] > 0;
  }
  if (!ok) return absl::InvalidArgumentError("pixel normalisation parameters out of range");
  return absl::OkStatus();
}

absl::StatusOr<at::Tensor> NormalizeTiles(const at::Tensor& tiles, absl::Span<const uint8_t> formulas,
                                          const NormalizeParams& params) {
  if (!tiles.defined() || tiles.scalar_type() != at::kByte || tiles.dim() != 4 || tiles.size(1) != 3) {
    return absl::InvalidArgumentError("uint8 pixels must be [N, 3, H, W]");
  }
  const int64_t n = tiles.size(0);
  if (static_cast<int64_t>(formulas.size()) != n) {
    return absl::InvalidArgumentError(
        absl::StrCat(formulas.size(), " tile formulas for ", n, " tiles"));
  }
  if (absl::Status s = ValidateNormalizeParams(params); !s.ok()) return s;
  const NormalizeTable tables[2] = {NormalizeTables(NormalizeFormula::kImage, params),
                                    NormalizeTables(NormalizeFormula::kVideo, params)};
  const at::Tensor in = tiles.contiguous();
  at::Tensor out = at::empty(in.sizes(), at::TensorOptions().dtype(at::kFloat));
  const int64_t plane = in.size(2) * in.size(3);
  const uint8_t* src = in.data_ptr<uint8_t>();
  float* dst = out.data_ptr<float>();
  for (int64_t i = 0; i < n; ++i) {
    if (formulas[i] > 1) return absl::InvalidArgumentError("unknown tile formula");
    const NormalizeTable& t = tables[formulas[i]];
    for (int c = 0; c < 3; ++c) {
      const uint8_t* s = src + (i * 3 + c) * plane;
      float* d = dst + (i * 3 + c) * plane;
      const std::array<float, 256>& lut = t[c];
      for (int64_t k = 0; k < plane; ++k) d[k] = lut[s[k]];
    }
  }
  return out;
}

}  // namespace smolserve::pixels
