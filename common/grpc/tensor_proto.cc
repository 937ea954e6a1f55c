#include "common/grpc/tensor_proto.h"

#include <cstring>
#include <limits>

#include <ATen/ATen.h>

#include "absl/strings/str_cat.h"

namespace smolserve::grpc_util {
namespace {

absl::StatusOr<at::ScalarType> ToScalarType(v1::Tensor::DType d) {
  switch (d) {
    case v1::Tensor::FLOAT32: return at::kFloat;
    case v1::Tensor::BFLOAT16: return at::kBFloat16;
    case v1::Tensor::FLOAT16: return at::kHalf;
    case v1::Tensor::INT64: return at::kLong;
    case v1::Tensor::INT32: return at::kInt;
    case v1::Tensor::UINT8: return at::kByte;
    case v1::Tensor::BOOL: return at::kBool;
    default: return absl::InvalidArgumentError("unsupported tensor dtype");
  }
}

absl::StatusOr<v1::Tensor::DType> FromScalarType(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return v1::Tensor::FLOAT32;
    case at::kBFloat16: return v1::Tensor::BFLOAT16;
    case at::kHalf: return v1::Tensor::FLOAT16;
    case at::kLong: return v1::Tensor::INT64;
    case at::kInt: return v1::Tensor::INT32;
    case at::kByte: return v1::Tensor::UINT8;
    case at::kBool: return v1::Tensor::BOOL;
    default: return absl::InvalidArgumentError(absl::StrCat("cannot send dtype ", c10::toString(t)));
  }
}

}  // namespace

absl::Status TensorToProto(const at::Tensor& tensor, v1::Tensor* out) {
  auto dtype = FromScalarType(tensor.scalar_type());
  if (!dtype.ok()) return dtype.status();
  const at::Tensor c = tensor.detach().to(at::kCPU).contiguous();
  out->set_dtype(*dtype);
  out->clear_shape();
  for (int64_t d : c.sizes()) out->add_shape(d);
  out->set_data(c.data_ptr(), static_cast<size_t>(c.numel()) * c.element_size());
  return absl::OkStatus();
}

absl::StatusOr<at::Tensor> TensorFromProto(const v1::Tensor& proto, absl::string_view what,
                                           int64_t max_elements) {
  auto st = ToScalarType(proto.dtype());
  if (!st.ok()) return absl::InvalidArgumentError(absl::StrCat(what, ": unsupported dtype"));
  std::vector<int64_t> shape;
  int64_t numel = 1;
  for (int64_t d : proto.shape()) {
    if (d < 0) return absl::InvalidArgumentError(absl::StrCat(what, ": negative dimension"));
    if (d != 0 && numel > max_elements / d) {
      return absl::ResourceExhaustedError(absl::StrCat(what, ": more than ", max_elements, " elements"));
    }
    numel *= d;
    shape.push_back(d);
  }
  // The byte count is checked before allocating: a few bytes of proto must not make the
  // stage allocate max_elements elements.
  const size_t element_size = c10::elementSize(*st);
  if (static_cast<uint64_t>(numel) > std::numeric_limits<size_t>::max() / element_size) {
    return absl::ResourceExhaustedError(absl::StrCat(what, ": ", numel, " elements is too large"));
  }
  const size_t nbytes = static_cast<size_t>(numel) * element_size;
  if (proto.data().size() != nbytes) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": ", proto.data().size(),
                                                   " bytes for ", numel, " elements (expected ",
                                                   nbytes, ")"));
  }
  at::Tensor t = at::empty(shape, at::TensorOptions().dtype(*st));
  if (nbytes > 0) std::memcpy(t.data_ptr(), proto.data().data(), nbytes);
  return t;
}

}  // namespace smolserve::grpc_util
