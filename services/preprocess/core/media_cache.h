// The front's media cache: per media item, what preprocessing made of it (MediaInfo) and the
// image embeddings the vision stage returned for it, under its content key and/or id key
// (media_key.h). LRU, bounded by the bytes of the embeddings plus the metadata.
#ifndef SMOLSERVE_SERVICES_PREPROCESS_CORE_MEDIA_CACHE_H_
#define SMOLSERVE_SERVICES_PREPROCESS_CORE_MEDIA_CACHE_H_

#include <cstdint>
#include <memory>
#include <string>

#include <ATen/core/Tensor.h>

#include "common/cache/lru_cache.h"
#include "services/preprocess/core/media_info.h"

namespace smolserve::preprocess {

struct CachedMedia {
  // As Prepare produced it (conversation, first_tile, keys and decode_ms are not meaningful).
  MediaInfo info;
  // [info.num_tiles, image_seq_len, hidden], contiguous, CPU, in the vision stage's dtype.
  at::Tensor embeddings;
  // The vision model revision that computed them: entries of another revision than the vision
  // stage's current one are not used (ChatPipeline), as if the revision were part of the key.
  std::string model_revision;
  int64_t bytes() const;  // what the entry counts against the cache's budget
};

class MediaCache {
 public:
  // max_bytes <= 0: nothing is ever stored.
  explicit MediaCache(int64_t max_bytes) : lru_(max_bytes) {}

  // With keys.content (the request sent the media's bytes): the entry under that key only —
  // content sent always wins over an id, so new bytes under a known id are never answered
  // with the id's old media; a hit also (re)binds keys.id to the entry. With keys.id alone
  // (the request named media sent before): the entry under the id. nullptr when not cached.
  std::shared_ptr<const CachedMedia> Find(const MediaKeys& keys);

  // Stores `entry` under every key set in `keys` (each counts its bytes; when only one fits,
  // the content key is the one kept), so an id is bound to the content last sent with it.
  // Entries larger than the budget are not stored.
  void Store(const MediaKeys& keys, std::shared_ptr<const CachedMedia> entry);

  cache::CacheStats stats() const { return lru_.stats(); }
  int64_t max_bytes() const { return lru_.max_bytes(); }

 private:
  cache::LruCache<CachedMedia> lru_;
};

}  // namespace smolserve::preprocess

#endif  // SMOLSERVE_SERVICES_PREPROCESS_CORE_MEDIA_CACHE_H_
