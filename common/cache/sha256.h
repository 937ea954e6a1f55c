// SHA-256 (OpenSSL's libcrypto) for content-addressed cache keys: full 256-bit digests,
// never truncated, so two different inputs sharing a key is impossible in practice.
#ifndef SMOLSERVE_COMMON_CACHE_SHA256_H_
#define SMOLSERVE_COMMON_CACHE_SHA256_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/strings/string_view.h"

namespace smolserve::cache {

using Digest = std::array<uint8_t, 32>;

// Incremental hasher. Field boundaries matter for keys built from several parts: use
// UpdateField, which prefixes each part with its length, so ("ab","c") != ("a","bc").
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  Sha256& Update(const void* data, size_t size);
  Sha256& Update(absl::string_view data) { return Update(data.data(), data.size()); }
  // Length-prefixed (8 bytes, little-endian) part.
  Sha256& UpdateField(const void* data, size_t size);
  Sha256& UpdateField(absl::string_view data) { return UpdateField(data.data(), data.size()); }
  Sha256& UpdateInt(int64_t value);
  // The digest; the hasher must not be used afterwards.
  Digest Final();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

Digest Sha256Of(absl::string_view data);
// Lower-case hex, 64 characters.
std::string DigestHex(const Digest& digest);

struct DigestHash {
  size_t operator()(const Digest& d) const {
    size_t h;
    static_assert(sizeof(h) <= sizeof(Digest));
    __builtin_memcpy(&h, d.data(), sizeof(h));  // already uniformly distributed
    return h;
  }
};

}  // namespace smolserve::cache

#endif  // SMOLSERVE_COMMON_CACHE_SHA256_H_
