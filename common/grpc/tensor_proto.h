// at::Tensor <-> smolserve.v1.Tensor (raw little-endian bytes, row-major).
#ifndef SMOLSERVE_COMMON_GRPC_TENSOR_PROTO_H_
#define SMOLSERVE_COMMON_GRPC_TENSOR_PROTO_H_

#include <cstdint>

#include <ATen/core/Tensor.h>

#include "absl/status/statusor.h"
#include "proto/smolserve/v1/common.pb.h"

namespace smolserve::grpc_util {

// Copies a CPU tensor (any layout) into `out`.
absl::Status TensorToProto(const at::Tensor& tensor, v1::Tensor* out);

// Validates dtype, shape (non-negative, at most `max_elements` in total) and byte count,
// then copies into a new CPU tensor. INVALID_ARGUMENT naming `what` on any mismatch.
absl::StatusOr<at::Tensor> TensorFromProto(const v1::Tensor& proto, absl::string_view what,
                                           int64_t max_elements = int64_t{1} << 31);

}  // namespace smolserve::grpc_util

#endif  // SMOLSERVE_COMMON_GRPC_TENSOR_PROTO_H_
