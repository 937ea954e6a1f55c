#include "services/preprocess/core/media_source.h"

#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <fstream>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"

namespace smolserve::preprocess {
namespace {

// `path` with "." and ".." resolved and repeated slashes removed, without touching the file
// system ("/a/b/../c" -> "/a/c"); `path` must be absolute.
std::string LexicallyNormal(const std::string& path) {
  std::vector<absl::string_view> parts;
  for (absl::string_view part : absl::StrSplit(path, '/', absl::SkipEmpty())) {
    if (part == ".") continue;
    if (part == "..") {
      if (!parts.empty()) parts.pop_back();
      continue;
    }
    parts.push_back(part);
  }
  return absl::StrCat("/", absl::StrJoin(parts, "/"));
}

// `path` made absolute against the working directory (which is the only thing looked up).
std::string Absolute(const std::string& path) {
  if (!path.empty() && path[0] == '/') return path;
  char cwd[PATH_MAX];
  if (getcwd(cwd, sizeof(cwd)) == nullptr) return "/" + path;
  return absl::StrCat(cwd, "/", path);
}

bool Inside(absl::string_view path, absl::string_view root) {
  return absl::StartsWith(path, absl::StrCat(root, "/"));
}

absl::StatusOr<std::string> ReadPath(const std::string& raw_path, const MediaAccess& access) {
  if (!access.allow_paths) {
    return absl::PermissionDeniedError("media paths are not allowed on this server");
  }
  if (raw_path.empty()) return absl::InvalidArgumentError("empty media path");
  std::string path = raw_path;
  if (path[0] != '/') path = access.base_dir + "/" + path;
  char resolved[PATH_MAX];
  if (!access.allowed_root.empty()) {
    char root[PATH_MAX];
    if (realpath(access.allowed_root.c_str(), root) == nullptr) {
      return absl::FailedPreconditionError("the media root folder does not exist");
    }
    const auto outside = [&] {
      return absl::PermissionDeniedError(
          absl::StrCat("media path '", raw_path, "' is outside the allowed media root"));
    };
    // Refused by its name first, so that nothing outside the root is ever looked at (whether
    // a file exists there must not be learnable); then by its resolved path (symbolic links).
    const std::string named = LexicallyNormal(Absolute(path));
    if (!Inside(named, root) && !Inside(named, LexicallyNormal(Absolute(access.allowed_root)))) {
      return outside();
    }
    if (realpath(path.c_str(), resolved) == nullptr) {
      return absl::NotFoundError(absl::StrCat("media file '", raw_path, "' not found"));
    }
    if (!Inside(resolved, root)) return outside();
  } else if (realpath(path.c_str(), resolved) == nullptr) {
    return absl::NotFoundError(absl::StrCat("media file '", raw_path, "' not found"));
  }
  struct stat st;
  if (stat(resolved, &st) != 0 || !S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat("media path '", raw_path, "' is not a regular file"));
  }
  if (st.st_size > access.max_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat("media file '", raw_path, "' is ", st.st_size,
                                                     " bytes, over the limit of ", access.max_bytes));
  }
  std::ifstream f(resolved, std::ios::binary);
  if (!f) return absl::PermissionDeniedError(absl::StrCat("cannot read media file '", raw_path, "'"));
  std::string bytes(static_cast<size_t>(st.st_size), '\0');
  f.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!f) return absl::InternalError(absl::StrCat("short read of media file '", raw_path, "'"));
  return bytes;
}

absl::StatusOr<std::string> DecodeBase64(absl::string_view text, const MediaAccess& access) {
  if (absl::StartsWith(text, "data:")) {
    const size_t comma = text.find(',');
    if (comma == absl::string_view::npos ||
        !absl::EndsWith(text.substr(0, comma), ";base64")) {
      return absl::InvalidArgumentError("data URL must be of the form data:<mime>;base64,<data>");
    }
    text.remove_prefix(comma + 1);
  }
  if (static_cast<int64_t>(text.size() / 4 * 3) > access.max_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat("base64 media of ", text.size(),
                                                     " characters is over the limit of ",
                                                     access.max_bytes, " bytes"));
  }
  std::string out;
  if (!absl::Base64Unescape(text, &out)) {
    return absl::InvalidArgumentError("media is not valid base64");
  }
  return out;
}

}  // namespace

std::string DescribeMediaSource(const MediaSource& source) {
  std::string out;
  switch (source.kind) {
    case MediaSource::Kind::kPath: out = absl::StrCat("path '", source.value, "'"); break;
    case MediaSource::Kind::kUrl:
      out = absl::StrCat("url '", source.value.substr(0, std::min<size_t>(source.value.size(), 64)),
                         source.value.size() > 64 ? "...'" : "'");
      break;
    case MediaSource::Kind::kBase64: out = absl::StrCat("base64 (", source.value.size(), " chars)"); break;
    case MediaSource::Kind::kBytes: out = absl::StrCat("bytes (", source.value.size(), ")"); break;
    case MediaSource::Kind::kNone: return absl::StrCat("id '", source.id, "'");
  }
  if (!source.id.empty()) absl::StrAppend(&out, ", id '", source.id, "'");
  return out;
}

absl::StatusOr<std::string> ReadMediaBytes(const MediaSource& source, const MediaAccess& access) {
  switch (source.kind) {
    case MediaSource::Kind::kPath:
      return ReadPath(source.value, access);
    case MediaSource::Kind::kBase64:
      return DecodeBase64(source.value, access);
    case MediaSource::Kind::kBytes:
      if (static_cast<int64_t>(source.value.size()) > access.max_bytes) {
        return absl::ResourceExhaustedError(absl::StrCat("media of ", source.value.size(),
                                                         " bytes is over the limit of ",
                                                         access.max_bytes));
      }
      return source.value;
    case MediaSource::Kind::kUrl: {
      const absl::string_view url = source.value;
      if (absl::StartsWith(url, "file://")) return ReadPath(std::string(url.substr(7)), access);
      if (absl::StartsWith(url, "data:")) return DecodeBase64(url, access);
      if (absl::StartsWith(url, "http://") || absl::StartsWith(url, "https://")) {
        if (access.url_fetcher == nullptr) {
          return absl::PermissionDeniedError(
              "fetching media URLs is disabled on this server; send the bytes (base64) instead");
        }
        auto fetched = access.url_fetcher->Fetch(source.value, access.max_bytes, access.deadline,
                                                 access.cancelled);
        if (!fetched.ok()) return fetched.status();
        return std::move(fetched->bytes);
      }
      return absl::InvalidArgumentError(absl::StrCat("unsupported media URL scheme in '",
                                                     url.substr(0, 32), "'"));
    }
    case MediaSource::Kind::kNone:
      return absl::InvalidArgumentError("media has no data, path or url");
  }
  return absl::InternalError("unknown media source kind");
}

}  // namespace smolserve::preprocess
