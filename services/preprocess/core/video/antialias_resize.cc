#include "services/preprocess/core/video/antialias_resize.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status/status_macros.h"

namespace smolserve::preprocess {
namespace {

// Largest image (elements, all channels) this resizer accepts: keeps every index in range.
constexpr int64_t kMaxElements = int64_t{1} << 31;

// HelperInterpCubic::aa_filter<double, /*use_keys_cubic=*/true> (a = -0.5), with the
// operation order of cubic_convolution1/2 in ATen/native/UpSample.h.
double KeysCubic(double x) {
  constexpr double a = -0.5;
  x = std::abs(x);
  if (x < 1.0) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2.0) return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
  return 0.0;
}

// Horizontal pass: resample each row of an interleaved image along x. The channel count is
// a template parameter so that the per-channel accumulators stay in registers.
template <int kChannels>
void ResampleRowsFixed(const uint8_t* src, int64_t rows, int64_t in_w,
                       const AntialiasAxisWeights& w, uint8_t* dst) {
  const int64_t out_w = w.out_size;
  const int32_t rounding = int32_t{1} << (w.precision - 1);
  for (int64_t y = 0; y < rows; ++y) {
    const uint8_t* in_row = src + y * in_w * kChannels;
    uint8_t* out_row = dst + y * out_w * kChannels;
    for (int64_t x = 0; x < out_w; ++x) {
      const uint8_t* in_px = in_row + w.first[x] * kChannels;
      const int16_t* k = w.weights.data() + x * w.taps;
      const int64_t n = w.count[x];
      int32_t acc[kChannels];
      for (int c = 0; c < kChannels; ++c) acc[c] = rounding;
      for (int64_t j = 0; j < n; ++j) {
        const int32_t kj = k[j];
        for (int c = 0; c < kChannels; ++c) {
          acc[c] += static_cast<int32_t>(in_px[j * kChannels + c]) * kj;
        }
      }
      for (int c = 0; c < kChannels; ++c) {
        out_row[x * kChannels + c] =
            static_cast<uint8_t>(std::clamp(acc[c] >> w.precision, 0, 255));
      }
    }
  }
}

void ResampleRows(const uint8_t* src, int64_t rows, int64_t in_w, int channels,
                  const AntialiasAxisWeights& w, uint8_t* dst) {
  switch (channels) {
    case 1: return ResampleRowsFixed<1>(src, rows, in_w, w, dst);
    case 3: return ResampleRowsFixed<3>(src, rows, in_w, w, dst);
    case 4: return ResampleRowsFixed<4>(src, rows, in_w, w, dst);
    default: return ResampleRowsFixed<2>(src, rows, in_w, w, dst);  // Resize() allows 1..4
  }
}

// Vertical pass: each output row is a weighted sum of consecutive input rows.
void ResampleColumns(const uint8_t* src, int64_t row_elems, const AntialiasAxisWeights& w,
                     std::vector<int32_t>& acc, uint8_t* dst) {
  const int32_t rounding = int32_t{1} << (w.precision - 1);
  acc.resize(static_cast<size_t>(row_elems));
  for (int64_t y = 0; y < w.out_size; ++y) {
    std::fill(acc.begin(), acc.end(), rounding);
    const int16_t* k = w.weights.data() + y * w.taps;
    const int64_t first = w.first[y];
    for (int64_t j = 0; j < w.count[y]; ++j) {
      const uint8_t* __restrict in_row = src + (first + j) * row_elems;
      const int16_t kj = k[j];
      int32_t* __restrict a = acc.data();
      for (int64_t i = 0; i < row_elems; ++i) {
        a[i] += static_cast<int32_t>(static_cast<int16_t>(in_row[i])) * static_cast<int32_t>(kj);
      }
    }
    uint8_t* __restrict out_row = dst + y * row_elems;
    const int32_t* __restrict a = acc.data();
    const unsigned int shift = w.precision;
    for (int64_t i = 0; i < row_elems; ++i) {
      out_row[i] = static_cast<uint8_t>(std::clamp(a[i] >> shift, 0, 255));
    }
  }
}

}  // namespace

absl::StatusOr<AntialiasAxisWeights> BicubicAntialiasWeights(int64_t in_size, int64_t out_size) {
  if (in_size < 1 || out_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("resize sizes must be >= 1, got ", in_size, " -> ", out_size));
  }
  if (in_size > kMaxElements || out_size > kMaxElements) {
    return absl::InvalidArgumentError("resize size too large");
  }
  constexpr int kInterpSize = 4;  // HelperInterpCubic::interp_size
  AntialiasAxisWeights w;
  w.in_size = in_size;
  w.out_size = out_size;

  // area_pixel_compute_scale<double>(in, out, align_corners=false, nullopt).
  const double scale = static_cast<double>(in_size) / out_size;
  const double support = (scale >= 1.0) ? (kInterpSize * 0.5) * scale : kInterpSize * 0.5;
  const int max_interp_size = static_cast<int>(std::ceil(support)) * 2 + 1;
  w.taps = max_interp_size;
  w.first.resize(out_size);
  w.count.resize(out_size);
  std::vector<double> wf(static_cast<size_t>(out_size) * max_interp_size, 0.0);

  // _compute_indices_min_size_weights_aa<double> for every output index.
  double wt_max = 0.0;
  for (int64_t i = 0; i < out_size; ++i) {
    double* wt = wf.data() + i * max_interp_size;
    const double center = scale * (i + 0.5);
    double total_w = 0.0;
    const double invscale = (scale >= 1.0) ? 1.0 / scale : 1.0;
    const int64_t xmin =
        std::max(static_cast<int64_t>(center - support + 0.5), static_cast<int64_t>(0));
    int64_t xsize = std::min(static_cast<int64_t>(center + support + 0.5), in_size) - xmin;
    xsize = std::clamp(xsize, static_cast<int64_t>(0), static_cast<int64_t>(max_interp_size));
    int64_t j = 0;
    for (; j < xsize; ++j) {
      const double v = KeysCubic((j + xmin - center + 0.5) * invscale);
      wt[j] = v;
      total_w += v;
    }
    double wt_max_i = 0.0;
    if (total_w != 0.0) {
      for (j = 0; j < xsize; ++j) {
        wt[j] /= total_w;
        wt_max_i = std::max(wt_max_i, wt[j]);
      }
    }
    for (; j < max_interp_size; ++j) wt[j] = 0.0;
    wt_max = std::max(wt_max, wt_max_i);
    w.first[i] = xmin;
    w.count[i] = xsize;
  }

  // _compute_index_ranges_int16_weights: the precision and the int16 rounding.
  unsigned int precision = 0;
  for (precision = 0; precision < 22; ++precision) {
    const int next_value = static_cast<int>(0.5 + wt_max * (1 << (precision + 1)));
    if (next_value >= (1 << 15)) break;
  }
  w.precision = precision;
  w.weights.resize(wf.size());
  for (size_t idx = 0; idx < wf.size(); ++idx) {
    const double v = wf[idx] * (1 << precision);
    const int r = (v < 0) ? static_cast<int>(-0.5 + v) : static_cast<int>(0.5 + v);
    w.weights[idx] = static_cast<int16_t>(r);
  }
  if (w.precision == 0) {
    // torch asserts weights_precision > 0; unreachable for the Keys kernel (weights <= 1).
    return absl::InternalError("antialias resize: zero weight precision");
  }
  return w;
}

absl::StatusOr<const AntialiasAxisWeights*> BicubicAntialiasResizer::Weights(int64_t in_size,
                                                                          int64_t out_size) {
  for (const auto& w : weights_cache_) {
    if (w->in_size == in_size && w->out_size == out_size) return w.get();
  }
  ASSIGN_OR_RETURN(AntialiasAxisWeights w, BicubicAntialiasWeights(in_size, out_size));
  if (weights_cache_.size() >= 8) weights_cache_.erase(weights_cache_.begin());
  weights_cache_.push_back(std::make_unique<AntialiasAxisWeights>(std::move(w)));
  return weights_cache_.back().get();
}

uint8_t* BicubicAntialiasResizer::Scratch(size_t bytes) {
  if (bytes > scratch_size_) {
    scratch_.reset(new uint8_t[bytes]);  // uninitialised: every byte is written before use
    scratch_size_ = bytes;
  }
  return scratch_.get();
}

absl::Status BicubicAntialiasResizer::Resize(const uint8_t* src, int height, int width,
                                             int channels, int out_height, int out_width,
                                             uint8_t* dst) {
  if (height < 1 || width < 1 || out_height < 1 || out_width < 1 || channels < 1 ||
      channels > 4) {
    return absl::InvalidArgumentError(absl::StrCat("cannot resize ", height, "x", width, "x",
                                                   channels, " to ", out_height, "x",
                                                   out_width));
  }
  const int64_t in_elems = int64_t{height} * width * channels;
  const int64_t tmp_elems = int64_t{height} * out_width * channels;
  const int64_t out_elems = int64_t{out_height} * out_width * channels;
  if (in_elems > kMaxElements || tmp_elems > kMaxElements || out_elems > kMaxElements) {
    return absl::ResourceExhaustedError(absl::StrCat("resize to ", out_height, "x", out_width,
                                                     " exceeds the resizer's size limit"));
  }
  if (out_height == height && out_width == width) {
    std::memcpy(dst, src, static_cast<size_t>(in_elems));
    return absl::OkStatus();
  }
  const uint8_t* cur = src;
  if (out_width != width) {
    ASSIGN_OR_RETURN(const AntialiasAxisWeights* wx, Weights(width, out_width));
    uint8_t* tmp = (out_height != height) ? Scratch(static_cast<size_t>(tmp_elems)) : dst;
    ResampleRows(cur, height, width, channels, *wx, tmp);
    cur = tmp;
  }
  if (out_height != height) {
    ASSIGN_OR_RETURN(const AntialiasAxisWeights* wy, Weights(height, out_height));
    ResampleColumns(cur, int64_t{out_width} * channels, *wy, acc_, dst);
  }
  return absl::OkStatus();
}

absl::StatusOr<Image> ResizeBicubicAntialias(const Image& src, int out_height, int out_width) {
  if (static_cast<int64_t>(src.pixels.size()) != int64_t{src.height} * src.width * src.channels()) {
    return absl::InvalidArgumentError("image buffer size does not match its dimensions");
  }
  if (src.height < 1 || src.width < 1 || out_height < 1 || out_width < 1) {
    return absl::InvalidArgumentError(absl::StrCat("cannot resize ", src.height, "x", src.width,
                                                   " to ", out_height, "x", out_width));
  }
  if (int64_t{out_height} * out_width * src.channels() > kMaxElements) {
    return absl::ResourceExhaustedError(absl::StrCat("resize to ", out_height, "x", out_width,
                                                     " exceeds the resizer's size limit"));
  }
  Image out;
  out.height = out_height;
  out.width = out_width;
  out.mode = src.mode;
  out.pixels.resize(static_cast<size_t>(out_height) * out_width * src.channels());
  BicubicAntialiasResizer resizer;
  RETURN_IF_ERROR(resizer.Resize(src.pixels.data(), src.height, src.width, src.channels(),
                                 out_height, out_width, out.pixels.data()));
  return out;
}

}  // namespace smolserve::preprocess
