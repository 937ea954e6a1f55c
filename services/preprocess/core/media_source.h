// Reading a request's media bytes from a path, a file:/data: URL or base64 text.
#ifndef SMOLSERVE_SERVICES_PREPROCESS_CORE_MEDIA_SOURCE_H_
#define SMOLSERVE_SERVICES_PREPROCESS_CORE_MEDIA_SOURCE_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "services/preprocess/core/conversation.h"

namespace smolserve::preprocess {

struct MediaAccess {
  // Relative paths resolve against this folder (the request file's folder for the CLI).
  std::string base_dir = ".";
  // Whether path and file:// sources are allowed at all (a server may refuse them).
  bool allow_paths = true;
  // When not empty, a path must resolve (symlinks followed) inside this folder.
  std::string allowed_root;
  // Largest item accepted, bytes (checked before reading or decoding base64).
  int64_t max_bytes = 64ll << 20;
};

// Errors: NOT_FOUND (missing file), PERMISSION_DENIED (path outside the allowed root or
// paths disabled), INVALID_ARGUMENT (bad base64 / URL, or no source: kind kNone),
// UNIMPLEMENTED (network URLs), RESOURCE_EXHAUSTED (over max_bytes).
absl::StatusOr<std::string> ReadMediaBytes(const MediaSource& source, const MediaAccess& access);

// A short description for error messages ("path 'a.jpg'", "base64 (1234 chars)",
// "bytes (5120), id 'cat'", "id 'cat'").
std::string DescribeMediaSource(const MediaSource& source);

}  // namespace smolserve::preprocess

#endif  // SMOLSERVE_SERVICES_PREPROCESS_CORE_MEDIA_SOURCE_H_
