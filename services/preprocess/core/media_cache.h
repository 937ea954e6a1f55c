// The front's media cache: per media item, what preprocessing made of it (MediaInfo) and the
// image embeddings the vision stage returned for it, under its content key and/or id key
// (media_key.h). LRU, bounded by the bytes of the embeddings plus the metadata.
#ifndef SMOLSERVE_SERVICES_PREPROCESS_CORE_MEDIA_CACHE_H_
#define SMOLSERVE_SERVICES_PREPROCESS_CORE_MEDIA_CACHE_H_

#include <cstdint>
#include <memory>

#include <ATen/core/Tensor.h>

#include "common/cache/lru_cache.h"
#include "services/preprocess/core/media_info.h"

namespace smolserve::preprocess {

struct CachedMedia {
  // As Prepare produced it (conversation, first_tile, keys and decode_ms are not meaningful).
  MediaInfo info;
  // [info.num_tiles, image_seq_len, hidden], contiguous, CPU, in the vision stage's dtype.
  at::Tensor embeddings;
  int64_t bytes() const;  // what the entry counts against the cache's budget
};

class MediaCache {
 public:
  // max_bytes <= 0: nothing is ever stored.
  explicit MediaCache(int64_t max_bytes) : lru_(max_bytes) {}

  // The entry under keys.content, else under keys.id; nullptr when neither is cached. A hit
  // by content with an id in `keys` also (re)binds that id to the entry.
  std::shared_ptr<const CachedMedia> Find(const MediaKeys& keys);

  // Stores `entry` under every key set in `keys` (each counts its bytes; when only one fits,
  // the content key is the one kept). Entries larger than the budget are not stored.
  void Store(const MediaKeys& keys, std::shared_ptr<const CachedMedia> entry);

  cache::CacheStats stats() const { return lru_.stats(); }
  int64_t max_bytes() const { return lru_.max_bytes(); }

 private:
  cache::LruCache<CachedMedia> lru_;
};

}  // namespace smolserve::preprocess

#endif  // SMOLSERVE_SERVICES_PREPROCESS_CORE_MEDIA_CACHE_H_
