// UTF-8 helpers shared by the tokenizer: strict decoding of one character and lossy
// decoding that matches Rust's String::from_utf8_lossy (what Hugging Face tokenizers-rs
// uses when it turns decoded bytes into text).
#ifndef SMOLSERVE_COMMON_TOKENIZER_UTF8_H_
#define SMOLSERVE_COMMON_TOKENIZER_UTF8_H_

#include <cstddef>
#include <string>
#include <string_view>

namespace smolserve::tokenizer::internal {

// Decodes the well-formed UTF-8 character at the start of `s` (no overlongs, no
// surrogates, nothing above U+10FFFF). Returns its length in bytes (1-4) and sets *cp, or
// returns 0 when `s` is empty or does not start with a complete well-formed character.
int DecodeUtf8Char(std::string_view s, char32_t* cp);

// True if `s` is entirely well-formed UTF-8.
bool IsValidUtf8(std::string_view s);

// Appends the UTF-8 encoding of `cp` (which must be a Unicode scalar value) to *out.
void AppendUtf8(char32_t cp, std::string* out);

// Appends `bytes` to *out as UTF-8 text, replacing each ill-formed sequence by U+FFFD
// exactly like Rust's String::from_utf8_lossy (one U+FFFD per maximal subpart of an
// ill-formed sequence, W3C/Unicode "substitution of maximal subparts").
// With final == false, a trailing sequence that is incomplete but could still become
// valid when more bytes arrive is left undecoded. Returns the number of bytes consumed
// (always bytes.size() when final is true).
size_t AppendUtf8Lossy(std::string_view bytes, bool final, std::string* out);

// from_utf8_lossy of `bytes`.
std::string Utf8Lossy(std::string_view bytes);

}  // namespace smolserve::tokenizer::internal

#endif  // SMOLSERVE_COMMON_TOKENIZER_UTF8_H_
