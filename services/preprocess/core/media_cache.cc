#include "services/preprocess/core/media_cache.h"

#include <utility>

namespace smolserve::preprocess {

int64_t CachedMedia::bytes() const {
  const int64_t tensor = embeddings.defined() ? static_cast<int64_t>(embeddings.nbytes()) : 0;
  return tensor + info.ApproximateBytes() + static_cast<int64_t>(sizeof(CachedMedia));
}

std::shared_ptr<const CachedMedia> MediaCache::Find(const MediaKeys& keys) {
  if (keys.content) {
    auto hit = lru_.Get(*keys.content);
    if (hit != nullptr && keys.id) lru_.Put(*keys.id, hit, hit->bytes());
    return hit;
  }
  if (keys.id) return lru_.Get(*keys.id);
  return nullptr;
}

void MediaCache::Store(const MediaKeys& keys, std::shared_ptr<const CachedMedia> entry) {
  if (entry == nullptr) return;
  const int64_t bytes = entry->bytes();
  if (keys.id) lru_.Put(*keys.id, entry, bytes);
  if (keys.content) lru_.Put(*keys.content, std::move(entry), bytes);
}

}  // namespace smolserve::preprocess
