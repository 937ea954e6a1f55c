// Pre-tokenization of one text segment (the text between added tokens), as done by
// Hugging Face tokenizers-rs for
//   Sequence[Digits(individual_digits), ByteLevel(add_prefix_space=false, use_regex=true)].
#ifndef SMOLSERVE_COMMON_TOKENIZER_PRE_TOKENIZER_H_
#define SMOLSERVE_COMMON_TOKENIZER_PRE_TOKENIZER_H_

#include <string_view>
#include <vector>

namespace smolserve::tokenizer::internal {

struct PreTokenizerOptions {
  // A Digits pre-tokenizer runs first: numeric characters (Unicode \p{N}, Rust
  // char::is_numeric) are isolated from their neighbours...
  bool split_digits = true;
  // ...each on its own (true) or as runs of consecutive numeric characters (false).
  bool individual_digits = true;
};

// Splits `text` into the pieces that BPE encodes independently, appending them to
// *pieces as views into `text`; the pieces concatenate to `text`.
//
// After the optional digit split, each piece is split by a hand-written equivalent of
// the GPT-2 regex (Oniguruma semantics, alternatives tried in order):
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// with \p{L} / \p{N} the Unicode general categories L* / N* and \s the Oniguruma Unicode
// white space class (U+0009-U+000D, U+0085, Zs, Zl, Zp), from ICU.
//
// Input that is not valid UTF-8 never fails: each byte that does not start a well-formed
// character is treated as one character of the "other" class ([^\s\p{L}\p{N}]), so its
// raw byte goes through byte-level BPE unchanged.
void PreTokenize(std::string_view text, const PreTokenizerOptions& options,
                 std::vector<std::string_view>* pieces);

}  // namespace smolserve::tokenizer::internal

#endif  // SMOLSERVE_COMMON_TOKENIZER_PRE_TOKENIZER_H_
