#include "common/grpc/tensor_proto.h"

#include <cstdint>
#include <string>

#include <ATen/ATen.h>

#include "gtest/gtest.h"

namespace smolserve::grpc_util {
namespace {

v1::Tensor Proto(v1::Tensor::DType dtype, std::vector<int64_t> shape, std::string data) {
  v1::Tensor t;
  t.set_dtype(dtype);
  for (int64_t d : shape) t.add_shape(d);
  t.set_data(std::move(data));
  return t;
}

TEST(TensorProto, RoundTrip) {
  const at::Tensor x = at::arange(6, at::kFloat).reshape({2, 3});
  v1::Tensor proto;
  ASSERT_TRUE(TensorToProto(x.t(), &proto).ok());  // any layout: sent contiguous
  auto y = TensorFromProto(proto, "x");
  ASSERT_TRUE(y.ok()) << y.status();
  EXPECT_TRUE(at::equal(*y, x.t().contiguous()));
  EXPECT_EQ(y->scalar_type(), at::kFloat);
}

TEST(TensorProto, RefusesMismatches) {
  EXPECT_EQ(TensorFromProto(Proto(v1::Tensor::FLOAT32, {2}, std::string(7, '\0')), "t").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(TensorFromProto(Proto(v1::Tensor::DTYPE_UNSPECIFIED, {1}, "x"), "t").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(TensorFromProto(Proto(v1::Tensor::UINT8, {-1}, ""), "t").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(TensorFromProto(Proto(v1::Tensor::UINT8, {1 << 20, 1 << 20}, ""), "t").status().code(),
            absl::StatusCode::kResourceExhausted);
  auto empty = TensorFromProto(Proto(v1::Tensor::INT64, {0, 5}, ""), "t");
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_EQ(empty->numel(), 0);
}

// Found by tests/fuzz/tensor_proto_fuzzer: the tensor was allocated from the shape before the
// byte count was checked, so a request of a few bytes made the stage allocate up to
// max_elements elements (16 GiB of int64 with the default limit). A 1 TiB shape now fails the
// byte check instead of the allocation (which threw out of TensorFromProto).
TEST(TensorProto, ChecksTheByteCountBeforeAllocating) {
  auto t = TensorFromProto(Proto(v1::Tensor::UINT8, {int64_t{1} << 40}, "abc"), "big",
                           /*max_elements=*/int64_t{1} << 41);
  EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(t.status().message().find("3 bytes for 1099511627776 elements"), std::string::npos)
      << t.status();
  // Element counts whose byte size does not fit a size_t.
  auto huge = TensorFromProto(Proto(v1::Tensor::INT64, {int64_t{1} << 62}, ""), "huge",
                              /*max_elements=*/INT64_MAX);
  EXPECT_EQ(huge.status().code(), absl::StatusCode::kResourceExhausted);
}

}  // namespace
}  // namespace smolserve::grpc_util
