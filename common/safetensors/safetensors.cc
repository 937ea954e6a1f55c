#include "common/safetensors/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"

namespace smolserve::safetensors {
namespace {

// A header larger than this is rejected (real checkpoints use a few hundred KiB).
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

struct DTypeInfo {
  DType dtype;
  absl::string_view name;
  size_t size;
};
constexpr DTypeInfo kDTypes[] = {
    {DType::kBool, "BOOL", 1}, {DType::kU8, "U8", 1},     {DType::kI8, "I8", 1},
    {DType::kI16, "I16", 2},   {DType::kI32, "I32", 4},   {DType::kI64, "I64", 8},
    {DType::kF16, "F16", 2},   {DType::kBF16, "BF16", 2}, {DType::kF32, "F32", 4},
    {DType::kF64, "F64", 8},
};

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ","), "]");
}

}  // namespace

absl::string_view DTypeName(DType dtype) {
  for (const auto& d : kDTypes)
    if (d.dtype == dtype) return d.name;
  return "?";
}

absl::StatusOr<DType> ParseDType(absl::string_view name) {
  for (const auto& d : kDTypes)
    if (d.name == name) return d.dtype;
  return absl::InvalidArgumentError(absl::StrCat("unsupported dtype '", name, "'"));
}

size_t DTypeSize(DType dtype) {
  for (const auto& d : kDTypes)
    if (d.dtype == dtype) return d.size;
  return 0;
}

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

File::~File() {
  if (map_ != nullptr) munmap(map_, map_size_);
}

const TensorView* File::Find(absl::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

absl::StatusOr<std::unique_ptr<File>> File::Open(const std::string& path) {
  auto bad = [&](const std::string& what) {
    return absl::InvalidArgumentError(absl::StrCat("safetensors file '", path, "': ", what));
  };
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return absl::NotFoundError(
        absl::StrCat("cannot open '", path, "': ", std::strerror(errno)));
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    ::close(fd);
    return absl::InternalError(absl::StrCat("cannot stat '", path, "'"));
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size < 8) {
    ::close(fd);
    return bad(absl::StrCat("file is ", size, " bytes, shorter than the 8-byte header length"));
  }
  void* map = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) return absl::InternalError(absl::StrCat("cannot mmap '", path, "'"));

  std::unique_ptr<File> file(new File());
  file->path_ = path;
  file->map_ = map;
  file->map_size_ = size;
  const auto* base = static_cast<const uint8_t*>(map);

  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | base[i];
  if (header_len == 0 || header_len > kMaxHeaderBytes) {
    return bad(absl::StrCat("header length ", header_len, " is not sane"));
  }
  if (header_len > size - 8) {
    return bad(absl::StrCat("header length ", header_len, " runs past the end of the file (",
                            size, " bytes): truncated?"));
  }
  const uint64_t data_start = 8 + header_len;
  const uint64_t data_size = size - data_start;

  nlohmann::json header;
  try {
    header = nlohmann::json::parse(reinterpret_cast<const char*>(base + 8),
                                   reinterpret_cast<const char*>(base + data_start));
  } catch (const nlohmann::json::exception& e) {
    return bad(absl::StrCat("corrupt header: ", e.what()));
  }
  if (!header.is_object()) return bad("corrupt header: not a JSON object");

  struct Range {
    uint64_t begin, end;
    size_t index;
  };
  std::vector<Range> ranges;
  try {
    for (auto it = header.begin(); it != header.end(); ++it) {
      if (it.key() == "__metadata__") {
        if (!it.value().is_object()) return bad("__metadata__ is not an object");
        for (auto m = it.value().begin(); m != it.value().end(); ++m) {
          if (!m.value().is_string()) return bad("__metadata__ values must be strings");
          file->metadata_[m.key()] = m.value().get<std::string>();
        }
        continue;
      }
      const auto& entry = it.value();
      if (!entry.is_object() || !entry.contains("dtype") || !entry.contains("shape") ||
          !entry.contains("data_offsets")) {
        return bad(absl::StrCat("tensor '", it.key(), "' lacks dtype/shape/data_offsets"));
      }
      TensorView view;
      view.name = it.key();
      auto dtype = ParseDType(entry.at("dtype").get<std::string>());
      if (!dtype.ok()) return bad(absl::StrCat("tensor '", it.key(), "': ", dtype.status().message()));
      view.dtype = *dtype;
      const auto& shape = entry.at("shape");
      const auto& offsets = entry.at("data_offsets");
      if (!shape.is_array() || !offsets.is_array() || offsets.size() != 2) {
        return bad(absl::StrCat("tensor '", it.key(), "': malformed shape or data_offsets"));
      }
      uint64_t numel = 1;
      for (const auto& d : shape) {
        if (!d.is_number_unsigned()) return bad(absl::StrCat("tensor '", it.key(), "': bad dimension"));
        const uint64_t dim = d.get<uint64_t>();
        if (dim != 0 && numel > (uint64_t{1} << 62) / dim) {
          return bad(absl::StrCat("tensor '", it.key(), "': shape overflows"));
        }
        numel *= dim;
        view.shape.push_back(static_cast<int64_t>(dim));
      }
      if (!offsets[0].is_number_unsigned() || !offsets[1].is_number_unsigned()) {
        return bad(absl::StrCat("tensor '", it.key(), "': bad data_offsets"));
      }
      const uint64_t begin = offsets[0].get<uint64_t>();
      const uint64_t end = offsets[1].get<uint64_t>();
      if (begin > end || end > data_size) {
        return bad(absl::StrCat("tensor '", it.key(), "': data_offsets [", begin, ", ", end,
                                ") outside the ", data_size, "-byte data section (truncated?)"));
      }
      // numel <= 2^62, but its byte size may not fit 64 bits (2^61 F64 elements wrapped to 0).
      const uint64_t dtype_size = DTypeSize(view.dtype);
      if (numel > (uint64_t{1} << 62) / dtype_size) {
        return bad(absl::StrCat("tensor '", it.key(), "': shape overflows"));
      }
      const uint64_t expected = numel * dtype_size;
      if (end - begin != expected) {
        return bad(absl::StrCat("tensor '", it.key(), "': ", end - begin, " bytes for shape ",
                                ShapeString(view.shape), " ", DTypeName(view.dtype),
                                " (expected ", expected, ")"));
      }
      view.data = base + data_start + begin;
      view.nbytes = end - begin;
      ranges.push_back({begin, end, file->tensors_.size()});
      file->index_[view.name] = file->tensors_.size();
      file->tensors_.push_back(std::move(view));
    }
  } catch (const nlohmann::json::exception& e) {
    return bad(absl::StrCat("corrupt header: ", e.what()));
  }
  std::sort(ranges.begin(), ranges.end(),
            [](const Range& a, const Range& b) { return a.begin < b.begin; });
  for (size_t i = 1; i < ranges.size(); ++i) {
    if (ranges[i].begin < ranges[i - 1].end) {
      return bad(absl::StrCat("tensors '", file->tensors_[ranges[i - 1].index].name, "' and '",
                              file->tensors_[ranges[i].index].name, "' overlap"));
    }
  }
  // Keep header order as written in the file (nlohmann sorts keys; offsets give file order).
  std::vector<TensorView> ordered;
  ordered.reserve(ranges.size());
  for (const auto& r : ranges) ordered.push_back(file->tensors_[r.index]);
  file->tensors_ = std::move(ordered);
  file->index_.clear();
  for (size_t i = 0; i < file->tensors_.size(); ++i) file->index_[file->tensors_[i].name] = i;
  return file;
}

absl::Status Writer::Add(const std::string& name, DType dtype, std::vector<int64_t> shape,
                         const void* data, size_t nbytes) {
  if (name == "__metadata__") return absl::InvalidArgumentError("reserved tensor name");
  for (const auto& e : entries_) {
    if (e.name == name) return absl::AlreadyExistsError(absl::StrCat("tensor '", name, "' added twice"));
  }
  uint64_t numel = 1;
  for (int64_t d : shape) {
    if (d < 0) return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "': negative dim"));
    numel *= static_cast<uint64_t>(d);
  }
  if (numel * DTypeSize(dtype) != nbytes) {
    return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "': ", nbytes,
                                                   " bytes do not match shape ", ShapeString(shape)));
  }
  entries_.push_back({name, dtype, std::move(shape),
                      std::string(static_cast<const char*>(data), nbytes)});
  return absl::OkStatus();
}

std::string Writer::HeaderBytes() const {
  // nlohmann::ordered_json keeps insertion order, so offsets ascend in the header.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata_.empty()) {
    nlohmann::ordered_json meta = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata_) meta[k] = v;
    header["__metadata__"] = meta;
  }
  uint64_t offset = 0;
  for (const auto& e : entries_) {
    header[e.name] = {{"dtype", std::string(DTypeName(e.dtype))},
                      {"shape", e.shape},
                      {"data_offsets", {offset, offset + e.bytes.size()}}};
    offset += e.bytes.size();
  }
  std::string json = header.dump();
  while (json.size() % 8 != 0) json.push_back(' ');  // align the data section
  std::string out;
  uint64_t len = json.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((len >> (8 * i)) & 0xff));
  return out + json;
}

std::string Writer::Serialize() const {
  std::string out = HeaderBytes();
  for (const auto& e : entries_) out += e.bytes;
  return out;
}

absl::Status Writer::WriteFile(const std::string& path) const {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) return absl::PermissionDeniedError(absl::StrCat("cannot write '", path, "'"));
  const std::string header = HeaderBytes();
  f.write(header.data(), static_cast<std::streamsize>(header.size()));
  for (const auto& e : entries_) f.write(e.bytes.data(), static_cast<std::streamsize>(e.bytes.size()));
  if (!f) return absl::InternalError(absl::StrCat("short write to '", path, "'"));
  return absl::OkStatus();
}

}  // namespace smolserve::safetensors
