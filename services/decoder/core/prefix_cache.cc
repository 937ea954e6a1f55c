#include "services/decoder/core/prefix_cache.h"

#include <openssl/sha.h>

#include <ATen/ATen.h>

namespace smolserve::decoder {

std::vector<PrefixDigest> BlockDigests(const at::Tensor& embeds, int64_t block_tokens) {
  std::vector<PrefixDigest> out;
  const int64_t L = embeds.size(-2), D = embeds.size(-1);
  if (block_tokens < 1 || L < 2) return out;
  const int64_t blocks = (L - 1) / block_tokens;
  const auto* rows = static_cast<const uint8_t*>(embeds.data_ptr());
  const size_t block_bytes = static_cast<size_t>(block_tokens * D) * embeds.element_size();
  PrefixDigest prev{};
  for (int64_t k = 0; k < blocks; ++k) {
    SHA256_CTX ctx;
    SHA256_Init(&ctx);
    SHA256_Update(&ctx, prev.data(), prev.size());  // chained: digest k covers blocks 0..k
    SHA256_Update(&ctx, rows + k * block_bytes, block_bytes);
    SHA256_Final(prev.data(), &ctx);
    out.push_back(prev);
  }
  return out;
}

std::optional<PrefixCache::Hit> PrefixCache::Lookup(const std::vector<PrefixDigest>& digests) {
  for (int64_t k = static_cast<int64_t>(digests.size()); k >= 1; --k) {
    auto it = index_.find(Key(digests[k - 1]));
    if (it == index_.end()) continue;
    lru_.splice(lru_.begin(), lru_, it->second.entry);
    return Hit{it->second.entry->prefix, k * block_tokens_};
  }
  return std::nullopt;
}

bool PrefixCache::Covers(const std::vector<PrefixDigest>& digests) const {
  return digests.empty() || index_.count(Key(digests.back())) > 0;
}

void PrefixCache::Insert(const std::vector<PrefixDigest>& digests,
                         std::shared_ptr<const KvPrefix> prefix) {
  if (digests.empty() || Covers(digests)) return;
  lru_.push_front(Entry{digests, std::move(prefix)});
  bytes_ += lru_.front().prefix->bytes;
  for (size_t k = 0; k < digests.size(); ++k) {
    // A longer entry serves every shorter prefix too: the newest one answers.
    index_[Key(digests[k])] = Where{lru_.begin(), static_cast<int64_t>(k + 1)};
  }
}

int64_t PrefixCache::Evict(int64_t bytes) {
  int64_t freed = 0;
  while (freed < bytes && !lru_.empty()) {
    auto last = std::prev(lru_.end());
    for (const PrefixDigest& d : last->digests) {
      auto it = index_.find(Key(d));
      if (it != index_.end() && it->second.entry == last) index_.erase(it);
    }
    freed += last->prefix->bytes;
    bytes_ -= last->prefix->bytes;
    lru_.erase(last);
  }
  return freed;
}

}  // namespace smolserve::decoder
