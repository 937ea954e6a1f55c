#include "common/safetensors/torch_tensors.h"

#include <cstring>

#include <ATen/ATen.h>

#include "absl/strings/str_cat.h"

namespace smolserve::safetensors {
namespace {

absl::StatusOr<at::ScalarType> ToScalarType(DType d) {
  switch (d) {
    case DType::kBool: return at::kBool;
    case DType::kU8: return at::kByte;
    case DType::kI8: return at::kChar;
    case DType::kI16: return at::kShort;
    case DType::kI32: return at::kInt;
    case DType::kI64: return at::kLong;
    case DType::kF16: return at::kHalf;
    case DType::kBF16: return at::kBFloat16;
    case DType::kF32: return at::kFloat;
    case DType::kF64: return at::kDouble;
  }
  return absl::InvalidArgumentError("unknown dtype");
}

absl::StatusOr<DType> FromScalarType(at::ScalarType t) {
  switch (t) {
    case at::kBool: return DType::kBool;
    case at::kByte: return DType::kU8;
    case at::kChar: return DType::kI8;
    case at::kShort: return DType::kI16;
    case at::kInt: return DType::kI32;
    case at::kLong: return DType::kI64;
    case at::kHalf: return DType::kF16;
    case at::kBFloat16: return DType::kBF16;
    case at::kFloat: return DType::kF32;
    case at::kDouble: return DType::kF64;
    default:
      return absl::InvalidArgumentError(absl::StrCat("dtype ", c10::toString(t),
                                                     " cannot be stored in safetensors"));
  }
}

}  // namespace

absl::StatusOr<at::Tensor> ToTensor(const TensorView& view) {
  auto st = ToScalarType(view.dtype);
  if (!st.ok()) return st.status();
  at::Tensor t = at::empty(view.shape, at::TensorOptions().dtype(*st));
  if (view.nbytes > 0) std::memcpy(t.data_ptr(), view.data, view.nbytes);
  return t;
}

absl::Status AddTensor(Writer& writer, const std::string& name, const at::Tensor& tensor) {
  auto dtype = FromScalarType(tensor.scalar_type());
  if (!dtype.ok()) return dtype.status();
  at::Tensor c = tensor.detach().to(at::kCPU).contiguous();
  return writer.Add(name, *dtype, c.sizes().vec(), c.data_ptr(),
                    static_cast<size_t>(c.numel()) * c.element_size());
}

}  // namespace smolserve::safetensors
