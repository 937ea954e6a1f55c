// GPT-2 byte-level alphabet (bytes_to_unicode): every byte maps to one printable code
// point so that byte-level BPE tokens are readable strings ("Ġ" is the space byte).
#ifndef SMOLSERVE_COMMON_TOKENIZER_BYTE_LEVEL_H_
#define SMOLSERVE_COMMON_TOKENIZER_BYTE_LEVEL_H_

#include <cstdint>
#include <string>
#include <string_view>

namespace smolserve::tokenizer::internal {

// Code point that byte `b` maps to: bytes 33-126, 161-172 and 174-255 map to themselves,
// the other 68 bytes to 256, 257, ... in increasing byte order.
char32_t ByteToCodePoint(uint8_t b);

// UTF-8 of ByteToCodePoint(b).
const std::string& ByteToUtf8(uint8_t b);

// Inverse of ByteToCodePoint: the byte for `cp`, or -1 if `cp` is not in the alphabet.
int CodePointToByte(char32_t cp);

// Maps raw bytes to their byte-level string (what BPE vocab entries are made of).
std::string BytesToByteLevel(std::string_view bytes);

// The Hugging Face ByteLevel decoder applied to one token string: if every character of
// `token` is in the alphabet, the bytes they stand for; otherwise the token's own UTF-8
// bytes unchanged (this is how added tokens such as "<image>" decode).
std::string ByteLevelTokenToBytes(std::string_view token);

}  // namespace smolserve::tokenizer::internal

#endif  // SMOLSERVE_COMMON_TOKENIZER_BYTE_LEVEL_H_
