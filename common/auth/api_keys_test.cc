#include "common/auth/api_keys.h"

#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace smolserve::auth {
namespace {

constexpr char kKeyA[] = "sk-alpha-0123456789abcdef";
constexpr char kKeyB[] = "sk-bravo-0123456789abcdef";
constexpr char kKeyC[] = "sk-charlie-0123456789abcdef";

ApiKeys MustParse(absl::string_view text) {
  absl::StatusOr<ApiKeys> keys = ApiKeys::Parse(text);
  EXPECT_TRUE(keys.ok()) << keys.status();
  return keys.ok() ? *std::move(keys) : ApiKeys();
}

// The error is INVALID_ARGUMENT, names `line`, and does not contain `secret`.
void ExpectLineError(absl::string_view text, int line, absl::string_view secret) {
  absl::StatusOr<ApiKeys> keys = ApiKeys::Parse(text);
  ASSERT_FALSE(keys.ok()) << text;
  EXPECT_EQ(keys.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(keys.status().message(), absl::StrCat("line ", line, ":")))
      << keys.status();
  if (!secret.empty()) {
    EXPECT_FALSE(absl::StrContains(keys.status().message(), secret)) << keys.status();
  }
}

TEST(ApiKeysTest, ParsesKeysTenantsCommentsAndBlankLines) {
  ApiKeys keys = MustParse(absl::StrCat("# the front's keys\n"
                                        "\n",
                                        kKeyA, " acme\n",
                                        "   # indented comment\n",
                                        "\t", kKeyB, "\t\tglobex.eu_2-x  \r\n",
                                        kKeyC, "\n",
                                        "   \n"));
  EXPECT_EQ(keys.size(), 3u);
  ASSERT_TRUE(keys.Authenticate(kKeyA).has_value());
  EXPECT_EQ(keys.Authenticate(kKeyA)->tenant, "acme");
  ASSERT_TRUE(keys.Authenticate(kKeyB).has_value());
  EXPECT_EQ(keys.Authenticate(kKeyB)->tenant, "globex.eu_2-x");
  ASSERT_TRUE(keys.Authenticate(kKeyC).has_value());
  EXPECT_EQ(keys.Authenticate(kKeyC)->tenant, "default");
  EXPECT_EQ(keys.tenants(), (std::vector<std::string>{"acme", "default", "globex.eu_2-x"}));
}

TEST(ApiKeysTest, EmptyTextAuthenticatesNothing) {
  ApiKeys keys = MustParse("# nothing here\n\n");
  EXPECT_EQ(keys.size(), 0u);
  EXPECT_FALSE(keys.Authenticate(kKeyA).has_value());
  EXPECT_FALSE(keys.Authenticate("").has_value());
  EXPECT_TRUE(keys.tenants().empty());
}

TEST(ApiKeysTest, TenantsSortedUnique) {
  ApiKeys keys = MustParse(absl::StrCat(kKeyA, " zeta\n", kKeyB, " alpha\n", kKeyC, " zeta\n"));
  EXPECT_EQ(keys.size(), 3u);
  EXPECT_EQ(keys.tenants(), (std::vector<std::string>{"alpha", "zeta"}));
}

TEST(ApiKeysTest, BadLinesNameTheLineAndNeverTheKey) {
  const std::string header = absl::StrCat("# comment\n", kKeyA, "\n");  // lines 1-2 are fine
  // Too short (15 characters).
  ExpectLineError(absl::StrCat(header, "short-key-12345\n"), 3, "short-key-12345");
  // Too long (257 characters).
  const std::string long_key(257, 'k');
  ExpectLineError(absl::StrCat(header, long_key, " acme\n"), 3, long_key);
  // 256 characters is fine.
  EXPECT_TRUE(ApiKeys::Parse(std::string(256, 'k')).ok());
  // Non-printable / non-ASCII characters.
  const std::string ctrl = "sk-ctrl-0123456789\x01" "abcdef";
  ExpectLineError(absl::StrCat(header, ctrl, "\n"), 3, ctrl);
  const std::string utf8 = "sk-\xc3\xa9t\xc3\xa9-0123456789abcdef";
  ExpectLineError(absl::StrCat(header, "\n", utf8, "\n"), 4, utf8);
  // Bad tenant names.
  ExpectLineError(absl::StrCat(header, kKeyB, " acme/corp\n"), 3, kKeyB);
  ExpectLineError(absl::StrCat(header, kKeyB, " ", std::string(65, 't'), "\n"), 3, kKeyB);
  EXPECT_TRUE(ApiKeys::Parse(absl::StrCat(kKeyB, " ", std::string(64, 't'))).ok());
  // Too many fields.
  ExpectLineError(absl::StrCat(header, kKeyB, " acme extra\n"), 3, kKeyB);
  // Errors on the first line too.
  ExpectLineError("tiny\n", 1, "tiny");
}

TEST(ApiKeysTest, DuplicateKeysAreAnError) {
  const std::string text =
      absl::StrCat(kKeyA, " acme\n", kKeyB, "\n", "# comment\n", kKeyA, " globex\n");
  ExpectLineError(text, 4, kKeyA);
  absl::StatusOr<ApiKeys> keys = ApiKeys::Parse(text);
  EXPECT_TRUE(absl::StrContains(keys.status().message(), "duplicate")) << keys.status();
  EXPECT_TRUE(absl::StrContains(keys.status().message(), "line 1")) << keys.status();
}

TEST(ApiKeysTest, AuthenticateRejectsWrongEmptyPrefixAndLongerKeys) {
  ApiKeys keys = MustParse(absl::StrCat(kKeyA, " acme\n", kKeyB, " globex\n"));
  EXPECT_EQ(keys.Authenticate(kKeyA)->tenant, "acme");
  EXPECT_EQ(keys.Authenticate(kKeyB)->tenant, "globex");
  EXPECT_FALSE(keys.Authenticate("").has_value());
  EXPECT_FALSE(keys.Authenticate("sk-delta-0123456789abcdef").has_value());
  const std::string a = kKeyA;
  EXPECT_FALSE(keys.Authenticate(a.substr(0, a.size() - 1)).has_value());  // prefix
  EXPECT_FALSE(keys.Authenticate(a.substr(0, 1)).has_value());
  EXPECT_FALSE(keys.Authenticate(a + "0").has_value());  // longer
  EXPECT_FALSE(keys.Authenticate(a + a).has_value());
  EXPECT_FALSE(keys.Authenticate(" " + a).has_value());  // Authenticate does not trim
  std::string flipped = a;
  flipped.back() ^= 1;
  EXPECT_FALSE(keys.Authenticate(flipped).has_value());
}

TEST(ApiKeysTest, AuthenticateHeaderForms) {
  ApiKeys keys = MustParse(absl::StrCat(kKeyA, " acme\n"));
  for (const std::string& good :
       {absl::StrCat("Bearer ", kKeyA), absl::StrCat("bearer  ", kKeyA, " "),
        absl::StrCat("  BEARER\t", kKeyA, "\t"), absl::StrCat("BeArEr ", kKeyA)}) {
    absl::StatusOr<Principal> p = keys.AuthenticateHeader(good);
    ASSERT_TRUE(p.ok()) << good << ": " << p.status();
    EXPECT_EQ(p->tenant, "acme");
  }
  struct Case {
    std::string header;
    std::string message_part;
  };
  const std::string wrong = "sk-wrong-0123456789abcdef";
  for (const Case& c : std::vector<Case>{
           {"", "missing API key"},
           {"   \t ", "missing API key"},
           {"Bearer", "malformed Authorization header"},
           {"Bearer   ", "malformed Authorization header"},  // trimmed to "Bearer"
           {absl::StrCat("Basic ", kKeyA), "malformed Authorization header"},
           {"Basic x", "malformed Authorization header"},
           {kKeyA, "malformed Authorization header"},  // no scheme
           {absl::StrCat("Bearer ", kKeyA, " extra"), "malformed Authorization header"},
           {absl::StrCat("Bearerx ", kKeyA), "malformed Authorization header"},
           {absl::StrCat("Bearer ", wrong), "invalid API key"},
       }) {
    absl::StatusOr<Principal> p = keys.AuthenticateHeader(c.header);
    ASSERT_FALSE(p.ok()) << c.header;
    EXPECT_EQ(p.status().code(), absl::StatusCode::kUnauthenticated) << c.header;
    EXPECT_TRUE(absl::StrContains(p.status().message(), c.message_part))
        << c.header << ": " << p.status();
    EXPECT_FALSE(absl::StrContains(p.status().message(), kKeyA)) << p.status();
    EXPECT_FALSE(absl::StrContains(p.status().message(), wrong)) << p.status();
    EXPECT_FALSE(absl::StrContains(p.status().message(), "0123456789")) << p.status();
  }
}

std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return absl::StrCat(dir != nullptr ? dir : "/tmp", "/", name);
}

void WriteFile(const std::string& path, const std::string& text) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr) << path;
  ASSERT_EQ(std::fwrite(text.data(), 1, text.size(), f), text.size());
  ASSERT_EQ(std::fclose(f), 0);
}

TEST(ApiKeysTest, LoadFile) {
  const std::string path = TempPath("api_keys_good.txt");
  WriteFile(path, absl::StrCat("# keys\n", kKeyA, " acme\n", kKeyB, "\n"));
  absl::StatusOr<ApiKeys> keys = ApiKeys::LoadFile(path);
  ASSERT_TRUE(keys.ok()) << keys.status();
  EXPECT_EQ(keys->size(), 2u);
  EXPECT_EQ(keys->Authenticate(kKeyA)->tenant, "acme");
  EXPECT_EQ(keys->Authenticate(kKeyB)->tenant, "default");
  EXPECT_EQ(keys->tenants(), (std::vector<std::string>{"acme", "default"}));
}

TEST(ApiKeysTest, LoadFileErrors) {
  absl::StatusOr<ApiKeys> missing = ApiKeys::LoadFile(TempPath("no_such_keys_file.txt"));
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound) << missing.status();

  const std::string path = TempPath("api_keys_bad.txt");
  WriteFile(path, absl::StrCat(kKeyA, "\n", kKeyA, " other\n"));
  absl::StatusOr<ApiKeys> bad = ApiKeys::LoadFile(path);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(bad.status().message(), path)) << bad.status();
  EXPECT_TRUE(absl::StrContains(bad.status().message(), "line 2:")) << bad.status();
  EXPECT_FALSE(absl::StrContains(bad.status().message(), kKeyA)) << bad.status();

  // A directory is not readable as a keys file.
  absl::StatusOr<ApiKeys> dir = ApiKeys::LoadFile(TempPath(""));
  EXPECT_FALSE(dir.ok());
}

TEST(ApiKeysTest, CopiesAuthenticateLikeTheOriginal) {
  ApiKeys keys = MustParse(absl::StrCat(kKeyA, " acme\n"));
  ApiKeys copy = keys;
  EXPECT_EQ(copy.Authenticate(kKeyA)->tenant, "acme");
  ApiKeys moved = std::move(copy);
  EXPECT_EQ(moved.Authenticate(kKeyA)->tenant, "acme");
}

}  // namespace
}  // namespace smolserve::auth
