// The revision of a model folder: a SHA-256 over its config.json and the full bytes of its
// weight files, so that anything keyed by it (the embedding cache) changes when the
// checkpoint does, even if the folder keeps its name, and so that the stages can check that
// they serve the same weights (the decoder refuses embeddings from another revision).
#ifndef SMOLSERVE_COMMON_MODEL_MODEL_REVISION_H_
#define SMOLSERVE_COMMON_MODEL_MODEL_REVISION_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace smolserve::model {

// Lower-case hex SHA-256 (64 characters) over, in this order, each as a (name, bytes) pair
// of length-prefixed fields: config.json, model.safetensors.index.json if present, then
// every *.safetensors file of the folder sorted by name. Files are streamed in chunks (about
// 0.5 s per GB). NOT_FOUND without config.json or without any *.safetensors file;
// UNAVAILABLE when a file cannot be read.
absl::StatusOr<std::string> ComputeModelRevision(absl::string_view model_dir);

}  // namespace smolserve::model

#endif  // SMOLSERVE_COMMON_MODEL_MODEL_REVISION_H_
