#include "services/preprocess/core/video/antialias_resize.h"

#include <cstdint>

#include "gtest/gtest.h"

namespace smolserve::preprocess {
namespace {

Image Gradient(int h, int w) {
  Image img = MakeImage(h, w, PixelMode::kRGB);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      uint8_t* p = img.row(y) + 3 * x;
      p[0] = static_cast<uint8_t>((x * 255) / (w > 1 ? w - 1 : 1));
      p[1] = static_cast<uint8_t>((y * 255) / (h > 1 ? h - 1 : 1));
      p[2] = static_cast<uint8_t>((x * 7 + y * 13) % 256);
    }
  }
  return img;
}

TEST(BicubicAntialiasWeights, UpscaleUsesFiveTapRowsAndPrecision) {
  auto w = BicubicAntialiasWeights(720, 2048);
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->taps, 5);  // support 2 -> ceil(2) * 2 + 1
  // Largest weight is < 1 and >= 0.5, so 2^14 * max < 2^15 breaks at precision 14.
  EXPECT_GE(w->precision, 13u);
  EXPECT_LE(w->precision, 15u);
  for (int64_t i = 0; i < w->out_size; ++i) {
    int32_t sum = 0;
    for (int64_t j = 0; j < w->count[i]; ++j) sum += w->weights[i * w->taps + j];
    // Normalised weights round to within a few LSB of 1.0.
    EXPECT_NEAR(sum, 1 << w->precision, 3) << i;
  }
}

TEST(BicubicAntialiasWeights, DownscaleSupportGrowsWithScale) {
  auto w = BicubicAntialiasWeights(2048, 512);
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w->taps, 17);  // support 2 * 4 = 8
  EXPECT_EQ(w->first[0], 0);
  EXPECT_EQ(w->count[0], 10);  // center 2, [0, int(10.5)) = 10 taps
  EXPECT_FALSE(BicubicAntialiasWeights(0, 5).ok());
}

TEST(ResizeBicubicAntialias, SameSizeIsIdentity) {
  const Image img = Gradient(7, 9);
  auto out = ResizeBicubicAntialias(img, 7, 9);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->pixels, img.pixels);
}

TEST(ResizeBicubicAntialias, ConstantImageStaysConstant) {
  Image img = MakeImage(30, 41, PixelMode::kRGB);
  for (size_t i = 0; i < img.pixels.size(); ++i) img.pixels[i] = (i % 3 == 0) ? 200 : 17;
  for (auto [h, w] : {std::pair{512, 512}, std::pair{5, 3}, std::pair{30, 100}}) {
    auto out = ResizeBicubicAntialias(img, h, w);
    ASSERT_TRUE(out.ok());
    ASSERT_EQ(out->height, h);
    ASSERT_EQ(out->width, w);
    for (size_t i = 0; i < out->pixels.size(); ++i) {
      ASSERT_EQ(out->pixels[i], (i % 3 == 0) ? 200 : 17) << h << "x" << w << " at " << i;
    }
  }
}

TEST(ResizeBicubicAntialias, HandlesOneChannelAndTinySizes) {
  Image img = MakeImage(3, 2, PixelMode::kL);
  img.pixels = {0, 255, 255, 0, 10, 20};
  auto out = ResizeBicubicAntialias(img, 1, 1);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->pixels.size(), 1u);
  auto up = ResizeBicubicAntialias(img, 9, 4);
  ASSERT_TRUE(up.ok());
  EXPECT_EQ(up->pixels.size(), 36u);
}

TEST(ResizeBicubicAntialias, RejectsBadSizes) {
  const Image img = Gradient(4, 4);
  EXPECT_FALSE(ResizeBicubicAntialias(img, 0, 4).ok());
  Image broken = img;
  broken.pixels.resize(5);
  EXPECT_FALSE(ResizeBicubicAntialias(broken, 8, 8).ok());
  EXPECT_FALSE(ResizeBicubicAntialias(img, 1 << 20, 1 << 20).ok());
}

}  // namespace
}  // namespace smolserve::preprocess
