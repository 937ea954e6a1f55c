#include "services/preprocess/core/media_source.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>

#include "absl/strings/escaping.h"
#include "gtest/gtest.h"

namespace smolserve::preprocess {
namespace {

std::string TmpDir() {
  const char* d = std::getenv("TEST_TMPDIR");
  return d ? d : "/tmp";
}

MediaSource Src(MediaSource::Kind kind, std::string value) {
  MediaSource s;
  s.kind = kind;
  s.value = std::move(value);
  return s;
}

TEST(MediaSource, ReadsPathsRelativeToTheBaseDir) {
  MediaAccess access;
  access.base_dir = "tests/golden";
  auto bytes = ReadMediaBytes(Src(MediaSource::Kind::kPath, "media/fruits.jpg"), access);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_EQ(bytes->size(), 82429u);
  EXPECT_EQ(ReadMediaBytes(Src(MediaSource::Kind::kPath, "media/nope.jpg"), access).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(ReadMediaBytes(Src(MediaSource::Kind::kPath, "media"), access).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(MediaSource, EnforcesRootSizeAndPolicy) {
  const std::string root = TmpDir() + "/root";
  mkdir(root.c_str(), 0755);
  std::ofstream(root + "/in.bin") << "inside";
  std::ofstream(TmpDir() + "/outside.bin") << "outside";
  symlink("../outside.bin", (root + "/link.bin").c_str());
  MediaAccess access;
  access.base_dir = root;
  access.allowed_root = root;
  EXPECT_TRUE(ReadMediaBytes(Src(MediaSource::Kind::kPath, "in.bin"), access).ok());
  EXPECT_EQ(ReadMediaBytes(Src(MediaSource::Kind::kPath, "../outside.bin"), access).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(ReadMediaBytes(Src(MediaSource::Kind::kPath, "link.bin"), access).status().code(),
            absl::StatusCode::kPermissionDenied);
  // Probe finding: outside the root, an existing file was PERMISSION_DENIED and a missing one
  // NOT_FOUND (an existence oracle). Both are refused by name now, before any lookup.
  for (const char* p : {"/etc/passwd", "/etc/no-such-file-here", "../no-such-file",
                        "../../../../etc/passwd", "/tmp/../etc/shadow"}) {
    EXPECT_EQ(ReadMediaBytes(Src(MediaSource::Kind::kPath, p), access).status().code(),
              absl::StatusCode::kPermissionDenied) << p;
    EXPECT_EQ(ReadMediaBytes(Src(MediaSource::Kind::kUrl, std::string("file://") + p), access).status().code(),
              absl::StatusCode::kPermissionDenied) << p;
  }
  EXPECT_EQ(ReadMediaBytes(Src(MediaSource::Kind::kPath, "./in.bin"), access).status().code(),
            absl::StatusCode::kOk);
  EXPECT_EQ(ReadMediaBytes(Src(MediaSource::Kind::kPath, "missing.bin"), access).status().code(),
            absl::StatusCode::kNotFound);
  access.allowed_root.clear();
  access.max_bytes = 3;
  EXPECT_EQ(ReadMediaBytes(Src(MediaSource::Kind::kPath, "in.bin"), access).status().code(),
            absl::StatusCode::kResourceExhausted);
  access.allow_paths = false;
  EXPECT_EQ(ReadMediaBytes(Src(MediaSource::Kind::kPath, "in.bin"), access).status().code(),
            absl::StatusCode::kPermissionDenied);
}

TEST(MediaSource, DecodesBase64AndDataUrls) {
  MediaAccess access;
  const std::string b64 = absl::Base64Escape("hello bytes");
  auto a = ReadMediaBytes(Src(MediaSource::Kind::kBase64, b64), access);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(*a, "hello bytes");
  auto b = ReadMediaBytes(Src(MediaSource::Kind::kUrl, "data:image/png;base64," + b64), access);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(*b, "hello bytes");
  EXPECT_EQ(ReadMediaBytes(Src(MediaSource::Kind::kBase64, "***"), access).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ReadMediaBytes(Src(MediaSource::Kind::kUrl, "data:text/plain,abc"), access).status().code(),
            absl::StatusCode::kInvalidArgument);
  // Without a fetcher (--media_url_fetch=false) network URLs are refused by policy.
  EXPECT_EQ(ReadMediaBytes(Src(MediaSource::Kind::kUrl, "https://example.com/a.jpg"), access).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(ReadMediaBytes(Src(MediaSource::Kind::kUrl, "ftp://x"), access).status().code(),
            absl::StatusCode::kInvalidArgument);
  access.max_bytes = 4;
  EXPECT_EQ(ReadMediaBytes(Src(MediaSource::Kind::kBase64, b64), access).status().code(),
            absl::StatusCode::kResourceExhausted);
}

TEST(MediaSource, FileUrls) {
  const std::string path = TmpDir() + "/x.bin";
  std::ofstream(path) << "abc";
  MediaAccess access;
  auto r = ReadMediaBytes(Src(MediaSource::Kind::kUrl, "file://" + path), access);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, "abc");
}

}  // namespace
}  // namespace smolserve::preprocess
