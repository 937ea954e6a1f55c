// Media sources as a client names them -> ReadMediaBytes, the preprocessor's first step for
// every media item: data: URLs and base64 text (decoded, size-checked), and file:// URLs and
// paths against a media root (a temporary folder holding one file and a symbolic link that
// leads out of it). No URL fetcher: http(s) URLs must be refused without network access.
// Invariants: refusals are client errors; base64 output stays within max_bytes; a path or
// file:// URL only ever yields the one file inside the root (never anything outside it).
#include <sys/stat.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>

#include "absl/strings/escaping.h"
#include "services/preprocess/core/media_source.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

constexpr char kInside[] = "inside file\n";
smolserve::preprocess::MediaAccess* access_ = nullptr;

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* tmp = std::getenv("TMPDIR");
  std::string dir = std::string(tmp != nullptr ? tmp : "/tmp") + "/media_source_fuzz_XXXXXX";
  if (mkdtemp(dir.data()) == nullptr) smolserve::fuzz::Fail("mkdtemp");
  std::ofstream(dir + "/a.jpg") << kInside;
  mkdir((dir + "/sub").c_str(), 0755);
  if (symlink("/etc", (dir + "/sub/out").c_str()) != 0) smolserve::fuzz::Fail("symlink");
  access_ = new smolserve::preprocess::MediaAccess();
  access_->base_dir = dir + "/sub";
  access_->allowed_root = dir;
  access_->max_bytes = 1 << 16;
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace smolserve::preprocess;
  smolserve::fuzz::Bytes in(data, size);
  MediaSource source;
  const uint8_t mode = in.U8();
  source.kind = (mode % 3) == 0 ? MediaSource::Kind::kUrl
                : (mode % 3) == 1 ? MediaSource::Kind::kBase64
                                  : MediaSource::Kind::kPath;
  source.value = in.Rest();
  // A root-relative prefix now and then, so that file:// URLs reach inside the root.
  if ((mode & 0x30) == 0x10 && source.kind != MediaSource::Kind::kBase64) {
    source.value = (source.kind == MediaSource::Kind::kUrl ? "file://" : "") +
                   access_->allowed_root + "/" + source.value;
  }
  FUZZ_CHECK(!DescribeMediaSource(source).empty(), "description");
  absl::StatusOr<std::string> bytes = ReadMediaBytes(source, *access_);
  if (!bytes.ok()) {
    FUZZ_CHECK(smolserve::fuzz::IsClientError(bytes.status()), bytes.status().ToString());
    return 0;
  }
  FUZZ_CHECK(static_cast<int64_t>(bytes->size()) <= access_->max_bytes, "over max_bytes");
  const bool base64 = source.kind == MediaSource::Kind::kBase64 ||
                      (source.kind == MediaSource::Kind::kUrl &&
                       source.value.rfind("data:", 0) == 0);
  if (!base64) FUZZ_CHECK(*bytes == kInside, "read a file outside the media root");
  return 0;
}
