#include "common/model/linear.h"

#include <ATen/ATen.h>

#include "gtest/gtest.h"

namespace smolserve::model {
namespace {

double MaxDiff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

TEST(LinearTest, MatchesAtLinearFloat32) {
  at::manual_seed(1);
  const at::Tensor x = at::randn({2, 37, 96});
  const at::Tensor w = at::randn({53, 96});
  const at::Tensor b = at::randn({53});
  const at::Tensor want = at::linear(x.to(at::kDouble), w.to(at::kDouble), b.to(at::kDouble));
  const at::Tensor got = Linear(x, w, b);
  ASSERT_EQ(got.sizes(), (std::vector<int64_t>{2, 37, 53}));
  EXPECT_EQ(got.scalar_type(), at::kFloat);
  EXPECT_LT(MaxDiff(got, want), 1e-4);
  EXPECT_LT(MaxDiff(Linear(x, w), at::linear(x.to(at::kDouble), w.to(at::kDouble))), 1e-4);
}

TEST(LinearTest, NonContiguousInput) {
  at::manual_seed(2);
  const at::Tensor x = at::randn({64, 40}).t();  // [40, 64], strides (1, 40)
  const at::Tensor w = at::randn({8, 64});
  EXPECT_LT(MaxDiff(Linear(x, w), at::linear(x, w)), 1e-4);
}

TEST(LinearTest, Bf16FallsBackToAten) {
  at::manual_seed(3);
  const at::Tensor x = at::randn({5, 16}).to(at::kBFloat16);
  const at::Tensor w = at::randn({7, 16}).to(at::kBFloat16);
  const at::Tensor got = Linear(x, w);
  EXPECT_EQ(got.scalar_type(), at::kBFloat16);
  EXPECT_TRUE(at::equal(got, at::linear(x, w)));
}

TEST(LinearTest, SgemmTransposes) {
  at::manual_seed(4);
  const at::Tensor a = at::randn({6, 4});  // used as A^T: op(A) = [4, 6]
  const at::Tensor b = at::randn({6, 5});
  at::Tensor c = at::ones({4, 5});
  ASSERT_TRUE(Sgemm(true, false, 4, 5, 6, 2.0f, a.data_ptr<float>(), 4, b.data_ptr<float>(), 5,
                    0.5f, c.data_ptr<float>(), 5));
  EXPECT_LT(MaxDiff(c, 2 * at::mm(a.t(), b) + 0.5), 1e-5);
  EXPECT_FALSE(Sgemm(false, false, 0, 5, 6, 1.0f, nullptr, 6, nullptr, 5, 0.0f, nullptr, 5));
}

}  // namespace
}  // namespace smolserve::model
