// API keys for the front: a keys file maps secret keys to tenants, and a presented key (bare,
// or from an HTTP "Authorization" header / gRPC "authorization" metadata) maps back to the
// tenant it belongs to.
//
// Secrets: only SHA-256 digests of the keys are kept in memory. Authenticate hashes the
// presented key and compares it with every stored digest using CRYPTO_memcmp, without an early
// exit, so the time taken does not depend on which key matched, whether one did, or how many
// leading characters of a key were right. No error message ever contains a key, stored or
// presented (parse errors name the line number instead).
//
// Threads: an ApiKeys is immutable once built; its const methods may be called from any
// number of threads at once. It is copyable and movable (reloading = building a new one and
// swapping it in under the caller's own synchronization).
#ifndef SMOLSERVE_COMMON_AUTH_API_KEYS_H_
#define SMOLSERVE_COMMON_AUTH_API_KEYS_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace smolserve::auth {

// Who a request is from.
struct Principal {
  std::string tenant;
};

class ApiKeys {
 public:
  static constexpr size_t kMinKeyLength = 16;
  static constexpr size_t kMaxKeyLength = 256;
  static constexpr size_t kMaxTenantLength = 64;
  static constexpr char kDefaultTenant[] = "default";

  // An empty set: authenticates nothing.
  ApiKeys() = default;

  // The keys file: one key per line, optionally followed by whitespace and a tenant name
  // ("key tenant"); the tenant defaults to "default". Blank lines and lines whose first
  // non-blank character is '#' are ignored (so a key cannot start with '#'); "\r\n" line ends
  // are accepted. Keys: printable ASCII without spaces, 16..256 characters; tenant names:
  // [A-Za-z0-9._-]{1,64}. Duplicate keys are an error. A file without any key is valid and
  // yields an ApiKeys that authenticates nothing (size() == 0): callers that need keys check
  // size().
  // Errors: LoadFile: NOT_FOUND (file missing), or the errno-derived status of a failed read
  // (e.g. PERMISSION_DENIED); both: INVALID_ARGUMENT naming the 1-based line number and what
  // is wrong with it ("line 3: ..."; LoadFile prefixes the path). Neither the key nor the
  // tenant text of a bad line is echoed.
  static absl::StatusOr<ApiKeys> LoadFile(const std::string& path);
  static absl::StatusOr<ApiKeys> Parse(absl::string_view text);

  // The principal of a presented key, or nullopt (also for an empty key). Constant time with
  // respect to the key contents (see the file comment); linear in the presented key's length
  // (hashing) and in size().
  std::optional<Principal> Authenticate(absl::string_view presented_key) const;

  // From an HTTP Authorization header value or gRPC "authorization" metadata:
  // "Bearer <key>", the scheme case-insensitive, any whitespace (spaces, tabs) around the
  // value and between scheme and key ignored. Errors, all UNAUTHENTICATED and never containing
  // the presented text:
  //   "missing API key"                  empty / all-whitespace value
  //   "malformed Authorization header (expected \"Bearer <key>\")"
  //                                      another scheme, no key after "Bearer", or a key with
  //                                      whitespace inside
  //   "invalid API key"                  well-formed but unknown key
  absl::StatusOr<Principal> AuthenticateHeader(absl::string_view authorization) const;

  // The tenants named in the file, sorted, unique.
  std::vector<std::string> tenants() const;
  // Number of keys.
  size_t size() const { return entries_.size(); }

 private:
  using Digest = std::array<uint8_t, 32>;
  struct Entry {
    Digest digest;  // SHA-256 of the key
    std::string tenant;
  };
  std::vector<Entry> entries_;
};

}  // namespace smolserve::auth

#endif  // SMOLSERVE_COMMON_AUTH_API_KEYS_H_
