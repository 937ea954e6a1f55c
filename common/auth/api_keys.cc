#include "common/auth/api_keys.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <map>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace smolserve::auth {
namespace {

constexpr absl::string_view kWhitespace = " \t\r\n\v\f";
constexpr char kMalformedHeader[] = "malformed Authorization header (expected \"Bearer <key>\")";

std::array<uint8_t, 32> Sha256Of(absl::string_view data) {
  std::array<uint8_t, 32> digest;
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest.data());
  return digest;
}

bool IsValidKey(absl::string_view key) {
  if (key.size() < ApiKeys::kMinKeyLength || key.size() > ApiKeys::kMaxKeyLength) return false;
  for (char c : key) {
    if (c < 0x21 || c > 0x7e) return false;  // printable ASCII, no space
  }
  return true;
}

bool IsValidTenant(absl::string_view tenant) {
  if (tenant.empty() || tenant.size() > ApiKeys::kMaxTenantLength) return false;
  for (char c : tenant) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' &&
        c != '-') {
      return false;
    }
  }
  return true;
}

}  // namespace

absl::StatusOr<ApiKeys> ApiKeys::Parse(absl::string_view text) {
  ApiKeys keys;
  std::map<Digest, int> line_of;  // digest -> line number, for duplicates
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    std::vector<absl::string_view> fields =
        absl::StrSplit(line, absl::ByAnyChar(kWhitespace), absl::SkipEmpty());
    if (fields.size() > 2) {
      return absl::InvalidArgumentError(absl::StrCat(
          "line ", line_number, ": expected \"KEY\" or \"KEY TENANT\", found ", fields.size(),
          " fields"));
    }
    if (!IsValidKey(fields[0])) {
      return absl::InvalidArgumentError(absl::StrCat(
          "line ", line_number, ": invalid API key (", fields[0].size(),
          " characters; keys are ", kMinKeyLength, "..", kMaxKeyLength,
          " printable ASCII characters without spaces)"));
    }
    Entry entry;
    entry.digest = Sha256Of(fields[0]);
    entry.tenant = fields.size() == 2 ? std::string(fields[1]) : std::string(kDefaultTenant);
    if (!IsValidTenant(entry.tenant)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "line ", line_number, ": invalid tenant name (expected [A-Za-z0-9._-]{1,",
          kMaxTenantLength, "})"));
    }
    auto [it, inserted] = line_of.emplace(entry.digest, line_number);
    if (!inserted) {
      return absl::InvalidArgumentError(absl::StrCat(
          "line ", line_number, ": duplicate API key (same key as line ", it->second, ")"));
    }
    keys.entries_.push_back(std::move(entry));
  }
  return keys;
}

absl::StatusOr<ApiKeys> ApiKeys::LoadFile(const std::string& path) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) {
    const int error = errno;
    if (error == ENOENT) {
      return absl::NotFoundError(absl::StrCat("API keys file not found: ", path));
    }
    return absl::ErrnoToStatus(error, absl::StrCat("cannot open API keys file ", path));
  }
  std::string text;
  char buffer[8192];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof(buffer), file)) > 0) text.append(buffer, n);
  const bool failed = std::ferror(file) != 0;
  const int error = errno;
  std::fclose(file);
  if (failed) {
    return absl::ErrnoToStatus(error, absl::StrCat("cannot read API keys file ", path));
  }
  absl::StatusOr<ApiKeys> keys = Parse(text);
  if (!keys.ok()) {
    return absl::Status(keys.status().code(),
                        absl::StrCat("API keys file ", path, ": ", keys.status().message()));
  }
  return keys;
}

std::optional<Principal> ApiKeys::Authenticate(absl::string_view presented_key) const {
  const Digest digest = Sha256Of(presented_key);
  // Branch-free selection: every stored digest is compared, and the comparison result only
  // feeds masks, so timing depends on neither which entry matched nor whether one did.
  size_t found_index = 0;
  size_t found_mask = 0;
  for (size_t i = 0; i < entries_.size(); ++i) {
    const size_t equal =
        static_cast<size_t>(CRYPTO_memcmp(digest.data(), entries_[i].digest.data(), 32) == 0);
    const size_t mask = size_t{0} - equal;  // all ones when equal
    found_index = (found_index & ~mask) | (i & mask);
    found_mask |= mask;
  }
  if (found_mask == 0) return std::nullopt;
  return Principal{entries_[found_index].tenant};
}

absl::StatusOr<Principal> ApiKeys::AuthenticateHeader(absl::string_view authorization) const {
  absl::string_view value = absl::StripAsciiWhitespace(authorization);
  if (value.empty()) return absl::UnauthenticatedError("missing API key");
  const size_t space = value.find_first_of(kWhitespace);
  if (space == absl::string_view::npos) {
    return absl::UnauthenticatedError(kMalformedHeader);  // "Bearer", or a bare token
  }
  if (!absl::EqualsIgnoreCase(value.substr(0, space), "bearer")) {
    return absl::UnauthenticatedError(kMalformedHeader);
  }
  absl::string_view key = absl::StripLeadingAsciiWhitespace(value.substr(space));
  if (key.empty() || key.find_first_of(kWhitespace) != absl::string_view::npos) {
    return absl::UnauthenticatedError(kMalformedHeader);
  }
  std::optional<Principal> principal = Authenticate(key);
  if (!principal.has_value()) return absl::UnauthenticatedError("invalid API key");
  return *std::move(principal);
}

std::vector<std::string> ApiKeys::tenants() const {
  std::vector<std::string> out;
  out.reserve(entries_.size());
  for (const Entry& e : entries_) out.push_back(e.tenant);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

}  // namespace smolserve::auth
