#include "services/decoder/core/decode_kernels.h"

#include <tuple>
#include <vector>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

namespace smolserve::decoder::internal {
namespace {

using F32Kernel = void (*)(const float*, int64_t, int64_t, int64_t, const float*, int64_t,
                          float*, int64_t, bool);
// The dispatched kernel (register tiles where the CPU has AVX2+FMA or AVX-512) and the
// row-at-a-time fallback.
const std::vector<std::pair<const char*, F32Kernel>>& F32Kernels() {
  static const auto* k = new std::vector<std::pair<const char*, F32Kernel>>{
      {"dispatched", &GemvRows}, {"portable", &GemvRowsPortable}};
  return *k;
}

TEST(GemvRowsTest, MatchesMatmulForEveryBatchSizeAndRemainder) {
  at::manual_seed(3);
  for (auto [kernel_name, GemvRows] : F32Kernels())
  for (int64_t K : {8, 37, 64, 576}) {
    for (int64_t B = 1; B <= 11; ++B) {
      const int64_t N = 29;
      at::Tensor w = at::randn({N, K});
      at::Tensor x = at::randn({B, K});
      at::Tensor y0 = at::randn({B, N});
      const at::Tensor expect_set = at::mm(x, w.t());
      at::Tensor y = y0.clone();
      // Two row ranges, as parallel_for would split them.
      GemvRows(w.data_ptr<float>(), 0, 11, K, x.data_ptr<float>(), B, y.data_ptr<float>(), N,
               false);
      GemvRows(w.data_ptr<float>(), 11, N, K, x.data_ptr<float>(), B, y.data_ptr<float>(), N,
               false);
      EXPECT_TRUE(at::allclose(y, expect_set, 1e-5, 1e-4)) << kernel_name << " K=" << K << " B=" << B;
      y = y0.clone();
      GemvRows(w.data_ptr<float>(), 0, N, K, x.data_ptr<float>(), B, y.data_ptr<float>(), N,
               true);
      EXPECT_TRUE(at::allclose(y, y0 + expect_set, 1e-5, 1e-4)) << kernel_name << " K=" << K << " B=" << B;
    }
  }
}

TEST(GemvRowsTest, EachVectorIsBitIdenticalWhateverTheBatch) {
  at::manual_seed(5);
  // 130 rows and 50 vectors cross the kernels' cache blocks (of rows and of vectors) at K=576.
  for (auto [kernel_name, GemvRows] : F32Kernels())
  for (auto [K, N, B] : {std::tuple<int64_t, int64_t, int64_t>{37, 45, 16}, {576, 45, 16},
                         {1536, 45, 16}, {576, 130, 50}}) {
    at::Tensor w = at::randn({N, K});
    at::Tensor x = at::randn({B, K});
    at::Tensor batched = at::zeros({B, N});
    GemvRows(w.data_ptr<float>(), 0, N, K, x.data_ptr<float>(), B, batched.data_ptr<float>(), N,
             false);
    for (int64_t b = 0; b < B; ++b) {
      at::Tensor alone = at::zeros({1, N});
      at::Tensor xb = x.narrow(0, b, 1).contiguous();
      GemvRows(w.data_ptr<float>(), 0, 21, K, xb.data_ptr<float>(), 1, alone.data_ptr<float>(),
               N, false);
      GemvRows(w.data_ptr<float>(), 21, N, K, xb.data_ptr<float>(), 1, alone.data_ptr<float>(),
               N, false);
      EXPECT_TRUE(at::equal(alone[0], batched[b])) << kernel_name << " K=" << K << " row " << b;
    }
  }
}

// Symmetric per-row int8 weights and their float32 values.
struct Int8Rows {
  at::Tensor q, scales, dequantised;
};
Int8Rows RandomInt8Rows(int64_t N, int64_t K) {
  Int8Rows r;
  r.q = at::randint(-127, 128, {N, K}).to(at::kChar);
  r.scales = at::rand({N}) * 0.02 + 0.001;
  r.dequantised = r.q.to(at::kFloat) * r.scales.unsqueeze(1);
  return r;
}

using Int8Kernel = void (*)(const int8_t*, const float*, int64_t, int64_t, int64_t, const float*,
                            int64_t, float*, int64_t, bool);
// The dispatched kernel (AVX2+FMA where the CPU has them) and the portable fallback.
const std::vector<std::pair<const char*, Int8Kernel>>& Int8Kernels() {
  static const auto* k = new std::vector<std::pair<const char*, Int8Kernel>>{
      {"dispatched", &GemvRowsInt8}, {"portable", &GemvRowsInt8Portable}};
  return *k;
}

TEST(GemvRowsInt8Test, MatchesMatmulOfTheDequantisedWeights) {
  at::manual_seed(6);
  for (auto [kernel_name, GemvRowsInt8] : Int8Kernels())
  for (int64_t K : {8, 37, 64, 576}) {
    for (int64_t B = 1; B <= 9; ++B) {
      const int64_t N = 29;
      const Int8Rows w = RandomInt8Rows(N, K);
      at::Tensor x = at::randn({B, K});
      at::Tensor y0 = at::randn({B, N});
      const at::Tensor expect = at::mm(x.to(at::kDouble), w.dequantised.to(at::kDouble).t()).to(at::kFloat);
      at::Tensor y = y0.clone();
      GemvRowsInt8(w.q.data_ptr<int8_t>(), w.scales.data_ptr<float>(), 0, 11, K,
                   x.data_ptr<float>(), B, y.data_ptr<float>(), N, false);
      GemvRowsInt8(w.q.data_ptr<int8_t>(), w.scales.data_ptr<float>(), 11, N, K,
                   x.data_ptr<float>(), B, y.data_ptr<float>(), N, false);
      EXPECT_TRUE(at::allclose(y, expect, 1e-5, 1e-4)) << kernel_name << " K=" << K << " B=" << B;
      y = y0.clone();
      GemvRowsInt8(w.q.data_ptr<int8_t>(), w.scales.data_ptr<float>(), 0, N, K,
                   x.data_ptr<float>(), B, y.data_ptr<float>(), N, true);
      EXPECT_TRUE(at::allclose(y, y0 + expect, 1e-5, 1e-4)) << kernel_name << " K=" << K << " B=" << B;
    }
  }
}

TEST(GemvRowsInt8Test, EachVectorIsBitIdenticalWhateverTheBatch) {
  at::manual_seed(7);
  for (auto [kernel_name, GemvRowsInt8] : Int8Kernels())
  for (auto [K, N, B] : {std::tuple<int64_t, int64_t, int64_t>{37, 45, 13}, {576, 45, 13},
                         {1536, 45, 13}, {576, 600, 50}}) {
    const Int8Rows w = RandomInt8Rows(N, K);
    at::Tensor x = at::randn({B, K});
    at::Tensor batched = at::zeros({B, N});
    GemvRowsInt8(w.q.data_ptr<int8_t>(), w.scales.data_ptr<float>(), 0, N, K,
                 x.data_ptr<float>(), B, batched.data_ptr<float>(), N, false);
    for (int64_t b = 0; b < B; ++b) {
      at::Tensor alone = at::zeros({1, N});
      at::Tensor xb = x.narrow(0, b, 1).contiguous();
      GemvRowsInt8(w.q.data_ptr<int8_t>(), w.scales.data_ptr<float>(), 0, 21, K,
                   xb.data_ptr<float>(), 1, alone.data_ptr<float>(), N, false);
      GemvRowsInt8(w.q.data_ptr<int8_t>(), w.scales.data_ptr<float>(), 21, N, K,
                   xb.data_ptr<float>(), 1, alone.data_ptr<float>(), N, false);
      EXPECT_TRUE(at::equal(alone[0], batched[b])) << kernel_name << " K=" << K << " row " << b;
    }
  }
}

TEST(AttendOneHeadTest, MatchesMaskedSoftmaxAttention) {
  at::manual_seed(4);
  for (int64_t hd : {8, 12, 64}) {
    const int64_t T = 45;
    at::Tensor q = at::randn({hd});
    at::Tensor k = at::randn({T, hd});
    at::Tensor v = at::randn({T, hd});
    std::vector<char> valid(T, 1);
    for (int64_t t = 0; t < 7; ++t) valid[t] = 0;  // left padding
    valid[20] = 0;
    const float scale = 0.3f;
    at::Tensor mask = at::zeros({T});
    for (int64_t t = 0; t < T; ++t) {
      if (!valid[t]) mask[t] = std::numeric_limits<float>::lowest();
    }
    const at::Tensor probs = at::softmax(at::mv(k, q) * scale + mask, 0);
    const at::Tensor expect = at::mv(v.t(), probs);
    std::vector<float> scores(T);
    at::Tensor out = at::empty({hd});
    AttendOneHead(q.data_ptr<float>(), k.data_ptr<float>(), v.data_ptr<float>(),
                  reinterpret_cast<const bool*>(valid.data()), T, hd, scale, scores.data(),
                  out.data_ptr<float>());
    EXPECT_TRUE(at::allclose(out, expect, 1e-5, 1e-5)) << "hd=" << hd;
    EXPECT_EQ(scores[3], 0.0f);
    EXPECT_EQ(scores[20], 0.0f);
  }
}

}  // namespace
}  // namespace smolserve::decoder::internal
