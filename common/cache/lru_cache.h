// A thread-safe LRU map from SHA-256 digests to values, bounded by the bytes its values
// occupy (the caller states each value's size). Values are handed out as shared_ptr<const V>,
// so an entry evicted while a reader holds it stays valid for that reader.
#ifndef SMOLSERVE_COMMON_CACHE_LRU_CACHE_H_
#define SMOLSERVE_COMMON_CACHE_LRU_CACHE_H_

#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <utility>

#include "common/cache/sha256.h"

namespace smolserve::cache {

struct CacheStats {
  int64_t hits = 0;
  int64_t misses = 0;
  int64_t insertions = 0;
  int64_t evictions = 0;
  int64_t rejected = 0;  // values larger than the whole budget, never stored
  int64_t bytes = 0;     // current
  int64_t entries = 0;   // current
  int64_t max_bytes = 0;
};

template <typename V>
class LruCache {
 public:
  // max_bytes <= 0 disables the cache (every Get misses, Put stores nothing).
  explicit LruCache(int64_t max_bytes) : max_bytes_(max_bytes) {}

  // The value under `key` (and marks it most recently used), or nullptr.
  std::shared_ptr<const V> Get(const Digest& key) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = index_.find(key);
    if (it == index_.end()) {
      ++stats_.misses;
      return nullptr;
    }
    ++stats_.hits;
    order_.splice(order_.begin(), order_, it->second);
    return it->second->value;
  }

  // Looks up without touching recency or the hit counters.
  bool Contains(const Digest& key) const {
    std::lock_guard<std::mutex> lock(mu_);
    return index_.count(key) > 0;
  }

  // Stores (or replaces) `value` of `bytes` bytes, evicting least recently used entries until
  // the total fits max_bytes. A value larger than max_bytes is not stored.
  void Put(const Digest& key, std::shared_ptr<const V> value, int64_t bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    if (bytes > max_bytes_ || bytes < 0) {
      ++stats_.rejected;
      return;
    }
    auto it = index_.find(key);
    if (it != index_.end()) {
      stats_.bytes -= it->second->bytes;
      order_.erase(it->second);
      index_.erase(it);
    }
    while (!order_.empty() && stats_.bytes + bytes > max_bytes_) {
      Entry& victim = order_.back();
      stats_.bytes -= victim.bytes;
      index_.erase(victim.key);
      order_.pop_back();
      ++stats_.evictions;
    }
    order_.push_front(Entry{key, std::move(value), bytes});
    index_[key] = order_.begin();
    stats_.bytes += bytes;
    ++stats_.insertions;
  }

  void Clear() {
    std::lock_guard<std::mutex> lock(mu_);
    order_.clear();
    index_.clear();
    stats_.bytes = 0;
  }

  CacheStats stats() const {
    std::lock_guard<std::mutex> lock(mu_);
    CacheStats s = stats_;
    s.entries = static_cast<int64_t>(index_.size());
    s.max_bytes = max_bytes_;
    return s;
  }

  int64_t max_bytes() const { return max_bytes_; }

 private:
  struct Entry {
    Digest key;
    std::shared_ptr<const V> value;
    int64_t bytes;
  };

  const int64_t max_bytes_;
  mutable std::mutex mu_;
  std::list<Entry> order_;  // most recently used first
  std::unordered_map<Digest, typename std::list<Entry>::iterator, DigestHash> index_;
  CacheStats stats_;
};

}  // namespace smolserve::cache

#endif  // SMOLSERVE_COMMON_CACHE_LRU_CACHE_H_
