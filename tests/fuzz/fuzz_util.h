// Helpers shared by the fuzz targets (tests/fuzz/README.md).
#ifndef SMOLSERVE_TESTS_FUZZ_FUZZ_UTIL_H_
#define SMOLSERVE_TESTS_FUZZ_FUZZ_UTIL_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace smolserve::fuzz {

// Remembers argv[0] (call from LLVMFuzzerInitialize) to find data files in the target's
// Bazel runfiles.
void SetProgramPath(const char* argv0);

// A workspace-relative data file (e.g. "tests/golden/models/tiny-smolvlm2-256m-geometry"):
// in $SMOLSERVE_FUZZ_ROOT, the runfiles ($RUNFILES_DIR, $TEST_SRCDIR, argv[0].runfiles) or the
// working directory, whichever has it. Aborts when none has.
std::string DataPath(absl::string_view relative);

// Reports a broken invariant (a bug, not a refusal of bad input) and aborts, so that libFuzzer
// saves the input.
[[noreturn]] void Fail(absl::string_view what, absl::string_view detail = "");
#define FUZZ_CHECK(cond, detail)                              \
  do {                                                        \
    if (!(cond)) ::smolserve::fuzz::Fail(#cond, (detail));   \
  } while (0)

// Splits a fuzz input into typed values (a small FuzzedDataProvider that also builds with gcc,
// for the standalone replay binaries). Reads past the end give zeros / empty strings.
class Bytes {
 public:
  Bytes(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  size_t remaining() const { return size_ - pos_; }
  uint8_t U8() { return pos_ < size_ ? data_[pos_++] : 0; }
  uint16_t U16() { return static_cast<uint16_t>(U8() | (U8() << 8)); }
  uint32_t U32() { return U16() | (static_cast<uint32_t>(U16()) << 16); }
  uint64_t U64() { return U32() | (static_cast<uint64_t>(U32()) << 32); }
  bool Bool() { return (U8() & 1) != 0; }
  // A length (one byte, below max_len) then that many bytes.
  std::string String(size_t max_len) {
    const size_t n = std::min<size_t>(max_len == 0 ? 0 : U8() % (max_len + 1), remaining());
    std::string out(reinterpret_cast<const char*>(data_ + pos_), n);
    pos_ += n;
    return out;
  }
  std::string Rest() {
    std::string out(reinterpret_cast<const char*>(data_ + pos_), remaining());
    pos_ = size_;
    return out;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

// Whether `s` is well-formed UTF-8 (an oracle independent of common/tokenizer/utf8.h).
bool IsValidUtf8(absl::string_view s);

// Status codes a client-facing parser may answer bad input with; anything else (INTERNAL,
// UNKNOWN, ...) means a bug.
bool IsClientError(const absl::Status& status);

}  // namespace smolserve::fuzz

#endif  // SMOLSERVE_TESTS_FUZZ_FUZZ_UTIL_H_
