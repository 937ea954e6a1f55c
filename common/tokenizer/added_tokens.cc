#include "common/tokenizer/added_tokens.h"

namespace smolserve::tokenizer::internal {

AddedTokenMatcher::AddedTokenMatcher() : nodes_(1) {}

int32_t AddedTokenMatcher::Child(int32_t node, uint8_t b) const {
  for (const auto& [byte, child] : nodes_[node].children) {
    if (byte == b) return child;
  }
  return -1;
}

void AddedTokenMatcher::Add(std::string_view content, int32_t id) {
  if (content.empty()) return;
  int32_t node = 0;
  for (char c : content) {
    const uint8_t b = static_cast<uint8_t>(c);
    int32_t next = Child(node, b);
    if (next < 0) {
      next = static_cast<int32_t>(nodes_.size());
      nodes_[node].children.emplace_back(b, next);
      nodes_.emplace_back();
    }
    node = next;
  }
  if (nodes_[node].id < 0) nodes_[node].id = id;
  first_byte_.set(static_cast<uint8_t>(content[0]));
}

std::optional<AddedTokenMatcher::Match> AddedTokenMatcher::FindNext(std::string_view text,
                                                                    size_t from) const {
  for (size_t start = from; start < text.size(); ++start) {
    if (!first_byte_.test(static_cast<uint8_t>(text[start]))) continue;
    int32_t node = 0;
    std::optional<Match> best;
    for (size_t i = start; i < text.size(); ++i) {
      node = Child(node, static_cast<uint8_t>(text[i]));
      if (node < 0) break;
      if (nodes_[node].id >= 0) best = Match{start, i + 1 - start, nodes_[node].id};
    }
    if (best.has_value()) return best;
  }
  return std::nullopt;
}

}  // namespace smolserve::tokenizer::internal
