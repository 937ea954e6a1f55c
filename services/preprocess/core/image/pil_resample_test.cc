#include "services/preprocess/core/image/pil_resample.h"

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace smolserve::preprocess {
namespace {

Image RandomImage(int h, int w, PixelMode mode, uint32_t seed) {
  Image img = MakeImage(h, w, mode);
  std::mt19937 rng(seed);
  for (auto& v : img.pixels) v = static_cast<uint8_t>(rng() & 0xff);
  return img;
}

// Straightforward transcription of Pillow's per-pixel loops (the order Pillow uses:
// pixel-major, taps innermost, signed int accumulators), used to cross-check the optimised
// row-wise kernels.
double Lanczos(double x) {
  auto sinc = [](double v) {
    if (v == 0.0) return 1.0;
    v = v * M_PI;
    return std::sin(v) / v;
  };
  if (-3.0 <= x && x < 3.0) return sinc(x) * sinc(x / 3);
  return 0.0;
}

struct RefCoeffs {
  int ksize;
  std::vector<int> xmin, xcount;
  std::vector<int> k;
};

RefCoeffs RefPrecompute(int in_size, int out_size) {
  RefCoeffs c;
  const double scale = static_cast<double>(static_cast<float>(in_size)) / out_size;
  const double filterscale = scale < 1.0 ? 1.0 : scale;
  const double support = 3.0 * filterscale;
  c.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  c.k.assign(static_cast<size_t>(out_size) * c.ksize, 0);
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = (xx + 0.5) * scale;
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    std::vector<double> w(xmax);
    double ww = 0;
    for (int x = 0; x < xmax; ++x) {
      w[x] = Lanczos((x + xmin - center + 0.5) * (1.0 / filterscale));
      ww += w[x];
    }
    for (int x = 0; x < xmax; ++x) {
      const double v = ww != 0.0 ? w[x] / ww : w[x];
      c.k[xx * c.ksize + x] =
          v < 0 ? static_cast<int>(-0.5 + v * (1 << 22)) : static_cast<int>(0.5 + v * (1 << 22));
    }
    c.xmin.push_back(xmin);
    c.xcount.push_back(xmax);
  }
  return c;
}

uint8_t RefClip(int v) {
  v >>= 22;
  return static_cast<uint8_t>(v < 0 ? 0 : v > 255 ? 255 : v);
}

Image RefLanczos(const Image& in, int out_h, int out_w) {
  const int ch = in.channels();
  RefCoeffs vert = RefPrecompute(in.height, out_h);
  const int first = vert.xmin[0];
  const int last = vert.xmin[out_h - 1] + vert.xcount[out_h - 1];
  Image tmp = in;
  int offset = 0;
  if (out_w != in.width) {
    RefCoeffs hor = RefPrecompute(in.width, out_w);
    tmp = MakeImage(last - first, out_w, in.mode);
    for (int y = 0; y < tmp.height; ++y) {
      for (int xx = 0; xx < out_w; ++xx) {
        for (int c = 0; c < ch; ++c) {
          int ss = 1 << 21;
          for (int x = 0; x < hor.xcount[xx]; ++x) {
            ss += in.row(y + first)[(x + hor.xmin[xx]) * ch + c] * hor.k[xx * hor.ksize + x];
          }
          tmp.row(y)[xx * ch + c] = RefClip(ss);
        }
      }
    }
    offset = first;
  }
  if (out_h == in.height) return tmp;
  Image out = MakeImage(out_h, tmp.width, in.mode);
  for (int yy = 0; yy < out_h; ++yy) {
    for (int xx = 0; xx < tmp.width; ++xx) {
      for (int c = 0; c < ch; ++c) {
        int ss = 1 << 21;
        for (int y = 0; y < vert.xcount[yy]; ++y) {
          ss += tmp.row(y + vert.xmin[yy] - offset)[xx * ch + c] * vert.k[yy * vert.ksize + y];
        }
        out.row(yy)[xx * ch + c] = RefClip(ss);
      }
    }
  }
  return out;
}

TEST(PilResample, LanczosMatchesPerPixelTranscription) {
  struct Case {
    int h, w, oh, ow;
    PixelMode mode;
  };
  const Case cases[] = {
      {48, 51, 191, 204, PixelMode::kRGB},  // upscale both
      {191, 204, 48, 51, PixelMode::kRGB},  // downscale both
      {37, 90, 37, 23, PixelMode::kRGB},    // horizontal only
      {90, 37, 17, 37, PixelMode::kL},      // vertical only
      {64, 97, 135, 205, PixelMode::kL},    // odd factors
      {7, 3, 1, 1, PixelMode::kRGB},        // to a single pixel
      {1, 1, 5, 9, PixelMode::kRGB},        // from a single pixel
      {29, 61, 57, 20, PixelMode::kRGBA},   // opaque RGBA: premultiplication is the identity
      {3, 200, 2, 3, PixelMode::kRGB},      // strong downscale, wide kernels
  };
  uint32_t seed = 1;
  for (const Case& c : cases) {
    Image in = RandomImage(c.h, c.w, c.mode, seed++);
    if (c.mode == PixelMode::kRGBA) {
      for (size_t i = 3; i < in.pixels.size(); i += 4) in.pixels[i] = 255;
    }
    auto got = PilResize(in, c.oh, c.ow, ResampleFilter::kLanczos);
    ASSERT_TRUE(got.ok()) << got.status();
    Image want = RefLanczos(in, c.oh, c.ow);
    ASSERT_EQ(got->height, c.oh);
    ASSERT_EQ(got->width, c.ow);
    EXPECT_EQ(got->pixels, want.pixels) << c.h << "x" << c.w << " -> " << c.oh << "x" << c.ow;
  }
}

TEST(PilResample, SameSizeIsCopy) {
  Image in = RandomImage(10, 12, PixelMode::kRGBA, 7);
  for (auto f : {ResampleFilter::kLanczos, ResampleFilter::kNearest, ResampleFilter::kBicubic}) {
    auto got = PilResize(in, 10, 12, f);
    ASSERT_TRUE(got.ok());
    // Same size is a copy even for RGBA (no premultiply round trip).
    EXPECT_EQ(got->pixels, in.pixels);
  }
}

TEST(PilResample, ConstantImageStaysConstant) {
  for (auto f : {ResampleFilter::kLanczos, ResampleFilter::kBicubic, ResampleFilter::kBilinear,
                 ResampleFilter::kBox, ResampleFilter::kHamming}) {
    Image in = MakeImage(13, 17, PixelMode::kRGB);
    for (auto& v : in.pixels) v = 200;
    for (auto [oh, ow] : {std::pair{40, 3}, std::pair{5, 60}, std::pair{13, 100}}) {
      auto got = PilResize(in, oh, ow, f);
      ASSERT_TRUE(got.ok());
      for (uint8_t v : got->pixels) ASSERT_EQ(v, 200) << ResampleFilterName(f);
    }
  }
}

TEST(PilResample, NearestPicksPillowSourcePixels) {
  // 4 -> 10: the source position starts at 0.2 and is advanced by repeated addition of 0.4 in
  // double precision (not multiplied), so output 7 sits at 2.9999999999999996 -> source 2.
  Image in = MakeImage(1, 4, PixelMode::kL);
  for (int x = 0; x < 4; ++x) in.pixels[x] = static_cast<uint8_t>(10 * x);
  auto up = PilResize(in, 1, 10, ResampleFilter::kNearest);
  ASSERT_TRUE(up.ok());
  const std::vector<uint8_t> want = {0, 0, 10, 10, 10, 20, 20, 20, 30, 30};
  EXPECT_EQ(up->pixels, want);
  // 10 -> 4: (x + 0.5) * 2.5 -> 1, 3, 6, 8.
  Image in10 = MakeImage(1, 10, PixelMode::kL);
  for (int x = 0; x < 10; ++x) in10.pixels[x] = static_cast<uint8_t>(x);
  auto down = PilResize(in10, 1, 4, ResampleFilter::kNearest);
  ASSERT_TRUE(down.ok());
  EXPECT_EQ(down->pixels, (std::vector<uint8_t>{1, 3, 6, 8}));
}

TEST(PilResample, PaletteModeAlwaysNearest) {
  Image in = RandomImage(9, 11, PixelMode::kP, 3);
  auto a = PilResize(in, 20, 7, ResampleFilter::kLanczos);
  auto b = PilResize(in, 20, 7, ResampleFilter::kNearest);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->pixels, b->pixels);
  EXPECT_EQ(a->mode, PixelMode::kP);
}

TEST(PilResample, PremultiplyMatchesMulDiv255) {
  for (int a = 0; a < 256; ++a) {
    for (int c = 0; c < 256; ++c) {
      Image img = MakeImage(1, 1, PixelMode::kRGBA);
      img.pixels = {static_cast<uint8_t>(c), static_cast<uint8_t>(c), static_cast<uint8_t>(c),
                    static_cast<uint8_t>(a)};
      PremultiplyRgba(img);
      // MULDIV255 is round-half-up of c * a / 255.
      const int want = static_cast<int>(std::floor(c * a / 255.0 + 0.5));
      ASSERT_EQ(img.pixels[0], want) << c << " " << a;
      UnpremultiplyRgba(img);
      if (a == 0 || a == 255) {
        ASSERT_EQ(img.pixels[0], a == 0 ? 0 : c);
      } else {
        ASSERT_EQ(img.pixels[0], std::min(255, 255 * want / a));
      }
    }
  }
}

TEST(PilResample, RgbaUsesPremultipliedAlpha) {
  // A fully transparent red pixel next to an opaque blue one: with premultiplication the red
  // does not bleed into the result's colour.
  Image in = MakeImage(1, 2, PixelMode::kRGBA);
  in.pixels = {255, 0, 0, 0, 0, 0, 255, 255};
  auto out = PilResize(in, 1, 1, ResampleFilter::kBilinear);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->pixels[0], 0);
  EXPECT_EQ(out->pixels[2], 255);
  EXPECT_EQ(out->pixels[3], 128);
}

TEST(PilResample, RejectsBadInput) {
  Image empty;
  EXPECT_EQ(PilResize(empty, 4, 4, ResampleFilter::kLanczos).status().code(),
            absl::StatusCode::kInvalidArgument);
  Image in = MakeImage(4, 4, PixelMode::kRGB);
  EXPECT_EQ(PilResize(in, 0, 4, ResampleFilter::kLanczos).status().code(),
            absl::StatusCode::kInvalidArgument);
  in.pixels.pop_back();
  EXPECT_EQ(PilResize(in, 8, 8, ResampleFilter::kLanczos).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(ResampleFilterFromPil(6).ok());
  EXPECT_EQ(*ResampleFilterFromPil(1), ResampleFilter::kLanczos);
}

}  // namespace
}  // namespace smolserve::preprocess
