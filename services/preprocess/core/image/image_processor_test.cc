#include "services/preprocess/core/image/image_processor.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "services/preprocess/core/image/pil_resample.h"

namespace smolserve::preprocess {
namespace {

Image RandomImage(int h, int w, PixelMode mode, uint32_t seed) {
  Image img = MakeImage(h, w, mode);
  std::mt19937 rng(seed);
  for (auto& v : img.pixels) v = static_cast<uint8_t>(rng() & 0xff);
  return img;
}

struct GeometryCase {
  int h, w, L, T;
  int ah, aw;  // step A
  int bh, bw;  // step B
  int rows, cols;
};

TEST(ImageProcessor, GeometryMatchesReferenceTable) {
  // reference doc section 1.11 (HF columns) and the golden cases.
  const GeometryCase cases[] = {
      {480, 640, 2048, 512, 1536, 2048, 1536, 2048, 3, 4},
      {1080, 1920, 2048, 512, 1152, 2048, 1536, 2048, 3, 4},
      {100, 80, 2048, 512, 2048, 1638, 2048, 2048, 4, 4},
      {1000, 700, 2048, 512, 2048, 1434, 2048, 1536, 4, 3},
      {300, 2000, 2048, 512, 308, 2048, 512, 2048, 1, 4},
      {4000, 3000, 2048, 512, 2048, 1536, 2048, 1536, 4, 3},
      {480, 640, 1536, 384, 1152, 1536, 1152, 1536, 3, 4},
      {100, 80, 1536, 384, 1536, 1228, 1536, 1536, 4, 4},
      {2000, 1001, 1536, 384, 1536, 768, 1536, 768, 4, 2},
      {1, 5000, 1536, 384, 1, 1536, 384, 1536, 1, 4},
      {480, 512, 2048, 512, 1920, 2048, 2048, 2048, 4, 4},  // single_image
      {1201, 37, 2048, 512, 2048, 64, 2048, 512, 4, 1},     // odd_size_image
      {512, 512, 1024, 512, 1024, 1024, 1024, 1024, 2, 2},  // longest_edge_1024
      {342, 548, 2048, 512, 1278, 2048, 1536, 2048, 3, 4},  // two_images (messi5)
  };
  for (const GeometryCase& c : cases) {
    ImageProcessorOptions o;
    o.longest_edge = c.L;
    o.max_image_size = c.T;
    auto g = ComputeImageGeometry(c.h, c.w, o);
    ASSERT_TRUE(g.ok()) << g.status();
    SCOPED_TRACE(testing::Message() << c.h << "x" << c.w << " L=" << c.L << " T=" << c.T);
    EXPECT_EQ(g->resized_height, c.ah);
    EXPECT_EQ(g->resized_width, c.aw);
    EXPECT_EQ(g->split_height, c.bh);
    EXPECT_EQ(g->split_width, c.bw);
    EXPECT_EQ(g->rows, c.rows);
    EXPECT_EQ(g->cols, c.cols);
    EXPECT_EQ(g->num_tiles, c.rows * c.cols + 1);
  }
}

TEST(ImageProcessor, StepAClampsBelow4096AndBumpsOddSides) {
  int h, w;
  LongestEdgeResizeSize(1000, 1000, 2047, &h, &w);  // odd L: the short side is bumped to 2048
  EXPECT_EQ(h, 2048);
  EXPECT_EQ(w, 2047);
  LongestEdgeResizeSize(300, 1000, 8192, &h, &w);
  EXPECT_EQ(w, 4096);
  EXPECT_EQ(h, 1229);  // step A gives 2458 x 8192, then int(4096 / (8192 / 2458))
  LongestEdgeResizeSize(3, 10000, 2048, &h, &w);
  EXPECT_EQ(h, 1);  // int(2048 / (10000 / 3)) = 0 (even, not bumped), then max(0, 1)
  EXPECT_EQ(w, 2048);
}

TEST(ImageProcessor, ValidatesOptions) {
  ImageProcessorOptions o;
  EXPECT_TRUE(ValidateImageProcessorOptions(o).ok());
  o.max_image_size = 0;
  EXPECT_EQ(ValidateImageProcessorOptions(o).code(), absl::StatusCode::kInvalidArgument);
  o = ImageProcessorOptions{};
  o.longest_edge = 4096;  // 8 x 8 grid
  EXPECT_EQ(ValidateImageProcessorOptions(o).code(), absl::StatusCode::kInvalidArgument);
  o.longest_edge = 3072;  // 6 x 6
  EXPECT_TRUE(ValidateImageProcessorOptions(o).ok());
  o.longest_edge = 3073;  // odd: a square image becomes 3074 high -> 7 rows
  EXPECT_EQ(ValidateImageProcessorOptions(o).code(), absl::StatusCode::kInvalidArgument);
  o.do_image_splitting = false;  // no grid, any L up to the cap
  EXPECT_TRUE(ValidateImageProcessorOptions(o).ok());
  o.longest_edge = -1;
  EXPECT_EQ(ValidateImageProcessorOptions(o).code(), absl::StatusCode::kInvalidArgument);
  o = ImageProcessorOptions{};
  o.resample = static_cast<ResampleFilter>(9);
  EXPECT_EQ(ValidateImageProcessorOptions(o).code(), absl::StatusCode::kInvalidArgument);

  // Without step A the grid depends on the image: rejected per image.
  ImageProcessorOptions no_resize;
  no_resize.do_resize = false;
  auto big = ProcessImage(MakeImage(3600, 100, PixelMode::kRGB), no_resize);
  EXPECT_EQ(big.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ProcessImage(Image{}, ImageProcessorOptions{}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ImageProcessor, TilesAreRowMajorCropsPlusGlobal) {
  const Image img = RandomImage(60, 90, PixelMode::kRGB, 1);
  ImageProcessorOptions o;
  o.longest_edge = 96;
  o.max_image_size = 32;
  auto r = ProcessImage(img, o);
  ASSERT_TRUE(r.ok()) << r.status();
  // 60x90 -> step A 64x96 -> step B 64x96 (same size: a copy) -> 2 x 3 tiles + global.
  EXPECT_EQ(r->rows, 2);
  EXPECT_EQ(r->cols, 3);
  ASSERT_EQ(r->tiles.size(), 7u);
  const Image a = *PilResize(img, 64, 96, ResampleFilter::kLanczos);
  for (int row = 0; row < 2; ++row) {
    for (int col = 0; col < 3; ++col) {
      const Image& t = r->tiles[row * 3 + col];
      ASSERT_EQ(t.height, 32);
      for (int y = 0; y < 32; ++y) {
        ASSERT_EQ(0, std::memcmp(t.row(y), a.row(row * 32 + y) + col * 32 * 3, 32 * 3));
      }
    }
  }
  EXPECT_EQ(r->tiles[6].pixels, PilResize(a, 32, 32, ResampleFilter::kLanczos)->pixels);
  ASSERT_EQ(r->resize_calls.size(), 3u);
  EXPECT_EQ(r->resize_calls[1].stage, ResizeStage::kVisionEncoder);
  EXPECT_EQ(r->resize_calls[1].in_height, 64);
  EXPECT_EQ(r->resize_calls[1].out_height, 64);  // recorded although it is a copy
  EXPECT_EQ(r->resize_calls[2].stage, ResizeStage::kGlobal);
}

TEST(ImageProcessor, SingleImagePathAndNoSplitting) {
  const Image img = RandomImage(200, 300, PixelMode::kRGB, 2);
  ImageProcessorOptions o;
  o.do_resize = false;  // 200x300 -> step B 512x512: fits one tile, no global image
  auto r = ProcessImage(img, o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->rows, 0);
  EXPECT_EQ(r->cols, 0);
  ASSERT_EQ(r->tiles.size(), 1u);
  EXPECT_EQ(r->tiles[0].pixels, PilResize(img, 512, 512, ResampleFilter::kLanczos)->pixels);

  ImageProcessorOptions same;
  same.longest_edge = 512;  // L == T: step A gives 512x512 (square), a single image
  auto s = ProcessImage(RandomImage(100, 100, PixelMode::kRGB, 3), same);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->rows, 0);
  EXPECT_EQ(s->tiles.size(), 1u);

  ImageProcessorOptions flat;
  flat.do_image_splitting = false;
  auto f = ProcessImage(img, flat);
  ASSERT_TRUE(f.ok());
  ASSERT_EQ(f->tiles.size(), 1u);
  const Image a = *PilResize(img, 1366, 2048, ResampleFilter::kLanczos);
  EXPECT_EQ(f->tiles[0].pixels, PilResize(a, 512, 512, ResampleFilter::kLanczos)->pixels);
  EXPECT_EQ(f->resize_calls.back().stage, ResizeStage::kSquare);
}

TEST(ImageProcessor, GreyscaleIsResampledNearestThenReplicated) {
  const Image grey = RandomImage(40, 50, PixelMode::kL, 4);
  ImageProcessorOptions o;
  o.longest_edge = 100;
  o.max_image_size = 50;
  auto r = ProcessImage(grey, o);
  ASSERT_TRUE(r.ok()) << r.status();
  // Same as the palette route: expand grey to RGB, resample NEAREST.
  Image as_p = MakeImage(40, 50, PixelMode::kP);
  for (size_t i = 0; i < grey.pixels.size(); ++i) {
    as_p.pixels[3 * i] = as_p.pixels[3 * i + 1] = as_p.pixels[3 * i + 2] = grey.pixels[i];
  }
  auto p = ProcessImage(as_p, o);
  ASSERT_TRUE(p.ok());
  ASSERT_EQ(r->tiles.size(), p->tiles.size());
  for (size_t i = 0; i < r->tiles.size(); ++i) {
    EXPECT_EQ(r->tiles[i].mode, PixelMode::kRGB);
    EXPECT_EQ(r->tiles[i].pixels, p->tiles[i].pixels) << i;
  }
  EXPECT_EQ(r->resize_calls[0].channels, 1);
  EXPECT_EQ(p->resize_calls[0].channels, 1);  // a palette image is an index array there
}

TEST(ImageProcessor, AlphaCompositeOverWhiteMatchesPillowIntegerFormula) {
  Image rgba = MakeImage(256, 256, PixelMode::kRGBA);
  for (int a = 0; a < 256; ++a) {
    for (int c = 0; c < 256; ++c) {
      uint8_t* p = rgba.row(a) + 4 * c;
      p[0] = static_cast<uint8_t>(c);
      p[1] = static_cast<uint8_t>(255 - c);
      p[2] = static_cast<uint8_t>(c / 2);
      p[3] = static_cast<uint8_t>(a);
    }
  }
  const Image rgb = ConvertToRgb(rgba);
  ASSERT_EQ(rgb.mode, PixelMode::kRGB);
  for (int a = 0; a < 256; ++a) {
    for (int c = 0; c < 256; ++c) {
      for (int ch = 0; ch < 3; ++ch) {
        const int src = rgba.row(a)[4 * c + ch];
        int want;
        if (a == 0) {
          want = 255;
        } else {
          // ImagingAlphaComposite with dst = (255, 255, 255, 255), 7 extra bits.
          const uint32_t outa255 = a * 255 + 255 * (255 - a);
          const uint32_t coef1 = a * 255 * 255 * 128 / outa255;
          const uint32_t coef2 = 255 * 128 - coef1;
          const uint32_t tmp = src * coef1 + 255 * coef2 + (0x80 << 7);
          want = static_cast<int>((((tmp >> 8) + tmp) >> 8) >> 7);
        }
        ASSERT_EQ(rgb.row(a)[3 * c + ch], want) << "a=" << a << " c=" << src;
        // Within one level of the real-valued composite.
        const double exact = (src * a + 255.0 * (255 - a)) / 255.0;
        ASSERT_LE(std::abs(want - exact), 1.0);
      }
    }
  }
  // Opaque stays, transparent becomes white.
  EXPECT_EQ(rgb.row(255)[3 * 10], 10);
  EXPECT_EQ(rgb.row(0)[3 * 10], 255);
}

}  // namespace
}  // namespace smolserve::preprocess
