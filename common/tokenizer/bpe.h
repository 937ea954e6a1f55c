// Byte-level BPE model (Hugging Face tokenizers-rs `BPE` without dropout, unk,
// continuing-subword prefix or end-of-word suffix).
#ifndef SMOLSERVE_COMMON_TOKENIZER_BPE_H_
#define SMOLSERVE_COMMON_TOKENIZER_BPE_H_

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace smolserve::tokenizer::internal {

class BpeModel {
 public:
  // Words longer than this (in bytes) are not cached.
  static constexpr size_t kMaxCachedWordBytes = 256;
  // The cache is emptied when it reaches this many words.
  static constexpr size_t kCacheCapacity = 10000;

  struct Options {
    // A word that is itself a vocab entry is emitted as that entry, without merges.
    bool ignore_merges = false;
    // How a byte whose byte-level character is not in the vocab is encoded (checked in
    // this order): as the vocab entry "<0xXX>" if byte_fallback and it exists; as
    // unk_token (consecutive ones fused into one if fuse_unk) if unk_token is set;
    // otherwise it is dropped, as tokenizers-rs does.
    bool byte_fallback = false;
    std::optional<std::string> unk_token;
    bool fuse_unk = false;
  };

  // `vocab`: token string (in the byte-level alphabet) -> id; ids must be distinct and
  // non-negative, and so must the strings. `merges`: pairs in rank order (rank = index);
  // both sides and their concatenation must be in the vocab; a repeated pair keeps its
  // last rank (as tokenizers-rs does).
  static absl::StatusOr<std::unique_ptr<BpeModel>> Create(
      std::vector<std::pair<std::string, int32_t>> vocab,
      const std::vector<std::pair<std::string, std::string>>& merges, const Options& options);

  // BPE-encodes one pre-token given as raw bytes (before the byte-level mapping) and
  // appends the ids to *ids. Thread-safe.
  void EncodeWord(std::string_view word, std::vector<int32_t>* ids) const;

  std::optional<int32_t> TokenToId(std::string_view token) const;
  // Token string of `id`, or nullptr if no vocab entry has that id.
  const std::string* IdToToken(int32_t id) const;
  // Largest vocab id + 1.
  int32_t id_limit() const { return static_cast<int32_t>(id_to_token_.size()); }

 private:
  struct MergeResult {
    int32_t rank;
    int32_t new_id;
  };

  BpeModel() = default;

  static uint64_t PairKey(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  const MergeResult* FindMerge(int32_t a, int32_t b) const;
  void MergeWord(std::string_view word, std::vector<int32_t>* ids) const;

  absl::flat_hash_map<std::string, int32_t> token_to_id_;
  std::vector<std::string> id_to_token_;
  std::vector<bool> has_id_;
  absl::flat_hash_map<uint64_t, MergeResult> merges_;
  // Initial symbol of each byte: a vocab id, kUnknownByte or kDroppedByte.
  static constexpr int32_t kUnknownByte = -1;
  static constexpr int32_t kDroppedByte = -2;
  std::array<int32_t, 256> byte_to_id_{};
  bool all_bytes_known_ = true;
  int32_t unk_id_ = -1;
  bool fuse_unk_ = false;
  bool ignore_merges_ = false;

  mutable absl::Mutex cache_mu_;
  mutable absl::flat_hash_map<std::string, std::vector<int32_t>> cache_
      ABSL_GUARDED_BY(cache_mu_);
};

}  // namespace smolserve::tokenizer::internal

#endif  // SMOLSERVE_COMMON_TOKENIZER_BPE_H_
