// Reading a request's media bytes from a path, a file:/data: URL or base64 text.
#ifndef SMOLSERVE_SERVICES_PREPROCESS_CORE_MEDIA_SOURCE_H_
#define SMOLSERVE_SERVICES_PREPROCESS_CORE_MEDIA_SOURCE_H_

#include <cstdint>
#include <string>

#include <functional>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/net/url_fetcher.h"
#include "services/preprocess/core/conversation.h"

namespace smolserve::preprocess {

struct MediaAccess {
  // Relative paths resolve against this folder (the request file's folder for the CLI).
  std::string base_dir = ".";
  // Whether path and file:// sources are allowed at all (a server may refuse them).
  bool allow_paths = true;
  // When not empty, a path must resolve (symlinks followed) inside this folder.
  std::string allowed_root;
  // Largest item accepted, bytes (checked before reading or decoding base64, and while
  // downloading).
  int64_t max_bytes = 64ll << 20;
  // http(s) URLs are downloaded through this fetcher (its policy: public addresses only unless
  // allowed, redirects re-checked, timeouts); null: such URLs are refused.
  const net::UrlFetcher* url_fetcher = nullptr;
  // Of the request being served: downloads stop at the deadline or when `cancelled` says so.
  absl::Time deadline = absl::InfiniteFuture();
  std::function<bool()> cancelled;
};

// Errors: NOT_FOUND (missing file under the allowed root), PERMISSION_DENIED (path outside
// the allowed root — refused by its resolved path before the file is opened, whether it exists
// or not —, paths disabled, URL fetching disabled, or a URL outside the fetch policy),
// INVALID_ARGUMENT (bad base64 / URL, a URL that did not give media, or no source: kind
// kNone), RESOURCE_EXHAUSTED (over max_bytes), DEADLINE_EXCEEDED / UNAVAILABLE (downloads).
absl::StatusOr<std::string> ReadMediaBytes(const MediaSource& source, const MediaAccess& access);

// A short description for error messages ("path 'a.jpg'", "base64 (1234 chars)",
// "bytes (5120), id 'cat'", "id 'cat'").
std::string DescribeMediaSource(const MediaSource& source);

}  // namespace smolserve::preprocess

#endif  // SMOLSERVE_SERVICES_PREPROCESS_CORE_MEDIA_SOURCE_H_
