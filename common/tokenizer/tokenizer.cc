#include "common/tokenizer/tokenizer.h"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status/status_macros.h"
#include "common/tokenizer/added_tokens.h"
#include "common/tokenizer/bpe.h"
#include "common/tokenizer/byte_level.h"
#include "common/tokenizer/pre_tokenizer.h"
#include "common/tokenizer/tokenizer_json.h"
#include "common/tokenizer/utf8.h"

namespace smolserve::tokenizer {

using internal::AddedTokenMatcher;
using internal::BpeModel;

Tokenizer::Tokenizer() = default;
Tokenizer::~Tokenizer() = default;

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromJson(std::string_view tokenizer_json) {
  ASSIGN_OR_RETURN(internal::TokenizerSpec spec,
                   internal::ParseTokenizerJson(tokenizer_json));
  std::unique_ptr<Tokenizer> tok(new Tokenizer());
  tok->split_digits_ = spec.pre_tokenizer.split_digits;
  tok->individual_digits_ = spec.pre_tokenizer.individual_digits;
  BpeModel::Options bpe_options;
  bpe_options.ignore_merges = spec.ignore_merges;
  bpe_options.byte_fallback = spec.byte_fallback;
  bpe_options.unk_token = spec.unk_token;
  bpe_options.fuse_unk = spec.fuse_unk;
  absl::StatusOr<std::unique_ptr<BpeModel>> bpe =
      BpeModel::Create(std::move(spec.vocab), spec.merges, bpe_options);
  if (!bpe.ok()) return Annotate(bpe.status(), "tokenizer.json: model");
  tok->bpe_ = *std::move(bpe);

  int32_t limit = tok->bpe_->id_limit();
  for (const auto& t : spec.added_tokens) limit = std::max(limit, t.id + 1);
  tok->tokens_.resize(limit);
  for (int32_t id = 0; id < tok->bpe_->id_limit(); ++id) {
    if (const std::string* s = tok->bpe_->IdToToken(id)) {
      tok->tokens_[id].token = *s;
      tok->tokens_[id].known = true;
    }
  }
  // Added tokens override the vocab string of their id (tokenizers-rs looks ids up in the
  // added vocabulary first).
  tok->added_ = std::make_unique<AddedTokenMatcher>();
  absl::flat_hash_set<std::string> special_contents;
  for (const auto& t : spec.added_tokens) {
    tok->tokens_[t.id].token = t.content;
    tok->tokens_[t.id].known = true;
    tok->added_token_to_id_.emplace(t.content, t.id);
    tok->added_->Add(t.content, t.id);
    if (t.special) special_contents.insert(t.content);
  }
  for (TokenInfo& info : tok->tokens_) {
    if (!info.known) continue;
    info.bytes = internal::ByteLevelTokenToBytes(info.token);
    // tokenizers-rs skips by token string: any id whose string is a special token's.
    info.special = special_contents.contains(info.token);
  }
  return tok;
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open tokenizer file ", path));
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) return absl::DataLossError(absl::StrCat("error reading ", path));
  absl::StatusOr<std::unique_ptr<Tokenizer>> tok = FromJson(buffer.str());
  if (!tok.ok()) return Annotate(tok.status(), path);
  return tok;
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromModelDir(const std::string& dir) {
  return FromFile(absl::StrCat(dir, "/tokenizer.json"));
}

void Tokenizer::EncodeSegment(std::string_view segment, std::vector<int32_t>* ids) const {
  thread_local std::vector<std::string_view> pieces;
  pieces.clear();
  internal::PreTokenizerOptions options;
  options.split_digits = split_digits_;
  options.individual_digits = individual_digits_;
  internal::PreTokenize(segment, options, &pieces);
  for (std::string_view piece : pieces) bpe_->EncodeWord(piece, ids);
  if (pieces.capacity() > 4096) std::vector<std::string_view>().swap(pieces);
}

void Tokenizer::EncodeAppend(std::string_view text, std::vector<int32_t>* ids) const {
  if (!internal::IsValidUtf8(text)) {
    EncodeValidUtf8(internal::Utf8Lossy(text), ids);
  } else {
    EncodeValidUtf8(text, ids);
  }
}

void Tokenizer::EncodeValidUtf8(std::string_view text, std::vector<int32_t>* ids) const {
  size_t pos = 0;
  while (pos < text.size()) {
    const std::optional<AddedTokenMatcher::Match> match = added_->FindNext(text, pos);
    const size_t end = match.has_value() ? match->begin : text.size();
    if (end > pos) EncodeSegment(text.substr(pos, end - pos), ids);
    if (!match.has_value()) break;
    ids->push_back(match->id);
    pos = match->begin + match->length;
  }
}

std::vector<int32_t> Tokenizer::Encode(std::string_view text) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 1);
  EncodeAppend(text, &ids);
  return ids;
}

const std::string* Tokenizer::DecodedBytes(int32_t id, bool skip_special_tokens) const {
  if (!IsKnownId(id)) return nullptr;
  const TokenInfo& info = tokens_[id];
  if (skip_special_tokens && info.special) return nullptr;
  return &info.bytes;
}

std::string Tokenizer::Decode(absl::Span<const int32_t> ids, bool skip_special_tokens) const {
  std::string bytes;
  for (int32_t id : ids) {
    if (const std::string* b = DecodedBytes(id, skip_special_tokens)) bytes += *b;
  }
  return internal::Utf8Lossy(bytes);
}

std::optional<int32_t> Tokenizer::TokenToId(std::string_view token) const {
  auto it = added_token_to_id_.find(absl::string_view(token.data(), token.size()));
  if (it != added_token_to_id_.end()) return it->second;
  return bpe_->TokenToId(token);
}

std::string Tokenizer::IdToToken(int32_t id) const {
  return IsKnownId(id) ? tokens_[id].token : std::string();
}

bool Tokenizer::IsKnownId(int32_t id) const {
  return id >= 0 && static_cast<size_t>(id) < tokens_.size() && tokens_[id].known;
}

bool Tokenizer::IsSpecial(int32_t id) const { return IsKnownId(id) && tokens_[id].special; }

IncrementalDecoder::IncrementalDecoder(const Tokenizer& tokenizer, bool skip_special_tokens)
    : tokenizer_(tokenizer), skip_special_tokens_(skip_special_tokens) {}

std::string IncrementalDecoder::Add(int32_t id) {
  std::string out;
  const std::string* bytes = tokenizer_.DecodedBytes(id, skip_special_tokens_);
  if (bytes == nullptr || bytes->empty()) return out;
  pending_ += *bytes;
  const size_t consumed = internal::AppendUtf8Lossy(pending_, /*final=*/false, &out);
  pending_.erase(0, consumed);
  return out;
}

std::string IncrementalDecoder::Flush() {
  std::string out = internal::Utf8Lossy(pending_);
  pending_.clear();
  return out;
}

}  // namespace smolserve::tokenizer
