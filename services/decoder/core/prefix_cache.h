// Prefix caching for the batch engine: KV columns of earlier prompts, reused by a later prompt
// whose first rows are the same inputs. A second turn about the same image, or the same system
// prompt across users, then prefills only its new tokens.
//
// Keys: SHA-256 chains over the prompt's input embedding rows (token embeddings with the image
// features merged in), one digest per block of `block_tokens` rows: digest k covers rows
// [0, (k + 1) * block_tokens). An image position is keyed by the image's features themselves,
// so the same text with another image never matches. Reused lengths are whole blocks, and the
// engine uses its prefill chunk as the block: the remaining chunks run at the same offsets as
// without a hit, and with the batch-invariant float32 kernels the results are bit-identical.
// The prompt's last row is never reused (its logits choose the first token).
//
// Memory: entries are counted by the engine against its KV byte budget and evicted least
// recently used first when running sequences need the room (Evict).
//
// Threads: not thread-safe; the engine uses it from its own thread only. BlockDigests is a
// pure function (the engine runs it in Submit, on the caller's thread).
#ifndef SMOLSERVE_SERVICES_DECODER_CORE_PREFIX_CACHE_H_
#define SMOLSERVE_SERVICES_DECODER_CORE_PREFIX_CACHE_H_

#include <array>
#include <cstdint>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <ATen/core/Tensor.h>

#include "services/decoder/core/text_model.h"

namespace smolserve::decoder {

using PrefixDigest = std::array<uint8_t, 32>;

// Digests of the whole blocks of `embeds` ([1, L, D] or [L, D], float32, contiguous) that may
// be reused: floor((L - 1) / block_tokens) of them.
std::vector<PrefixDigest> BlockDigests(const at::Tensor& embeds, int64_t block_tokens);

class PrefixCache {
 public:
  struct Hit {
    std::shared_ptr<const KvPrefix> prefix;
    int64_t length = 0;  // columns of prefix to reuse: a multiple of the block
  };

  explicit PrefixCache(int64_t block_tokens) : block_tokens_(block_tokens) {}

  int64_t block_tokens() const { return block_tokens_; }
  int64_t bytes() const { return bytes_; }
  int64_t entries() const { return static_cast<int64_t>(lru_.size()); }

  // The longest cached prefix of a prompt with these digests (and marks it recently used).
  std::optional<Hit> Lookup(const std::vector<PrefixDigest>& digests);
  // Whether every block of `digests` is cached already (nothing to store).
  bool Covers(const std::vector<PrefixDigest>& digests) const;
  // Stores `prefix`, whose length is digests.size() * block_tokens.
  void Insert(const std::vector<PrefixDigest>& digests, std::shared_ptr<const KvPrefix> prefix);
  // Drops least recently used entries until at least `bytes` are freed or none is left;
  // returns the bytes freed.
  int64_t Evict(int64_t bytes);

 private:
  struct Entry {
    std::vector<PrefixDigest> digests;
    std::shared_ptr<const KvPrefix> prefix;
  };
  using Lru = std::list<Entry>;  // most recently used first
  struct Where {
    Lru::iterator entry;
    int64_t blocks = 0;  // this digest covers the entry's first `blocks` blocks
  };
  static std::string Key(const PrefixDigest& d) { return std::string(d.begin(), d.end()); }

  const int64_t block_tokens_;
  int64_t bytes_ = 0;
  Lru lru_;
  std::unordered_map<std::string, Where> index_;  // every block digest of every entry
};

}  // namespace smolserve::decoder

#endif  // SMOLSERVE_SERVICES_DECODER_CORE_PREFIX_CACHE_H_
