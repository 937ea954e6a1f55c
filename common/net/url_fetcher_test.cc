// UrlFetcher against a real HTTP server on loopback: tests/tools/media_http_server.py, run as
// a child process (python3) for each test. Everything stays on 127.0.0.1 / ::1.
#include "common/net/url_fetcher.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/tools/child_server.h"

namespace smolserve::net {
namespace {

using ::absl::StatusCode;

// A valid 1x1 RGBA PNG (signature, IHDR, IDAT, IEND; CRCs checked).
const std::string kPng(
    "\x89PNG\r\n\x1a\n"
    "\x00\x00\x00\x0dIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
    "\x00\x00\x00\x0aIDAT\x78\x9c\x63\x00\x01\x00\x00\x05\x00\x01\x0d\x0a\x2d\xb4"
    "\x00\x00\x00\x00IEND\xae\x42\x60\x82",
    67);

// Far more than can cross loopback during a test: the fetcher must stop early.
constexpr int64_t kHugeBytes = int64_t{100} << 30;

std::string TmpDir() {
  const char* dir = std::getenv("TEST_TMPDIR");
  return dir ? dir : "/tmp";
}

std::string UrlEncode(const std::string& s) {
  std::string out;
  for (unsigned char ch : s) {
    if (isalnum(ch) || ch == '-' || ch == '_' || ch == '.' || ch == '~') {
      out.push_back(static_cast<char>(ch));
    } else {
      char buf[4];
      std::snprintf(buf, sizeof(buf), "%%%02X", ch);
      out += buf;
    }
  }
  return out;
}

// A port on 127.0.0.1 with nothing listening (bound, then closed).
int ClosedPort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

class UrlFetcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string dir_template = TmpDir() + "/media_http_XXXXXX";
    ASSERT_NE(mkdtemp(dir_template.data()), nullptr);
    root_ = dir_template;
    std::ofstream(root_ + "/pixel.png", std::ios::binary) << kPng;
    server_ = std::make_unique<smolserve::testing::ChildServer>(
        "tests/tools/media_http_server.py", root_ + "/port",
        std::vector<std::string>{"--root", root_}, 10);
    port_ = server_->port();
    ASSERT_GT(port_, 0);
  }

  std::string Url(const std::string& path, const std::string& host = "127.0.0.1") const {
    return absl::StrCat("http://", host, ":", port_, path);
  }

  std::string RedirectTo(const std::string& target, const std::string& host = "127.0.0.1") const {
    return Url("/redirect?to=" + UrlEncode(target), host);
  }

  static std::unique_ptr<UrlFetcher> MakeFetcher(UrlFetchPolicy policy) {
    auto fetcher = UrlFetcher::Create(std::move(policy));
    EXPECT_TRUE(fetcher.ok()) << fetcher.status();
    return fetcher.ok() ? *std::move(fetcher) : nullptr;
  }

  static UrlFetchPolicy LoopbackPolicy() {
    UrlFetchPolicy policy;
    policy.allow = {"127.0.0.1/32"};
    policy.total_timeout_s = 10;
    return policy;
  }

  static absl::StatusOr<FetchedMedia> Fetch(const UrlFetcher& fetcher, const std::string& url,
                                            int64_t max_bytes = 1 << 20,
                                            absl::Time deadline = absl::InfiniteFuture(),
                                            const std::function<bool()>& cancelled = {}) {
    return fetcher.Fetch(url, max_bytes, deadline, cancelled);
  }

  std::string root_;
  std::unique_ptr<smolserve::testing::ChildServer> server_;
  int port_ = 0;
};

// Expects `expected_code` and a message containing `needle`.
#define EXPECT_STATUS(result, expected_code, needle)                                \
  do {                                                                             \
    const auto& r_ = (result);                                                     \
    ASSERT_FALSE(r_.ok()) << "unexpected success";                                 \
    EXPECT_EQ(r_.status().code(), (expected_code)) << r_.status();                 \
    EXPECT_TRUE(absl::StrContains(r_.status().message(), (needle))) << r_.status(); \
  } while (0)

TEST_F(UrlFetcherTest, FetchesPngWhenLoopbackIsAllowed) {
  auto fetcher = MakeFetcher(LoopbackPolicy());
  const auto media = Fetch(*fetcher, Url("/files/pixel.png"));
  ASSERT_TRUE(media.ok()) << media.status();
  EXPECT_EQ(media->bytes, kPng);
  EXPECT_EQ(media->kind, "png");
  EXPECT_EQ(media->content_type, "image/png");
  EXPECT_EQ(media->final_url, Url("/files/pixel.png"));
}

TEST_F(UrlFetcherTest, LoopbackIsRefusedWithoutAllowList) {
  auto fetcher = MakeFetcher(UrlFetchPolicy{});
  const std::string url = Url("/files/pixel.png");
  const auto by_ip = Fetch(*fetcher, url);
  EXPECT_STATUS(by_ip, StatusCode::kPermissionDenied, "resolves to a private address; refused");
  EXPECT_TRUE(absl::StrContains(by_ip.status().message(), url)) << by_ip.status();
  // Both addresses of "localhost" (127.0.0.1 and ::1) are refused at connect time.
  EXPECT_STATUS(Fetch(*fetcher, Url("/files/pixel.png", "localhost")),
                StatusCode::kPermissionDenied, "private address");
  EXPECT_STATUS(Fetch(*fetcher, Url("/files/pixel.png", "[::1]")), StatusCode::kPermissionDenied,
                "private address");
}

TEST_F(UrlFetcherTest, CidrEntryOpensOnlyItsAddresses) {
  auto fetcher = MakeFetcher(LoopbackPolicy());  // 127.0.0.1/32
  EXPECT_STATUS(Fetch(*fetcher, Url("/files/pixel.png", "127.0.0.2")),
                StatusCode::kPermissionDenied, "private address");
  EXPECT_STATUS(Fetch(*fetcher, Url("/files/pixel.png", "[::1]")), StatusCode::kPermissionDenied,
                "private address");
}

// What is testable on loopback about redirects: every hop is checked again, on its own host
// and on the address it connects to.
//  - allow = {"localhost"} (a host entry only): "localhost" may connect to its loopback
//    addresses because the operator named it, but the allowance belongs to that host name. A
//    redirect from localhost to the literal 127.0.0.1 (the same server!) is refused, because
//    127.0.0.1 is neither a listed host nor public: a trusted origin cannot hand its allowance
//    to other hosts. A redirect within localhost keeps working.
//  - allow = {"127.0.0.1/32"} (a CIDR only, so every host may be contacted): a redirect to
//    127.0.0.2 passes the host check and is refused by the connect-time address check.
TEST_F(UrlFetcherTest, HostEntryAllowanceDoesNotCarryOverToRedirects) {
  UrlFetchPolicy policy;
  policy.allow = {"localhost"};
  auto fetcher = MakeFetcher(policy);
  const auto direct = Fetch(*fetcher, Url("/files/pixel.png", "localhost"));
  ASSERT_TRUE(direct.ok()) << direct.status();
  EXPECT_EQ(direct->bytes, kPng);

  const auto same_host = Fetch(*fetcher, RedirectTo("/files/pixel.png", "localhost"));
  ASSERT_TRUE(same_host.ok()) << same_host.status();
  EXPECT_EQ(same_host->final_url, Url("/files/pixel.png", "localhost"));

  EXPECT_STATUS(Fetch(*fetcher, RedirectTo(Url("/files/pixel.png"), "localhost")),
                StatusCode::kPermissionDenied, "redirected to");
  EXPECT_STATUS(Fetch(*fetcher, Url("/files/pixel.png")), StatusCode::kPermissionDenied,
                "not on the allow-list");
}

TEST_F(UrlFetcherTest, WildcardHostEntry) {
  UrlFetchPolicy policy;
  policy.allow = {"*.localhost"};  // curl resolves *.localhost to loopback itself
  auto fetcher = MakeFetcher(policy);
  const auto sub = Fetch(*fetcher, Url("/files/pixel.png", "img.localhost"));
  ASSERT_TRUE(sub.ok()) << sub.status();
  EXPECT_EQ(sub->bytes, kPng);
  EXPECT_STATUS(Fetch(*fetcher, Url("/files/pixel.png", "localhost")),
                StatusCode::kPermissionDenied, "not on the allow-list");
}

// Proxy variables in the environment must not route fetches elsewhere.
TEST_F(UrlFetcherTest, EnvironmentProxyIsIgnored) {
  const std::string proxy = absl::StrCat("http://127.0.0.1:", ClosedPort());
  for (const char* name : {"http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"}) {
    setenv(name, proxy.c_str(), 1);
  }
  auto fetcher = MakeFetcher(LoopbackPolicy());
  const auto media = Fetch(*fetcher, Url("/files/pixel.png"));
  for (const char* name : {"http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"}) {
    unsetenv(name);
  }
  ASSERT_TRUE(media.ok()) << media.status();
  EXPECT_EQ(media->bytes, kPng);
}

TEST_F(UrlFetcherTest, RedirectToAddressOutsidePolicyIsRefusedAtConnect) {
  auto fetcher = MakeFetcher(LoopbackPolicy());
  const auto result = Fetch(*fetcher, RedirectTo(Url("/files/pixel.png", "127.0.0.2")));
  EXPECT_STATUS(result, StatusCode::kPermissionDenied, "resolves to a private address; refused");
  EXPECT_TRUE(absl::StrContains(result.status().message(), "redirected to")) << result.status();
  // "localhost" resolves to 127.0.0.1 (allowed) and ::1 (refused): the allowed one is used.
  const auto mixed = Fetch(*fetcher, RedirectTo(Url("/files/pixel.png", "localhost")));
  ASSERT_TRUE(mixed.ok()) << mixed.status();
  EXPECT_EQ(mixed->bytes, kPng);
}

TEST_F(UrlFetcherTest, FollowsUpToMaxRedirects) {
  UrlFetchPolicy policy = LoopbackPolicy();
  policy.max_redirects = 3;
  auto fetcher = MakeFetcher(policy);
  const auto three = Fetch(*fetcher, Url("/redirect_chain?n=3&to=%2Ffiles%2Fpixel.png"));
  ASSERT_TRUE(three.ok()) << three.status();
  EXPECT_EQ(three->bytes, kPng);
  EXPECT_EQ(three->final_url, Url("/files/pixel.png"));
  EXPECT_STATUS(Fetch(*fetcher, Url("/redirect_chain?n=4&to=%2Ffiles%2Fpixel.png")),
                StatusCode::kInvalidArgument, "too many redirects");

  policy.max_redirects = 0;
  auto no_redirects = MakeFetcher(policy);
  EXPECT_STATUS(Fetch(*no_redirects, RedirectTo("/files/pixel.png")),
                StatusCode::kInvalidArgument, "too many redirects");
}

TEST_F(UrlFetcherTest, RedirectToOtherSchemeIsRefused) {
  auto fetcher = MakeFetcher(LoopbackPolicy());
  EXPECT_STATUS(Fetch(*fetcher, RedirectTo("file:///etc/passwd")), StatusCode::kInvalidArgument,
                "only http and https");
  EXPECT_STATUS(Fetch(*fetcher, RedirectTo(absl::StrCat("ftp://127.0.0.1:", port_, "/x.png"))),
                StatusCode::kInvalidArgument, "only http and https");
  EXPECT_STATUS(Fetch(*fetcher, Url("/status/302")), StatusCode::kInvalidArgument,
                "without a usable Location");
}

TEST_F(UrlFetcherTest, OversizedWithContentLengthStopsBeforeTheBody) {
  auto fetcher = MakeFetcher(LoopbackPolicy());
  const absl::Time start = absl::Now();
  const auto result = Fetch(*fetcher, Url(absl::StrCat("/big?bytes=", kHugeBytes)), 64 << 10);
  EXPECT_STATUS(result, StatusCode::kResourceExhausted, "65536-byte limit");
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));  // 100 GiB were not read
  // Exactly at the limit is fine.
  const auto exact = Fetch(*fetcher, Url("/big?bytes=65536"), 64 << 10);
  ASSERT_TRUE(exact.ok()) << exact.status();
  EXPECT_EQ(exact->bytes.size(), 65536u);
  EXPECT_EQ(exact->kind, "png");
}

TEST_F(UrlFetcherTest, OversizedWithoutContentLengthStopsWhileReceiving) {
  auto fetcher = MakeFetcher(LoopbackPolicy());
  const absl::Time start = absl::Now();
  const auto result =
      Fetch(*fetcher, Url(absl::StrCat("/big_nolength?bytes=", kHugeBytes)), 64 << 10);
  EXPECT_STATUS(result, StatusCode::kResourceExhausted, "65536-byte limit");
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));  // 100 GiB were not read
  EXPECT_STATUS(Fetch(*fetcher, Url("/big_nolength?bytes=65537"), 64 << 10),
                StatusCode::kResourceExhausted, "limit");
  const auto exact = Fetch(*fetcher, Url("/big_nolength?bytes=65536"), 64 << 10);
  ASSERT_TRUE(exact.ok()) << exact.status();
  EXPECT_EQ(exact->bytes.size(), 65536u);
}

TEST_F(UrlFetcherTest, SlowLorisIsAbortedByTheLowSpeedLimit) {
  UrlFetchPolicy policy = LoopbackPolicy();
  policy.low_speed_bytes = 1024;  // fewer than 1 KiB in 1 s: too slow
  policy.low_speed_window_s = 1;
  policy.total_timeout_s = 10;
  auto fetcher = MakeFetcher(policy);
  const absl::Time start = absl::Now();
  // 20 bytes a second, and the 12 magic bytes take 0.6 s: the content check passes first.
  const auto result = Fetch(*fetcher, Url("/slow?bytes=100000&delay=0.05"));
  EXPECT_STATUS(result, StatusCode::kDeadlineExceeded, "too slow");
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
}

TEST_F(UrlFetcherTest, HangingServerIsAbortedByTheTotalTimeout) {
  UrlFetchPolicy policy = LoopbackPolicy();
  policy.low_speed_bytes = 0;  // only the total timeout applies
  policy.total_timeout_s = 1;
  auto fetcher = MakeFetcher(policy);
  const absl::Time start = absl::Now();
  EXPECT_STATUS(Fetch(*fetcher, Url("/hang")), StatusCode::kDeadlineExceeded, "timed out");
  const absl::Duration elapsed = absl::Now() - start;
  EXPECT_GE(elapsed, absl::Milliseconds(900));
  EXPECT_LT(elapsed, absl::Seconds(3));
}

TEST_F(UrlFetcherTest, CallerDeadlineIsEnforced) {
  auto fetcher = MakeFetcher(LoopbackPolicy());  // total 10 s
  const absl::Time start = absl::Now();
  EXPECT_STATUS(Fetch(*fetcher, Url("/hang"), 1 << 20, start + absl::Milliseconds(300)),
                StatusCode::kDeadlineExceeded, Url("/hang"));
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  EXPECT_STATUS(Fetch(*fetcher, Url("/files/pixel.png"), 1 << 20, absl::Now() - absl::Seconds(1)),
                StatusCode::kDeadlineExceeded, "timed out");
}

TEST_F(UrlFetcherTest, ErrorStatusIsInvalidArgumentNamingTheCode) {
  auto fetcher = MakeFetcher(LoopbackPolicy());
  EXPECT_STATUS(Fetch(*fetcher, Url("/status/404")), StatusCode::kInvalidArgument,
                "answered HTTP 404");
  EXPECT_STATUS(Fetch(*fetcher, Url("/files/missing.png")), StatusCode::kInvalidArgument,
                "answered HTTP 404");
  EXPECT_STATUS(Fetch(*fetcher, Url("/status/503")), StatusCode::kInvalidArgument,
                "answered HTTP 503");
}

TEST_F(UrlFetcherTest, NonMediaContentIsRefused) {
  auto fetcher = MakeFetcher(LoopbackPolicy());
  EXPECT_STATUS(Fetch(*fetcher, Url("/text")), StatusCode::kInvalidArgument,
                "not an image or video");
  std::ofstream(root_ + "/short.png", std::ios::binary) << "\x89PN";  // a prefix only
  EXPECT_STATUS(Fetch(*fetcher, Url("/files/short.png")), StatusCode::kInvalidArgument,
                "not an image or video");
}

TEST_F(UrlFetcherTest, BadSchemesAndUserinfoAreRefused) {
  auto fetcher = MakeFetcher(LoopbackPolicy());
  EXPECT_STATUS(Fetch(*fetcher, absl::StrCat("ftp://127.0.0.1:", port_, "/pixel.png")),
                StatusCode::kInvalidArgument, "only http and https");
  EXPECT_STATUS(Fetch(*fetcher, "file:///etc/passwd"), StatusCode::kInvalidArgument,
                "only http and https");
  EXPECT_STATUS(Fetch(*fetcher, "gopher://127.0.0.1/"), StatusCode::kInvalidArgument,
                "only http and https");
  EXPECT_STATUS(Fetch(*fetcher, absl::StrCat("http://user:secret@127.0.0.1:", port_, "/")),
                StatusCode::kInvalidArgument, "user credentials");
  EXPECT_STATUS(Fetch(*fetcher, absl::StrCat("http://user@127.0.0.1:", port_, "/")),
                StatusCode::kInvalidArgument, "user credentials");
  EXPECT_STATUS(Fetch(*fetcher, "not a url"), StatusCode::kInvalidArgument, "not a valid URL");
  EXPECT_STATUS(Fetch(*fetcher, ""), StatusCode::kInvalidArgument, "not a valid URL");
  EXPECT_STATUS(Fetch(*fetcher, Url("/files/pixel.png"), 0), StatusCode::kInvalidArgument,
                "max_bytes");
}

TEST_F(UrlFetcherTest, CancellationStopsTheTransfer) {
  auto fetcher = MakeFetcher(LoopbackPolicy());
  std::atomic<bool> cancel{false};
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    cancel = true;
  });
  const absl::Time start = absl::Now();
  const auto result = Fetch(*fetcher, Url("/hang"), 1 << 20, absl::InfiniteFuture(),
                            [&] { return cancel.load(); });
  const absl::Duration elapsed = absl::Now() - start;
  canceller.join();
  EXPECT_STATUS(result, StatusCode::kCancelled, "cancelled");
  EXPECT_LT(elapsed, absl::Seconds(1));
  // Already cancelled: nothing is fetched.
  EXPECT_STATUS(Fetch(*fetcher, Url("/files/pixel.png"), 1 << 20, absl::InfiniteFuture(),
                      [] { return true; }),
                StatusCode::kCancelled, "cancelled");
}

TEST_F(UrlFetcherTest, ConnectionRefusedIsUnavailable) {
  auto fetcher = MakeFetcher(LoopbackPolicy());
  EXPECT_STATUS(Fetch(*fetcher, absl::StrCat("http://127.0.0.1:", ClosedPort(), "/x.png")),
                StatusCode::kUnavailable, "could not connect");
}

TEST_F(UrlFetcherTest, UnknownHost) {
  UrlFetchPolicy policy = LoopbackPolicy();
  policy.connect_timeout_s = 2;  // in case the resolver is unreachable rather than fast
  auto fetcher = MakeFetcher(policy);
  const auto result = Fetch(*fetcher, "http://no-such-host.invalid/x.png");
  ASSERT_FALSE(result.ok());
  EXPECT_TRUE(result.status().code() == StatusCode::kInvalidArgument ||
              result.status().code() == StatusCode::kDeadlineExceeded)
      << result.status();
  EXPECT_TRUE(absl::StrContains(result.status().message(), "no-such-host.invalid"));
}

TEST_F(UrlFetcherTest, LongUrlsAreTruncatedInMessages) {
  auto fetcher = MakeFetcher(LoopbackPolicy());
  const std::string url = Url("/status/404?" + std::string(500, 'a'));
  const auto result = Fetch(*fetcher, url);
  EXPECT_STATUS(result, StatusCode::kInvalidArgument, url.substr(0, 100) + "...");
  EXPECT_LT(result.status().message().size(), 200u) << result.status();
}

TEST_F(UrlFetcherTest, ConcurrentFetches) {
  auto fetcher = MakeFetcher(LoopbackPolicy());
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&] {
      const auto media = Fetch(*fetcher, Url("/files/pixel.png"));
      ok += media.ok() && media->bytes == kPng;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 4);
}

TEST(UrlFetcherCreateTest, BadPolicyIsRefused) {
  UrlFetchPolicy policy;
  policy.allow = {"127.0.0.1/32", "10.0.0.1/8"};
  auto bad_entry = UrlFetcher::Create(policy);
  EXPECT_STATUS(bad_entry, StatusCode::kInvalidArgument, "\"10.0.0.1/8\"");
  policy.allow = {};
  policy.max_redirects = -1;
  EXPECT_STATUS(UrlFetcher::Create(policy), StatusCode::kInvalidArgument, "max_redirects");
  policy.max_redirects = 3;
  policy.total_timeout_s = 0;
  EXPECT_STATUS(UrlFetcher::Create(policy), StatusCode::kInvalidArgument, "timeouts");
  policy.total_timeout_s = 30;
  policy.user_agent = "a\r\nX-Injected: 1";
  EXPECT_STATUS(UrlFetcher::Create(policy), StatusCode::kInvalidArgument, "user_agent");
}

TEST(MediaKindFromMagicTest, KnownSignatures) {
  EXPECT_EQ(MediaKindFromMagic(kPng), "png");
  EXPECT_EQ(MediaKindFromMagic("\xFF\xD8\xFF\xE0\x00\x10JFIF\x00"), "jpeg");
  EXPECT_EQ(MediaKindFromMagic("GIF89a\x01\x00\x01\x00"), "gif");
  EXPECT_EQ(MediaKindFromMagic(std::string("RIFF\x10\x00\x00\x00WEBPVP8 ", 16)), "webp");
  EXPECT_EQ(MediaKindFromMagic(std::string("RIFF\x10\x00\x00\x00" "AVI LIST", 16)), "avi");
  EXPECT_EQ(MediaKindFromMagic(std::string("BM\x46\x00\x00\x00\x00\x00\x00\x00\x36\x00", 12)),
            "bmp");
  EXPECT_EQ(MediaKindFromMagic(std::string("\x00\x00\x00\x20" "ftypisom", 12)), "mp4");
  EXPECT_EQ(MediaKindFromMagic(std::string("\x00\x00\x00\x14" "ftypqt  ", 12)), "mov");
  EXPECT_EQ(MediaKindFromMagic("\x1a\x45\xdf\xa3\x9f\x42\x86\x81"), "matroska");
  EXPECT_EQ(MediaKindFromMagic(std::string("II*\0\x08\0\0\0", 8)), "tiff");
}

TEST(MediaKindFromMagicTest, UnknownOrTooShort) {
  EXPECT_EQ(MediaKindFromMagic(""), "");
  EXPECT_EQ(MediaKindFromMagic("<!DOCTYPE html>"), "");
  EXPECT_EQ(MediaKindFromMagic("BM but text, not a bitmap"), "");
  EXPECT_EQ(MediaKindFromMagic("\x89PNG"), "");
  EXPECT_EQ(MediaKindFromMagic(std::string("RIFF\x10\x00\x00\x00WAVEfmt ", 16)), "");
  EXPECT_EQ(MediaKindFromMagic("%PDF-1.7\n%"), "");
}

}  // namespace
}  // namespace smolserve::net
