// Parsing and validation of a Hugging Face tokenizer.json into the settings this
// implementation supports (byte-level BPE as used by SmolLM2 / SmolVLM / SmolVLM2).
#ifndef SMOLSERVE_COMMON_TOKENIZER_TOKENIZER_JSON_H_
#define SMOLSERVE_COMMON_TOKENIZER_TOKENIZER_JSON_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "common/tokenizer/pre_tokenizer.h"

namespace smolserve::tokenizer::internal {

// Ids above this are rejected: the id tables are dense, so a huge id in a malformed file
// would allocate a huge table. (Real vocabularies stay below ~260k.)
inline constexpr int64_t kMaxTokenId = (int64_t{1} << 20) - 1;

struct AddedTokenSpec {
  int32_t id = 0;
  std::string content;
  bool special = false;
};

struct TokenizerSpec {
  std::vector<std::pair<std::string, int32_t>> vocab;
  std::vector<std::pair<std::string, std::string>> merges;  // rank order
  bool ignore_merges = false;
  bool byte_fallback = false;
  std::optional<std::string> unk_token;
  bool fuse_unk = false;
  std::vector<AddedTokenSpec> added_tokens;
  PreTokenizerOptions pre_tokenizer;
};

// INVALID_ARGUMENT: not JSON, or fields missing / of the wrong type.
// FAILED_PRECONDITION: well-formed but using a feature this implementation does not
// reproduce (another model type, a normalizer, other pre-tokenizers, a post-processor
// that adds tokens, truncation, BPE dropout, subword prefixes/suffixes, added tokens with
// lstrip/rstrip/single_word, a decoder other than ByteLevel).
// Vocab/merge consistency is checked later, by BpeModel::Create.
absl::StatusOr<TokenizerSpec> ParseTokenizerJson(std::string_view json);

}  // namespace smolserve::tokenizer::internal

#endif  // SMOLSERVE_COMMON_TOKENIZER_TOKENIZER_JSON_H_
