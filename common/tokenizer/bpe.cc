#include "common/tokenizer/bpe.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/tokenizer/byte_level.h"

namespace smolserve::tokenizer::internal {

absl::StatusOr<std::unique_ptr<BpeModel>> BpeModel::Create(
    std::vector<std::pair<std::string, int32_t>> vocab,
    const std::vector<std::pair<std::string, std::string>>& merges, const Options& options) {
  std::unique_ptr<BpeModel> model(new BpeModel());
  model->ignore_merges_ = options.ignore_merges;
  model->fuse_unk_ = options.fuse_unk;
  int32_t max_id = -1;
  for (const auto& [token, id] : vocab) {
    if (id < 0) return absl::InvalidArgumentError(absl::StrCat("negative vocab id ", id));
    max_id = std::max(max_id, id);
  }
  model->id_to_token_.resize(static_cast<size_t>(max_id) + 1);
  model->has_id_.assign(static_cast<size_t>(max_id) + 1, false);
  model->token_to_id_.reserve(vocab.size());
  for (auto& [token, id] : vocab) {
    if (model->has_id_[id]) {
      return absl::InvalidArgumentError(absl::StrCat("vocab id ", id, " is used twice"));
    }
    model->has_id_[id] = true;
    if (!model->token_to_id_.emplace(token, id).second) {
      return absl::InvalidArgumentError(absl::StrCat("vocab token \"", token, "\" is repeated"));
    }
    model->id_to_token_[id] = std::move(token);
  }
  if (options.unk_token.has_value()) {
    auto it = model->token_to_id_.find(*options.unk_token);
    if (it == model->token_to_id_.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("unk_token \"", *options.unk_token, "\" is not in the vocab"));
    }
    model->unk_id_ = it->second;
  }
  for (int b = 0; b < 256; ++b) {
    auto it = model->token_to_id_.find(ByteToUtf8(static_cast<uint8_t>(b)));
    if (it != model->token_to_id_.end()) {
      model->byte_to_id_[b] = it->second;
      continue;
    }
    model->all_bytes_known_ = false;
    if (options.byte_fallback) {
      auto fb = model->token_to_id_.find(absl::StrFormat("<0x%02X>", b));
      if (fb != model->token_to_id_.end()) {
        model->byte_to_id_[b] = fb->second;
        continue;
      }
    }
    model->byte_to_id_[b] = model->unk_id_ >= 0 ? kUnknownByte : kDroppedByte;
  }
  model->merges_.reserve(merges.size());
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [a, b] = merges[rank];
    auto ia = model->token_to_id_.find(a);
    auto ib = model->token_to_id_.find(b);
    auto inew = model->token_to_id_.find(absl::StrCat(a, b));
    if (ia == model->token_to_id_.end() || ib == model->token_to_id_.end() ||
        inew == model->token_to_id_.end()) {
      return absl::InvalidArgumentError(absl::StrCat("merge ", rank, " (\"", a, "\" \"", b,
                                                     "\") uses a token not in the vocab"));
    }
    model->merges_.insert_or_assign(PairKey(ia->second, ib->second),
                                    MergeResult{static_cast<int32_t>(rank), inew->second});
  }
  return model;
}

std::optional<int32_t> BpeModel::TokenToId(std::string_view token) const {
  auto it = token_to_id_.find(absl::string_view(token.data(), token.size()));
  if (it == token_to_id_.end()) return std::nullopt;
  return it->second;
}

const std::string* BpeModel::IdToToken(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= has_id_.size() || !has_id_[id]) return nullptr;
  return &id_to_token_[id];
}

const BpeModel::MergeResult* BpeModel::FindMerge(int32_t a, int32_t b) const {
  auto it = merges_.find(PairKey(a, b));
  return it == merges_.end() ? nullptr : &it->second;
}

void BpeModel::EncodeWord(std::string_view word, std::vector<int32_t>* ids) const {
  if (word.empty()) return;
  if (word.size() == 1 && byte_to_id_[static_cast<uint8_t>(word[0])] >= 0) {
    ids->push_back(byte_to_id_[static_cast<uint8_t>(word[0])]);
    return;
  }
  const bool cacheable = word.size() <= kMaxCachedWordBytes;
  if (cacheable) {
    absl::ReaderMutexLock lock(&cache_mu_);
    auto it = cache_.find(absl::string_view(word.data(), word.size()));
    if (it != cache_.end()) {
      ids->insert(ids->end(), it->second.begin(), it->second.end());
      return;
    }
  }
  const size_t first = ids->size();
  if (ignore_merges_) {
    auto it = token_to_id_.find(BytesToByteLevel(word));
    if (it != token_to_id_.end()) {
      ids->push_back(it->second);
    } else {
      MergeWord(word, ids);
    }
  } else {
    MergeWord(word, ids);
  }
  if (cacheable) {
    absl::MutexLock lock(&cache_mu_);
    if (cache_.size() >= kCacheCapacity) cache_.clear();
    cache_.emplace(std::string(word), std::vector<int32_t>(ids->begin() + first, ids->end()));
  }
}

// Same procedure as tokenizers-rs Word::merge_all: repeatedly apply the applicable merge
// of lowest rank, the leftmost one among equal ranks, using a priority queue with lazy
// invalidation.
void BpeModel::MergeWord(std::string_view word, std::vector<int32_t>* ids) const {
  struct Symbol {
    int32_t id;
    int32_t prev;
    int32_t next;
    bool alive;
  };
  struct Candidate {
    int32_t rank;
    int32_t pos;
    int32_t new_id;
  };
  // std heap functions build a max-heap; invert to pop the lowest (rank, pos).
  auto later = [](const Candidate& x, const Candidate& y) {
    return x.rank != y.rank ? x.rank > y.rank : x.pos > y.pos;
  };

  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  auto add = [&symbols](int32_t id) {
    const int32_t i = static_cast<int32_t>(symbols.size());
    symbols.push_back({id, i - 1, -1, true});
    if (i > 0) symbols[i - 1].next = i;
  };
  if (all_bytes_known_) {
    for (char c : word) add(byte_to_id_[static_cast<uint8_t>(c)]);
  } else {
    // tokenizers-rs BPE::merge_word for characters missing from the vocab.
    bool unk_pending = false;
    for (char c : word) {
      const int32_t id = byte_to_id_[static_cast<uint8_t>(c)];
      if (id >= 0) {
        if (unk_pending) add(unk_id_);
        unk_pending = false;
        add(id);
      } else if (id == kUnknownByte) {
        if (unk_pending && !fuse_unk_) add(unk_id_);
        unk_pending = true;
      }  // kDroppedByte: nothing
    }
    if (unk_pending) add(unk_id_);
  }
  const int32_t n = static_cast<int32_t>(symbols.size());
  if (n == 0) return;
  std::vector<Candidate> heap;
  heap.reserve(n);
  for (int32_t i = 0; i + 1 < n; ++i) {
    if (const MergeResult* m = FindMerge(symbols[i].id, symbols[i + 1].id)) {
      heap.push_back({m->rank, i, m->new_id});
    }
  }
  std::make_heap(heap.begin(), heap.end(), later);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), later);
    const Candidate top = heap.back();
    heap.pop_back();
    Symbol& left = symbols[top.pos];
    if (!left.alive || left.next < 0) continue;
    const int32_t right_pos = left.next;
    Symbol& right = symbols[right_pos];
    const MergeResult* m = FindMerge(left.id, right.id);
    if (m == nullptr || m->rank != top.rank || m->new_id != top.new_id) continue;  // stale
    left.id = top.new_id;
    left.next = right.next;
    right.alive = false;
    if (right.next >= 0) symbols[right.next].prev = top.pos;
    if (left.prev >= 0) {
      if (const MergeResult* pm = FindMerge(symbols[left.prev].id, left.id)) {
        heap.push_back({pm->rank, left.prev, pm->new_id});
        std::push_heap(heap.begin(), heap.end(), later);
      }
    }
    if (left.next >= 0) {
      if (const MergeResult* nm = FindMerge(left.id, symbols[left.next].id)) {
        heap.push_back({nm->rank, top.pos, nm->new_id});
        std::push_heap(heap.begin(), heap.end(), later);
      }
    }
  }
  for (int32_t i = 0; i >= 0; i = symbols[i].next) ids->push_back(symbols[i].id);
}

}  // namespace smolserve::tokenizer::internal
