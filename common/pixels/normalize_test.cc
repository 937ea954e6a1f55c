#include "common/pixels/normalize.h"

#include <ATen/ATen.h>

#include "gtest/gtest.h"

namespace smolserve::pixels {
namespace {

TEST(NormalizeTiles, EveryTileWithItsFormula) {
  at::Tensor u8 = at::randint(0, 256, {2, 3, 4, 5}, at::TensorOptions().dtype(at::kByte));
  NormalizeParams p;
  p.mean = {0.48f, 0.45f, 0.4f};
  p.std = {0.26f, 0.26f, 0.27f};
  const std::vector<uint8_t> formulas = {0, 1};
  auto out = NormalizeTiles(u8, formulas, p);
  ASSERT_TRUE(out.ok()) << out.status();
  const auto image = NormalizeTables(NormalizeFormula::kImage, p);
  const auto video = NormalizeTables(NormalizeFormula::kVideo, p);
  for (int64_t i = 0; i < 2; ++i)
    for (int c = 0; c < 3; ++c)
      for (int y = 0; y < 4; ++y)
        for (int x = 0; x < 5; ++x) {
          const uint8_t v = u8[i][c][y][x].item<uint8_t>();
          const float want = (i == 0 ? image : video)[c][v];
          ASSERT_EQ((*out)[i][c][y][x].item<float>(), want);
        }
}

TEST(NormalizeTiles, RefusesBadInput) {
  NormalizeParams p;
  at::Tensor u8 = at::zeros({1, 3, 2, 2}, at::kByte);
  EXPECT_FALSE(NormalizeTiles(u8, {0, 0}, p).ok());
  EXPECT_FALSE(NormalizeTiles(u8, std::vector<uint8_t>{7}, p).ok());
  EXPECT_FALSE(NormalizeTiles(at::zeros({1, 3, 2, 2}, at::kFloat), std::vector<uint8_t>{0}, p).ok());
  NormalizeParams bad = p;
  bad.std[1] = 0;
  EXPECT_FALSE(NormalizeTiles(u8, std::vector<uint8_t>{0}, bad).ok());
}

}  // namespace
}  // namespace smolserve::pixels
