// SmolVLM / SmolVLM2 tokenizer: byte-level BPE loaded from a Hugging Face tokenizer.json,
// reproducing Hugging Face tokenizers-rs (encode without a post-processor, i.e. no
// BOS/EOS; decode with the ByteLevel decoder and from_utf8_lossy).
//
// Encoding:
//   1. Added tokens (tokenizer.json "added_tokens", e.g. "<image>", "<|im_start|>") are
//      found in the raw text first, leftmost-longest, and emitted as their ids.
//   2. Each text segment between them is pre-tokenized independently:
//      Digits(individual_digits) then the GPT-2 ByteLevel regex (see pre_tokenizer.h).
//   3. Each piece's UTF-8 bytes are BPE-encoded with the ranked merges (cached per piece).
// Text that is not valid UTF-8 is accepted and first converted the way Rust's
// String::from_utf8_lossy does (ill-formed sequences become U+FFFD), so Encode(x) equals
// tokenizers-rs encoding from_utf8_lossy(x) (tokenizers-rs only takes valid strings).
//
// Bytes whose byte-level character is not in the vocab are dropped during BPE, exactly
// as tokenizers-rs does without unk_token/byte_fallback. The SmolVLM vocab lacks 21 of
// the 256 byte characters: the control bytes 0x04 0x06 0x13 0x14 0x16 0x1D (so e.g.
// "\x04" encodes to no ids) and 0xC0 0xC1 0xF1 0xF2 0xF5-0xFF (never in valid UTF-8
// except 0xF1/0xF2, which lead unassigned planes 4-11). Decode(Encode(x)) == x for
// every valid UTF-8 x that contains none of those bytes.
//
// All methods are thread-safe.
#ifndef SMOLSERVE_COMMON_TOKENIZER_TOKENIZER_H_
#define SMOLSERVE_COMMON_TOKENIZER_TOKENIZER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace smolserve::tokenizer {

namespace internal {
class AddedTokenMatcher;
class BpeModel;
}  // namespace internal

class Tokenizer {
 public:
  // Builds a tokenizer from the text of a tokenizer.json.
  // INVALID_ARGUMENT: not JSON, or required fields (model, model.vocab, model.merges) are
  // missing or malformed, or merges refer to tokens outside the vocab.
  // FAILED_PRECONDITION: a configuration this implementation does not reproduce (model
  // type other than BPE, a normalizer, pre-tokenizers other than [Digits, ByteLevel] or
  // ByteLevel, add_prefix_space=true, post-processors other than ByteLevel, truncation,
  // decoders other than ByteLevel, dropout, subword prefix/suffix, added tokens with
  // lstrip/rstrip/single_word).
  // Bytes whose byte-level character is not in the vocab (21 such bytes in the SmolVLM
  // vocab, e.g. 0x04, 0xC0, 0xF5-0xFF) are encoded as tokenizers-rs does: via byte
  // fallback or unk_token if configured, otherwise dropped (SmolVLM: dropped).
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromJson(std::string_view tokenizer_json);
  // Reads `path` (a tokenizer.json). NOT_FOUND if it cannot be read.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromFile(const std::string& path);
  // Reads `dir`/tokenizer.json.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromModelDir(const std::string& dir);

  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;
  ~Tokenizer();

  // Token ids of `text`; added tokens are recognised in the raw text. No BOS/EOS.
  std::vector<int32_t> Encode(std::string_view text) const;
  // Same, appending to *ids.
  void EncodeAppend(std::string_view text, std::vector<int32_t>* ids) const;

  // Text of `ids`: the bytes of every token concatenated (byte-level mapping reversed;
  // added tokens give their content), then decoded as UTF-8 with U+FFFD for ill-formed
  // sequences (Rust String::from_utf8_lossy). With skip_special_tokens, ids of special
  // tokens are left out. Ids that are not in the vocab or added tokens (negative, too
  // large, or holes) are skipped, as tokenizers-rs does.
  std::string Decode(absl::Span<const int32_t> ids, bool skip_special_tokens = false) const;

  // Id of an added token or vocab entry (token strings are in the byte-level alphabet,
  // e.g. "Ġworld"); added tokens take precedence.
  std::optional<int32_t> TokenToId(std::string_view token) const;
  // Token string of `id` (added-token content or vocab entry), "" if the id is unknown.
  std::string IdToToken(int32_t id) const;
  // True if `id` is a known id (vocab entry or added token).
  bool IsKnownId(int32_t id) const;
  // True if `id`'s token is a special added token (the ids Decode skips).
  bool IsSpecial(int32_t id) const;
  // Largest known id + 1 (49280 for SmolVLM / SmolVLM2).
  int32_t vocab_size() const { return static_cast<int32_t>(tokens_.size()); }

 private:
  friend class IncrementalDecoder;

  struct TokenInfo {
    std::string token;  // added-token content or vocab string
    std::string bytes;  // what it decodes to (before UTF-8 decoding)
    bool known = false;
    bool special = false;
  };

  Tokenizer();
  // Bytes `id` contributes to a decode, or nullptr when it contributes nothing.
  const std::string* DecodedBytes(int32_t id, bool skip_special_tokens) const;
  void EncodeValidUtf8(std::string_view text, std::vector<int32_t>* ids) const;
  void EncodeSegment(std::string_view segment, std::vector<int32_t>* ids) const;

  std::unique_ptr<internal::BpeModel> bpe_;
  std::unique_ptr<internal::AddedTokenMatcher> added_;
  bool split_digits_ = true;
  bool individual_digits_ = true;
  absl::flat_hash_map<std::string, int32_t> added_token_to_id_;
  std::vector<TokenInfo> tokens_;  // indexed by id
};

// Streaming decode: feed ids one at a time and get only the text completed so far.
// Bytes of an incomplete UTF-8 character at the end are held back until later ids
// complete it (or Flush). Concatenating the outputs of Add() for ids[0..n) and then
// Flush() gives exactly tokenizer.Decode(ids, skip_special_tokens).
// Not thread-safe; the tokenizer must outlive the decoder.
class IncrementalDecoder {
 public:
  IncrementalDecoder(const Tokenizer& tokenizer, bool skip_special_tokens);

  // Adds one id; returns the newly completed text (possibly empty). Unknown ids and,
  // with skip_special_tokens, special ids contribute nothing.
  std::string Add(int32_t id);
  // Returns whatever is held back (an incomplete sequence decodes to U+FFFD) and resets
  // the decoder for a new sequence.
  std::string Flush();
  // True if bytes are being held back.
  bool has_pending() const { return !pending_.empty(); }

 private:
  const Tokenizer& tokenizer_;
  bool skip_special_tokens_;
  std::string pending_;
};

}  // namespace smolserve::tokenizer

#endif  // SMOLSERVE_COMMON_TOKENIZER_TOKENIZER_H_
