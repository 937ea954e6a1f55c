// Strict checkpoint weight loading.
//
// A WeightStore holds the tensors of a checkpoint (one `model.safetensors`, or the shards
// listed by `model.safetensors.index.json`). Model modules request each tensor by the
// checkpoint's exact key name, with the shape they expect and the dtype they compute in:
//
//   ASSIGN_OR_RETURN(at::Tensor w, store.Take("model.norm.weight", {960}, at::kFloat));
//
// After all modules are built, CheckAllUsed() fails if any tensor in the checkpoint was
// never requested, so a checkpoint that does not match the architecture is an error rather
// than silently half-loaded.
#ifndef SMOLSERVE_COMMON_MODEL_WEIGHTS_H_
#define SMOLSERVE_COMMON_MODEL_WEIGHTS_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace smolserve::safetensors {
class File;
struct TensorView;
}  // namespace smolserve::safetensors

namespace smolserve::model {

class WeightStore {
 public:
  // Opens `<model_dir>/model.safetensors` if present, else
  // `<model_dir>/model.safetensors.index.json` and every shard its weight_map names.
  // NOT_FOUND when neither exists; INVALID_ARGUMENT for a corrupt/truncated file, a bad
  // index (malformed JSON, shard names leaving the directory, a tensor listed in the index
  // but absent from its shard, a tensor present in two shards).
  static absl::StatusOr<std::unique_ptr<WeightStore>> Open(absl::string_view model_dir);

  // Opens an explicit list of safetensors files (their union; duplicate names are an error).
  static absl::StatusOr<std::unique_ptr<WeightStore>> OpenFiles(
      const std::vector<std::string>& paths);

  // An in-memory store (tests, benchmarks). Tensors must be CPU tensors.
  static std::unique_ptr<WeightStore> FromTensors(std::map<std::string, at::Tensor> tensors);

  ~WeightStore();
  WeightStore(const WeightStore&) = delete;
  WeightStore& operator=(const WeightStore&) = delete;

  // Returns a new contiguous CPU tensor holding `name`, converted to `dtype`, and marks the
  // name used. Floating checkpoint dtypes (F32, BF16, F16, F64) convert to any floating
  // `dtype`; other checkpoint dtypes must equal `dtype` exactly. Taking the same name twice
  // is allowed (e.g. tied embeddings).
  //   NOT_FOUND        "missing tensor 'X'"
  //   INVALID_ARGUMENT "tensor 'X' has shape [a, b], expected [c, d]" / dtype mismatch
  absl::StatusOr<at::Tensor> Take(absl::string_view name, std::vector<int64_t> expected_shape,
                                  at::ScalarType dtype);

  // Whether the checkpoint has a tensor `name` (does not mark it used).
  bool Contains(absl::string_view name) const;
  // Shape of `name`, or nullopt when absent (does not mark it used).
  std::optional<std::vector<int64_t>> ShapeOf(absl::string_view name) const;
  // All tensor names, sorted.
  std::vector<std::string> Names() const;

  // OK when every tensor has been taken; otherwise INVALID_ARGUMENT
  // "N unused tensor(s) in checkpoint: a, b, ..." (the first 20 names, sorted).
  absl::Status CheckAllUsed() const;

 private:
  WeightStore();
  struct Entry;
  std::vector<std::unique_ptr<safetensors::File>> files_;
  std::map<std::string, std::unique_ptr<Entry>, std::less<>> entries_;
  std::set<std::string, std::less<>> used_;
};

}  // namespace smolserve::model

#endif  // SMOLSERVE_COMMON_MODEL_WEIGHTS_H_
