#include "common/cache/sha256.h"

#include <openssl/evp.h>

#include <cstdlib>
#include <cstdio>

namespace smolserve::cache {

struct Sha256::State {
  EVP_MD_CTX* ctx = nullptr;
  ~State() {
    if (ctx != nullptr) EVP_MD_CTX_free(ctx);
  }
};

Sha256::Sha256() : state_(new State) {
  state_->ctx = EVP_MD_CTX_new();
  if (state_->ctx == nullptr || EVP_DigestInit_ex(state_->ctx, EVP_sha256(), nullptr) != 1) {
    std::fprintf(stderr, "fatal: OpenSSL SHA-256 initialisation failed\n");
    std::abort();
  }
}

Sha256::~Sha256() = default;

Sha256& Sha256::Update(const void* data, size_t size) {
  if (size > 0) EVP_DigestUpdate(state_->ctx, data, size);
  return *this;
}

Sha256& Sha256::UpdateInt(int64_t value) {
  uint8_t b[8];
  for (int i = 0; i < 8; ++i) b[i] = static_cast<uint8_t>(static_cast<uint64_t>(value) >> (8 * i));
  return Update(b, sizeof(b));
}

Sha256& Sha256::UpdateField(const void* data, size_t size) {
  UpdateInt(static_cast<int64_t>(size));
  return Update(data, size);
}

Digest Sha256::Final() {
  Digest d{};
  unsigned int n = 0;
  EVP_DigestFinal_ex(state_->ctx, d.data(), &n);
  return d;
}

Digest Sha256Of(absl::string_view data) { return Sha256().Update(data).Final(); }

std::string DigestHex(const Digest& digest) {
  static const char* kHex = "0123456789abcdef";
  std::string out(64, '0');
  for (size_t i = 0; i < digest.size(); ++i) {
    out[2 * i] = kHex[digest[i] >> 4];
    out[2 * i + 1] = kHex[digest[i] & 15];
  }
  return out;
}

}  // namespace smolserve::cache
