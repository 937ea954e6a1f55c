// Reader and writer for the safetensors format (8-byte little-endian header length, a JSON
// header, then raw little-endian tensor bytes). No LibTorch dependency: see torch_tensors.h.
//
// The reader memory-maps the file and validates the header completely before anything is
// exposed: sane header length, well-formed JSON, known dtypes, shapes whose element count
// times the dtype size equals the byte range, every range inside the data section, and no
// two ranges overlapping. A malformed file is an INVALID_ARGUMENT error, never a crash.
#ifndef SMOLSERVE_COMMON_SAFETENSORS_SAFETENSORS_H_
#define SMOLSERVE_COMMON_SAFETENSORS_SAFETENSORS_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include "absl/strings/string_view.h"
#include <vector>

#include "absl/status/statusor.h"

namespace smolserve::safetensors {

enum class DType { kBool, kU8, kI8, kI16, kI32, kI64, kF16, kBF16, kF32, kF64 };

// "F32", "BF16", ... as written in safetensors headers.
absl::string_view DTypeName(DType dtype);
absl::StatusOr<DType> ParseDType(absl::string_view name);
size_t DTypeSize(DType dtype);

struct TensorView {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;  // points into the mapped file
  size_t nbytes = 0;

  int64_t numel() const;
};

// A memory-mapped, validated safetensors file. Views stay valid while the File lives.
class File {
 public:
  static absl::StatusOr<std::unique_ptr<File>> Open(const std::string& path);
  ~File();
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  const std::string& path() const { return path_; }
  // Tensors in header order.
  const std::vector<TensorView>& tensors() const { return tensors_; }
  // nullptr when absent.
  const TensorView* Find(absl::string_view name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  File() = default;
  std::string path_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  std::vector<TensorView> tensors_;
  std::map<std::string, size_t, std::less<>> index_;
  std::map<std::string, std::string> metadata_;
};

// Builds a safetensors file in memory; tensors are written in insertion order.
class Writer {
 public:
  // Copies `nbytes` from `data`. Fails if the name repeats or nbytes != numel * dtype size.
  absl::Status Add(const std::string& name, DType dtype, std::vector<int64_t> shape,
                   const void* data, size_t nbytes);
  void SetMetadata(const std::string& key, const std::string& value) { metadata_[key] = value; }
  std::string Serialize() const;  // the whole file in memory
  absl::Status WriteFile(const std::string& path) const;

 private:
  std::string HeaderBytes() const;  // length prefix + padded JSON header
  struct Entry {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    std::string bytes;
  };
  std::vector<Entry> entries_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace smolserve::safetensors

#endif  // SMOLSERVE_COMMON_SAFETENSORS_SAFETENSORS_H_
