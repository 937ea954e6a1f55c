// A safetensors file (8-byte header length, JSON header, data) -> safetensors::File::Open, the
// validation every weight file goes through before any tensor is exposed. The bytes are served
// from a memfd, as the reader maps a path.
// Invariants (safetensors.h): an accepted file exposes views whose element count times the
// dtype size is exactly their byte count (computed without overflow), whose bytes lie inside
// the file, in order and not overlapping, each found by its name.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/safetensors/safetensors.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace smolserve::safetensors;
  const int fd = memfd_create("safetensors_fuzz", MFD_CLOEXEC);
  FUZZ_CHECK(fd >= 0, "memfd_create");
  size_t written = 0;
  while (written < size) {
    const ssize_t n = write(fd, data + written, size - written);
    FUZZ_CHECK(n > 0, "write");
    written += static_cast<size_t>(n);
  }
  absl::StatusOr<std::unique_ptr<File>> file = File::Open(absl::StrCat("/proc/self/fd/", fd));
  close(fd);
  if (!file.ok()) {
    FUZZ_CHECK(file.status().code() == absl::StatusCode::kInvalidArgument,
               file.status().ToString());
    return 0;
  }
  const uint8_t* prev_end = nullptr;
  for (const TensorView& v : (*file)->tensors()) {
    unsigned __int128 bytes = DTypeSize(v.dtype);
    for (int64_t d : v.shape) {
      FUZZ_CHECK(d >= 0, "negative dimension");
      bytes *= static_cast<uint64_t>(d);
      if (bytes > (static_cast<unsigned __int128>(1) << 64)) break;
    }
    FUZZ_CHECK(bytes == v.nbytes,
               absl::StrCat("tensor '", v.name, "': ", v.nbytes, " bytes for its shape"));
    FUZZ_CHECK(static_cast<unsigned __int128>(v.numel()) * DTypeSize(v.dtype) == v.nbytes,
               "TensorView::numel");
    FUZZ_CHECK(v.nbytes <= size, "view larger than the file");
    if (v.nbytes > 0) {
      FUZZ_CHECK(prev_end == nullptr || v.data >= prev_end, "views overlap or are out of order");
      prev_end = v.data + v.nbytes;
    }
    FUZZ_CHECK((*file)->Find(v.name) == &v, "Find");
  }
  return 0;
}
