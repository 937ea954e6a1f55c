#include "common/tokenizer/byte_level.h"

#include <array>

#include "common/tokenizer/utf8.h"

namespace smolserve::tokenizer::internal {
namespace {

constexpr int kMaxCodePoint = 256 + 68;  // the alphabet ends at U+0143

struct Tables {
  std::array<char32_t, 256> byte_to_cp;
  std::array<std::string, 256> byte_to_utf8;
  std::array<int16_t, kMaxCodePoint> cp_to_byte;

  Tables() {
    cp_to_byte.fill(-1);
    int next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
      const char32_t cp = printable ? static_cast<char32_t>(b) : static_cast<char32_t>(next++);
      byte_to_cp[b] = cp;
      AppendUtf8(cp, &byte_to_utf8[b]);
      cp_to_byte[cp] = static_cast<int16_t>(b);
    }
  }
};

const Tables& GetTables() {
  static const Tables* const tables = new Tables();
  return *tables;
}

}  // namespace

char32_t ByteToCodePoint(uint8_t b) { return GetTables().byte_to_cp[b]; }

const std::string& ByteToUtf8(uint8_t b) { return GetTables().byte_to_utf8[b]; }

int CodePointToByte(char32_t cp) {
  if (cp >= static_cast<char32_t>(kMaxCodePoint)) return -1;
  return GetTables().cp_to_byte[cp];
}

std::string BytesToByteLevel(std::string_view bytes) {
  const Tables& t = GetTables();
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) out += t.byte_to_utf8[static_cast<uint8_t>(c)];
  return out;
}

std::string ByteLevelTokenToBytes(std::string_view token) {
  std::string out;
  out.reserve(token.size());
  size_t i = 0;
  while (i < token.size()) {
    char32_t cp;
    const int len = DecodeUtf8Char(token.substr(i), &cp);
    const int b = len > 0 ? CodePointToByte(cp) : -1;
    if (b < 0) return std::string(token);
    out.push_back(static_cast<char>(b));
    i += len;
  }
  return out;
}

}  // namespace smolserve::tokenizer::internal
