// Finds added tokens (special tokens such as "<image>") in raw text the way Hugging Face
// tokenizers-rs does: an Aho-Corasick search with leftmost-longest semantics.
#ifndef SMOLSERVE_COMMON_TOKENIZER_ADDED_TOKENS_H_
#define SMOLSERVE_COMMON_TOKENIZER_ADDED_TOKENS_H_

#include <bitset>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

namespace smolserve::tokenizer::internal {

class AddedTokenMatcher {
 public:
  struct Match {
    size_t begin = 0;
    size_t length = 0;
    int32_t id = 0;
  };

  AddedTokenMatcher();

  // Registers `content` (non-empty) for `id`. If the same content is added twice the
  // first id is kept.
  void Add(std::string_view content, int32_t id);

  // The leftmost match starting at or after `from`, the longest one at that position.
  std::optional<Match> FindNext(std::string_view text, size_t from) const;

  bool empty() const { return nodes_.size() == 1; }

 private:
  struct Node {
    std::vector<std::pair<uint8_t, int32_t>> children;  // byte -> node index
    int32_t id = -1;                                    // token ending here, or -1
  };

  int32_t Child(int32_t node, uint8_t b) const;

  std::vector<Node> nodes_;     // nodes_[0] is the root
  std::bitset<256> first_byte_;  // bytes that start some token
};

}  // namespace smolserve::tokenizer::internal

#endif  // SMOLSERVE_COMMON_TOKENIZER_ADDED_TOKENS_H_
