// Conversions between safetensors views and ATen tensors.
#ifndef SMOLSERVE_COMMON_SAFETENSORS_TORCH_TENSORS_H_
#define SMOLSERVE_COMMON_SAFETENSORS_TORCH_TENSORS_H_

#include <string>

#include <ATen/core/Tensor.h>

#include "absl/status/statusor.h"
#include "common/safetensors/safetensors.h"

namespace smolserve::safetensors {

// Copies the view into a new contiguous CPU tensor of its own dtype.
absl::StatusOr<at::Tensor> ToTensor(const TensorView& view);

// Adds a CPU tensor (any layout; copied contiguous) under `name`.
absl::Status AddTensor(Writer& writer, const std::string& name, const at::Tensor& tensor);

}  // namespace smolserve::safetensors

#endif  // SMOLSERVE_COMMON_SAFETENSORS_TORCH_TENSORS_H_
