#include "services/preprocess/core/media_source.h"

#include <sys/stat.h>

#include <climits>
#include <cstdlib>
#include <fstream>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace smolserve::preprocess {
namespace {

absl::StatusOr<std::string> ReadPath(const std::string& raw_path, const MediaAccess& access) {
  if (!access.allow_paths) {
    return absl::PermissionDeniedError("media paths are not allowed on this server");
  }
  if (raw_path.empty()) return absl::InvalidArgumentError("empty media path");
  std::string path = raw_path;
  if (path[0] != '/') path = access.base_dir + "/" + path;
  char resolved[PATH_MAX];
  if (realpath(path.c_str(), resolved) == nullptr) {
    return absl::NotFoundError(absl::StrCat("media file '", raw_path, "' not found"));
  }
  if (!access.allowed_root.empty()) {
    char root[PATH_MAX];
    if (realpath(access.allowed_root.c_str(), root) == nullptr) {
      return absl::FailedPreconditionError("the media root folder does not exist");
    }
    const std::string prefix = absl::StrCat(root, "/");
    if (!absl::StartsWith(resolved, prefix)) {
      return absl::PermissionDeniedError(
          absl::StrCat("media path '", raw_path, "' is outside the allowed media root"));
    }
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
        return absl::UnimplementedError(
            "fetching http(s) media URLs is not enabled; send the bytes (base64) instead");
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
