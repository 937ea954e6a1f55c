// Port of Pillow's resampling (src/libImaging/Resample.c, Geometry.c ImagingScaleAffine,
// Convert.c RGBA<->RGBa) written from its documented arithmetic. The convolution keeps
// Pillow's exact fixed-point arithmetic; only the loop order differs (the vertical pass
// accumulates whole rows at a time), which is exact because the sums are integers computed
// modulo 2^32, as Pillow's int accumulators effectively are.
#include "services/preprocess/core/image/pil_resample.h"

#include <climits>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status/status_macros.h"

// Hot integer kernels get an AVX2 clone selected at load time (ifunc); results are identical
// because the arithmetic is integer.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define SMOLSERVE_RESAMPLE_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define SMOLSERVE_RESAMPLE_CLONES
#endif

namespace smolserve::preprocess {
namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;  // 22, as Pillow's PRECISION_BITS.
constexpr uint32_t kHalf = 1u << (kPrecisionBits - 1);
constexpr int kMaxDimension = 1 << 24;

// ---- Filters (Pillow Resample.c), double precision ----

double BoxFilter(double x) {
  if (x > -0.5 && x <= 0.5) return 1.0;
  return 0.0;
}

double BilinearFilter(double x) {
  if (x < 0.0) x = -x;
  if (x < 1.0) return 1.0 - x;
  return 0.0;
}

double HammingFilter(double x) {
  if (x < 0.0) x = -x;
  if (x == 0.0) return 1.0;
  if (x >= 1.0) return 0.0;
  x = x * M_PI;
  // Pillow uses float literals here; they are promoted to double.
  return std::sin(x) / x * (0.54f + 0.46f * std::cos(x));
}

double BicubicFilter(double x) {
  constexpr double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

double SincFilter(double x) {
  if (x == 0.0) return 1.0;
  x = x * M_PI;
  return std::sin(x) / x;
}

double LanczosFilter(double x) {
  // Truncated sinc, a = 3.
  if (-3.0 <= x && x < 3.0) return SincFilter(x) * SincFilter(x / 3);
  return 0.0;
}

struct FilterDef {
  double (*fn)(double);
  double support;
};

FilterDef GetFilter(ResampleFilter f) {
  switch (f) {
    case ResampleFilter::kBox:
      return {BoxFilter, 0.5};
    case ResampleFilter::kBilinear:
      return {BilinearFilter, 1.0};
    case ResampleFilter::kHamming:
      return {HammingFilter, 1.0};
    case ResampleFilter::kBicubic:
      return {BicubicFilter, 2.0};
    case ResampleFilter::kLanczos:
    default:
      return {LanczosFilter, 3.0};
  }
}

// Per output pixel: first source index, tap count, and `ksize` fixed-point weights.
struct Coeffs {
  int ksize = 0;
  std::vector<int> bounds;  // 2 * out_size: xmin, count
  std::vector<int32_t> kk;  // out_size * ksize
};

absl::StatusOr<Coeffs> PrecomputeCoeffs(int in_size, int out_size, const FilterDef& filter) {
  // Pillow passes the box as floats: in1 - in0 is a float subtraction.
  const float in0 = 0.0f;
  const float in1 = static_cast<float>(in_size);
  const double scale = static_cast<double>(in1 - in0) / out_size;
  double filterscale = scale;
  if (filterscale < 1.0) filterscale = 1.0;
  const double support = filter.support * filterscale;
  const int ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  if (out_size > INT_MAX / (ksize * static_cast<int>(sizeof(double)))) {
    return absl::ResourceExhaustedError(
        absl::StrCat("resample coefficient table too large (", in_size, " -> ", out_size, ")"));
  }

  Coeffs c;
  c.ksize = ksize;
  c.bounds.resize(2 * static_cast<size_t>(out_size));
  c.kk.assign(static_cast<size_t>(out_size) * ksize, 0);
  std::vector<double> k(ksize);
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = in0 + (xx + 0.5) * scale;
    double ww = 0.0;
    const double ss = 1.0 / filterscale;
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    if (xmax < 0) xmax = 0;
    for (int x = 0; x < xmax; ++x) {
      const double w = filter.fn((x + xmin - center + 0.5) * ss);
      k[x] = w;
      ww += w;
    }
    for (int x = 0; x < xmax; ++x) {
      if (ww != 0.0) k[x] /= ww;
    }
    int32_t* out = &c.kk[static_cast<size_t>(xx) * ksize];
    for (int x = 0; x < xmax; ++x) {
      // normalize_coeffs_8bpc: round half away from zero.
      if (k[x] < 0) {
        out[x] = static_cast<int32_t>(-0.5 + k[x] * (1 << kPrecisionBits));
      } else {
        out[x] = static_cast<int32_t>(0.5 + k[x] * (1 << kPrecisionBits));
      }
    }
    c.bounds[2 * xx] = xmin;
    c.bounds[2 * xx + 1] = xmax;
  }
  return c;
}

inline uint8_t Clip8(uint32_t acc) {
  const int32_t v = static_cast<int32_t>(acc) >> kPrecisionBits;
  return static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
}

// ---- Horizontal pass: rows x in_width*C -> rows x out_width*C ----

template <int C>
inline __attribute__((always_inline)) void HorizontalRows(const uint8_t* src, size_t src_stride,
                                                          uint8_t* dst, size_t dst_stride, int rows,
                                                          int out_width, const int* bounds,
                                                          const int32_t* kk, int ksize) {
  for (int y = 0; y < rows; ++y) {
    const uint8_t* s = src + static_cast<size_t>(y) * src_stride;
    uint8_t* d = dst + static_cast<size_t>(y) * dst_stride;
    for (int xx = 0; xx < out_width; ++xx) {
      const int xmin = bounds[2 * xx];
      const int n = bounds[2 * xx + 1];
      const int32_t* k = kk + static_cast<size_t>(xx) * ksize;
      const uint8_t* p = s + static_cast<size_t>(xmin) * C;
      uint32_t acc[C];
      for (int ch = 0; ch < C; ++ch) acc[ch] = kHalf;
      for (int i = 0; i < n; ++i) {
        const uint32_t ki = static_cast<uint32_t>(k[i]);
        for (int ch = 0; ch < C; ++ch) acc[ch] += p[i * C + ch] * ki;
      }
      for (int ch = 0; ch < C; ++ch) d[xx * C + ch] = Clip8(acc[ch]);
    }
  }
}

SMOLSERVE_RESAMPLE_CLONES
void HorizontalPass1(const uint8_t* src, size_t src_stride, uint8_t* dst, size_t dst_stride,
                     int rows, int out_width, const int* bounds, const int32_t* kk, int ksize) {
  HorizontalRows<1>(src, src_stride, dst, dst_stride, rows, out_width, bounds, kk, ksize);
}

// 3 and 4 channels: with SSE4.1, one 4-lane vector per pixel (lanes = channels). For 3
// channels the 4th lane reads the next pixel's first byte and is discarded; pixels whose taps
// reach the last source column use the scalar loop so that nothing past the row is read.
#if defined(__x86_64__) && defined(__GNUC__)
#define SMOLSERVE_RESAMPLE_SSE41 1
template <int C>
__attribute__((target("sse4.1"))) void HorizontalRowsSse41(const uint8_t* src, size_t src_stride,
                                                           uint8_t* dst, size_t dst_stride,
                                                           int rows, int in_width, int out_width,
                                                           const int* bounds, const int32_t* kk,
                                                           int ksize) {
  const __m128i half = _mm_set1_epi32(static_cast<int>(kHalf));
  const __m128i zero = _mm_setzero_si128();
  const __m128i max = _mm_set1_epi32(255);
  for (int y = 0; y < rows; ++y) {
    const uint8_t* s = src + static_cast<size_t>(y) * src_stride;
    uint8_t* d = dst + static_cast<size_t>(y) * dst_stride;
    for (int xx = 0; xx < out_width; ++xx) {
      const int xmin = bounds[2 * xx];
      const int n = bounds[2 * xx + 1];
      const int32_t* k = kk + static_cast<size_t>(xx) * ksize;
      const uint8_t* p = s + static_cast<size_t>(xmin) * C;
      if (C == 3 && xmin + n >= in_width) {
        uint32_t acc[C];
        for (int ch = 0; ch < C; ++ch) acc[ch] = kHalf;
        for (int i = 0; i < n; ++i) {
          const uint32_t ki = static_cast<uint32_t>(k[i]);
          for (int ch = 0; ch < C; ++ch) acc[ch] += p[i * C + ch] * ki;
        }
        for (int ch = 0; ch < C; ++ch) d[xx * C + ch] = Clip8(acc[ch]);
        continue;
      }
      __m128i acc = half;
      for (int i = 0; i < n; ++i) {
        int32_t word;
        std::memcpy(&word, p + i * C, 4);
        const __m128i v = _mm_cvtepu8_epi32(_mm_cvtsi32_si128(word));
        acc = _mm_add_epi32(acc, _mm_mullo_epi32(v, _mm_set1_epi32(k[i])));
      }
      acc = _mm_srai_epi32(acc, kPrecisionBits);
      acc = _mm_min_epi32(_mm_max_epi32(acc, zero), max);
      alignas(16) int32_t out[4];
      _mm_store_si128(reinterpret_cast<__m128i*>(out), acc);
      for (int ch = 0; ch < C; ++ch) d[xx * C + ch] = static_cast<uint8_t>(out[ch]);
    }
  }
}
#endif

template <int C>
void HorizontalPassVec(const uint8_t* src, size_t src_stride, uint8_t* dst, size_t dst_stride,
                       int rows, int in_width, int out_width, const int* bounds, const int32_t* kk,
                       int ksize) {
#ifdef SMOLSERVE_RESAMPLE_SSE41
  static const bool has_sse41 = __builtin_cpu_supports("sse4.1");
  if (has_sse41) {
    HorizontalRowsSse41<C>(src, src_stride, dst, dst_stride, rows, in_width, out_width, bounds, kk,
                           ksize);
    return;
  }
#endif
  HorizontalRows<C>(src, src_stride, dst, dst_stride, rows, out_width, bounds, kk, ksize);
}

// ---- Vertical pass: whole rows at a time, `acc` holds row_len partial sums ----

SMOLSERVE_RESAMPLE_CLONES
void VerticalPass(const uint8_t* src, size_t src_stride, uint8_t* dst, size_t dst_stride,
                  int out_height, int row_len, const int* bounds, const int32_t* kk, int ksize,
                  uint32_t* __restrict acc) {
  for (int yy = 0; yy < out_height; ++yy) {
    const int ymin = bounds[2 * yy];
    const int n = bounds[2 * yy + 1];
    const int32_t* k = kk + static_cast<size_t>(yy) * ksize;
    for (int j = 0; j < row_len; ++j) acc[j] = kHalf;
    int i = 0;
    for (; i + 1 < n; i += 2) {
      const uint8_t* __restrict r0 = src + static_cast<size_t>(ymin + i) * src_stride;
      const uint8_t* __restrict r1 = r0 + src_stride;
      const uint32_t k0 = static_cast<uint32_t>(k[i]);
      const uint32_t k1 = static_cast<uint32_t>(k[i + 1]);
      for (int j = 0; j < row_len; ++j) acc[j] += r0[j] * k0 + r1[j] * k1;
    }
    if (i < n) {
      const uint8_t* __restrict r0 = src + static_cast<size_t>(ymin + i) * src_stride;
      const uint32_t k0 = static_cast<uint32_t>(k[i]);
      for (int j = 0; j < row_len; ++j) acc[j] += r0[j] * k0;
    }
    uint8_t* __restrict d = dst + static_cast<size_t>(yy) * dst_stride;
    for (int j = 0; j < row_len; ++j) {
      const int32_t v = static_cast<int32_t>(acc[j]) >> kPrecisionBits;
      d[j] = static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
    }
  }
}

absl::StatusOr<Image> ResampleConvolve(const Image& in, int out_height, int out_width,
                                       const FilterDef& filter) {
  const int channels = in.channels();
  const bool need_horizontal = out_width != in.width;
  const bool need_vertical = out_height != in.height;

  ASSIGN_OR_RETURN(Coeffs vert, PrecomputeCoeffs(in.height, out_height, filter));
  // First and one-past-last source rows the vertical pass reads.
  const int ybox_first = vert.bounds[0];
  const int ybox_last = vert.bounds[2 * out_height - 2] + vert.bounds[2 * out_height - 1];

  Image temp;
  const Image* src = &in;
  if (need_horizontal) {
    ASSIGN_OR_RETURN(Coeffs horiz, PrecomputeCoeffs(in.width, out_width, filter));
    for (int i = 0; i < out_height; ++i) vert.bounds[2 * i] -= ybox_first;
    const int rows = ybox_last - ybox_first;
    temp = MakeImage(rows, out_width, in.mode);
    const size_t src_stride = static_cast<size_t>(in.width) * channels;
    const size_t dst_stride = static_cast<size_t>(out_width) * channels;
    const uint8_t* s = in.pixels.data() + static_cast<size_t>(ybox_first) * src_stride;
    uint8_t* d = temp.pixels.data();
    switch (channels) {
      case 1:
        HorizontalPass1(s, src_stride, d, dst_stride, rows, out_width, horiz.bounds.data(),
                        horiz.kk.data(), horiz.ksize);
        break;
      case 3:
        HorizontalPassVec<3>(s, src_stride, d, dst_stride, rows, in.width, out_width,
                             horiz.bounds.data(), horiz.kk.data(), horiz.ksize);
        break;
      default:
        HorizontalPassVec<4>(s, src_stride, d, dst_stride, rows, in.width, out_width,
                             horiz.bounds.data(), horiz.kk.data(), horiz.ksize);
        break;
    }
    src = &temp;
  }

  if (need_vertical) {
    Image out = MakeImage(out_height, src->width, in.mode);
    const int row_len = src->width * channels;
    std::vector<uint32_t> acc(static_cast<size_t>(row_len));
    VerticalPass(src->pixels.data(), static_cast<size_t>(row_len), out.pixels.data(),
                 static_cast<size_t>(row_len), out_height, row_len, vert.bounds.data(),
                 vert.kk.data(), vert.ksize, acc.data());
    return out;
  }
  if (need_horizontal) return temp;
  return in;
}

// Pillow ImagingScaleAffine with a = [in_w / out_w, 0, 0, 0, in_h / out_h, 0], fill = 1.
Image NearestResize(const Image& in, int out_height, int out_width) {
  const int channels = in.channels();
  Image out = MakeImage(out_height, out_width, in.mode);  // zero-filled, as fill=1
  const double a0 = static_cast<double>(static_cast<float>(in.width) - 0.0f) / out_width;
  const double a4 = static_cast<double>(static_cast<float>(in.height) - 0.0f) / out_height;
  std::vector<int> xintab(static_cast<size_t>(out_width), -1);
  double xo = 0.0 + a0 * 0.5;
  for (int x = 0; x < out_width; ++x) {
    const int xin = xo < 0.0 ? -1 : static_cast<int>(xo);
    if (xin >= 0 && xin < in.width) xintab[x] = xin;
    xo += a0;
  }
  double yo = 0.0 + a4 * 0.5;
  for (int y = 0; y < out_height; ++y) {
    const int yi = yo < 0.0 ? -1 : static_cast<int>(yo);
    if (yi >= 0 && yi < in.height) {
      const uint8_t* s = in.row(yi);
      uint8_t* d = out.row(y);
      for (int x = 0; x < out_width; ++x) {
        const int xi = xintab[x];
        if (xi < 0) continue;
        std::memcpy(d + static_cast<size_t>(x) * channels, s + static_cast<size_t>(xi) * channels,
                    channels);
      }
    }
    yo += a4;
  }
  return out;
}

}  // namespace

absl::StatusOr<ResampleFilter> ResampleFilterFromPil(int pil_value) {
  switch (pil_value) {
    case 0:
      return ResampleFilter::kNearest;
    case 1:
      return ResampleFilter::kLanczos;
    case 2:
      return ResampleFilter::kBilinear;
    case 3:
      return ResampleFilter::kBicubic;
    case 4:
      return ResampleFilter::kBox;
    case 5:
      return ResampleFilter::kHamming;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("unknown PIL resampling filter ", pil_value, " (expected 0..5)"));
  }
}

absl::string_view ResampleFilterName(ResampleFilter filter) {
  switch (filter) {
    case ResampleFilter::kNearest:
      return "NEAREST";
    case ResampleFilter::kLanczos:
      return "LANCZOS";
    case ResampleFilter::kBilinear:
      return "BILINEAR";
    case ResampleFilter::kBicubic:
      return "BICUBIC";
    case ResampleFilter::kBox:
      return "BOX";
    case ResampleFilter::kHamming:
      return "HAMMING";
  }
  return "UNKNOWN";
}

void PremultiplyRgba(Image& image) {
  if (image.mode != PixelMode::kRGBA) return;
  uint8_t* p = image.pixels.data();
  const size_t n = image.pixels.size() / 4;
  for (size_t i = 0; i < n; ++i, p += 4) {
    const unsigned alpha = p[3];
    for (int c = 0; c < 3; ++c) {
      const unsigned tmp = p[c] * alpha + 128;  // MULDIV255
      p[c] = static_cast<uint8_t>(((tmp >> 8) + tmp) >> 8);
    }
  }
}

void UnpremultiplyRgba(Image& image) {
  if (image.mode != PixelMode::kRGBA) return;
  uint8_t* p = image.pixels.data();
  const size_t n = image.pixels.size() / 4;
  for (size_t i = 0; i < n; ++i, p += 4) {
    const unsigned alpha = p[3];
    if (alpha == 255 || alpha == 0) continue;
    for (int c = 0; c < 3; ++c) {
      const unsigned v = (255u * p[c]) / alpha;
      p[c] = static_cast<uint8_t>(v > 255 ? 255 : v);
    }
  }
}

absl::StatusOr<Image> PilResize(const Image& in, int out_height, int out_width,
                                ResampleFilter filter) {
  if (in.height <= 0 || in.width <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot resize an empty image (", in.height, "x", in.width, ")"));
  }
  const int channels = in.channels();
  if (in.pixels.size() != static_cast<size_t>(in.height) * in.width * channels) {
    return absl::InvalidArgumentError(
        absl::StrCat("image buffer holds ", in.pixels.size(), " bytes, expected ",
                     static_cast<size_t>(in.height) * in.width * channels));
  }
  if (out_height <= 0 || out_width <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("resize target must be positive, got ", out_height, "x", out_width));
  }
  if (in.height > kMaxDimension || in.width > kMaxDimension || out_height > kMaxDimension ||
      out_width > kMaxDimension ||
      static_cast<int64_t>(out_height) * out_width * channels > (int64_t{1} << 31)) {
    return absl::ResourceExhaustedError(absl::StrCat("resize ", in.height, "x", in.width, " -> ",
                                                     out_height, "x", out_width,
                                                     " exceeds the supported size"));
  }
  // Image.resize: same size (and full box) -> copy.
  if (in.height == out_height && in.width == out_width) return in;
  // Modes "1" and "P" are always resampled with NEAREST.
  if (in.mode == PixelMode::kP) filter = ResampleFilter::kNearest;
  if (filter == ResampleFilter::kNearest) return NearestResize(in, out_height, out_width);

  const FilterDef def = GetFilter(filter);
  if (in.mode == PixelMode::kRGBA) {
    Image premultiplied = in;
    PremultiplyRgba(premultiplied);
    ASSIGN_OR_RETURN(Image out, ResampleConvolve(premultiplied, out_height, out_width, def));
    UnpremultiplyRgba(out);
    return out;
  }
  return ResampleConvolve(in, out_height, out_width, def);
}

}  // namespace smolserve::preprocess
