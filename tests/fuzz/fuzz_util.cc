#include "tests/fuzz/fuzz_util.h"

#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"

namespace smolserve::fuzz {
namespace {

std::string& ProgramPath() {
  static std::string path;
  return path;
}

bool Exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

}  // namespace

void SetProgramPath(const char* argv0) {
  if (argv0 != nullptr) ProgramPath() = argv0;
}

std::string DataPath(absl::string_view relative) {
  std::vector<std::string> candidates;
  if (const char* root = std::getenv("SMOLSERVE_FUZZ_ROOT")) {
    candidates.push_back(absl::StrCat(root, "/", relative));
  }
  for (const char* var : {"RUNFILES_DIR", "TEST_SRCDIR"}) {
    if (const char* dir = std::getenv(var)) {
      candidates.push_back(absl::StrCat(dir, "/smolserve/", relative));
    }
  }
  if (!ProgramPath().empty()) {
    candidates.push_back(absl::StrCat(ProgramPath(), ".runfiles/smolserve/", relative));
  }
  candidates.push_back(std::string(relative));
  for (const std::string& c : candidates) {
    if (Exists(c)) return c;
  }
  std::fprintf(stderr, "fuzz: data file '%.*s' not found (set SMOLSERVE_FUZZ_ROOT)\n",
               static_cast<int>(relative.size()), relative.data());
  std::abort();
}

void Fail(absl::string_view what, absl::string_view detail) {
  std::fprintf(stderr, "fuzz: invariant broken: %.*s%s%.*s\n", static_cast<int>(what.size()),
               what.data(), detail.empty() ? "" : ": ", static_cast<int>(detail.size()),
               detail.data());
  std::abort();
}

bool IsValidUtf8(absl::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    int n;
    uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      n = 1;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (s.size() - i <= static_cast<size_t>(n)) return false;
    for (int k = 1; k <= n; ++k) {
      const unsigned char d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3F);
    }
    static constexpr uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n + 1;
  }
  return true;
}

bool IsClientError(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kOutOfRange:
    case absl::StatusCode::kUnimplemented:
      return true;
    default:
      return false;
  }
}

}  // namespace smolserve::fuzz
