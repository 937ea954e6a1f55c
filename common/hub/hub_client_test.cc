// Unit tests of HubClient's helpers (no network). The HTTP paths are covered against a real
// fake Hub in hub_download_test.cc.
#include "common/hub/hub_client.h"

#include "gtest/gtest.h"

namespace smolserve::hub {
namespace {

using ::absl::StatusCode;

TEST(NormalizeEtagTest, StripsWeakPrefixAndQuotes) {
  EXPECT_EQ(NormalizeEtag("\"abc\""), "abc");
  EXPECT_EQ(NormalizeEtag("W/\"abc\""), "abc");
  EXPECT_EQ(NormalizeEtag(" abc "), "abc");
  EXPECT_EQ(NormalizeEtag(""), "");
}

TEST(OriginOfTest, SchemeHostPort) {
  EXPECT_EQ(OriginOf("https://HuggingFace.co/a/b"), "https://huggingface.co:443");
  EXPECT_EQ(OriginOf("http://127.0.0.1:8080/x?y=1"), "http://127.0.0.1:8080");
  EXPECT_EQ(OriginOf("http://h"), "http://h:80");
  EXPECT_EQ(OriginOf("ftp://h/x"), "");
  EXPECT_EQ(OriginOf("/relative"), "");
}

TEST(UrlEncodeTest, EncodesReservedCharacters) {
  EXPECT_EQ(UrlEncode("refs/pr/1", false), "refs%2Fpr%2F1");
  EXPECT_EQ(UrlEncode("org/name", true), "org/name");
  EXPECT_EQ(UrlEncode("a b?&", true), "a%20b%3F%26");
}

TEST(HttpErrorStatusTest, MapsCodes) {
  EXPECT_EQ(HttpErrorStatus(404, "", "x", false).code(), StatusCode::kNotFound);
  EXPECT_EQ(HttpErrorStatus(401, "RepoNotFound", "x", false).code(), StatusCode::kNotFound);
  EXPECT_EQ(HttpErrorStatus(401, "GatedRepo", "x", false).code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(HttpErrorStatus(403, "", "x", true).code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(HttpErrorStatus(429, "", "x", false).code(), StatusCode::kUnavailable);
  EXPECT_EQ(HttpErrorStatus(503, "", "x", false).code(), StatusCode::kUnavailable);
  EXPECT_EQ(HttpErrorStatus(400, "", "x", false).code(), StatusCode::kInvalidArgument);
  const absl::Status gated = HttpErrorStatus(401, "GatedRepo", "model 'a/b'", false);
  EXPECT_NE(gated.message().find("HF_TOKEN"), absl::string_view::npos) << gated;
  EXPECT_NE(gated.message().find("a/b"), absl::string_view::npos) << gated;
}

TEST(HubClientTest, CreateValidates) {
  HubClientOptions o;
  o.endpoint = "not a url";
  EXPECT_EQ(HubClient::Create(o).status().code(), StatusCode::kInvalidArgument);
  o.endpoint = "https://user@huggingface.co";
  EXPECT_EQ(HubClient::Create(o).status().code(), StatusCode::kInvalidArgument);
  o.endpoint = "https://huggingface.co/";
  o.token = "abc\r\nX-Evil: 1";
  EXPECT_EQ(HubClient::Create(o).status().code(), StatusCode::kInvalidArgument);
  o.token = "hf_abc";
  o.max_attempts = 0;
  EXPECT_EQ(HubClient::Create(o).status().code(), StatusCode::kInvalidArgument);
  o.max_attempts = 3;
  auto c = HubClient::Create(o);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ((*c)->options().endpoint, "https://huggingface.co");  // trailing '/' dropped
}

TEST(HubClientTest, TokenOnlyForTheEndpointsOrigin) {
  HubClientOptions o;
  o.endpoint = "https://huggingface.co";
  o.token = "hf_secret";
  auto c = HubClient::Create(o);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE((*c)->SendsTokenTo("https://huggingface.co/api/models/a/b/revision/main"));
  EXPECT_TRUE((*c)->SendsTokenTo("https://HUGGINGFACE.CO:443/a/b/resolve/main/x"));
  EXPECT_FALSE((*c)->SendsTokenTo("https://cdn-lfs.huggingface.co/repos/x"));
  EXPECT_FALSE((*c)->SendsTokenTo("http://huggingface.co/a"));        // other scheme
  EXPECT_FALSE((*c)->SendsTokenTo("https://huggingface.co:8443/a"));  // other port
  o.token = "";
  auto anonymous = HubClient::Create(o);
  ASSERT_TRUE(anonymous.ok());
  EXPECT_FALSE((*anonymous)->SendsTokenTo("https://huggingface.co/a"));
}

}  // namespace
}  // namespace smolserve::hub
