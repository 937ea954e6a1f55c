#include "common/tokenizer/utf8.h"

#include <cstdint>

namespace smolserve::tokenizer::internal {
namespace {

constexpr char kReplacement[] = "\xEF\xBF\xBD";  // U+FFFD

// Describes the sequence introduced by lead byte `b`: number of continuation bytes and
// the allowed range of the first continuation byte. Returns false for bytes that can
// never start a sequence (continuation bytes, C0, C1, F5..FF).
bool LeadInfo(uint8_t b, int* need, uint8_t* lo, uint8_t* hi) {
  *lo = 0x80;
  *hi = 0xBF;
  if (b >= 0xC2 && b <= 0xDF) {
    *need = 1;
  } else if (b == 0xE0) {
    *need = 2;
    *lo = 0xA0;
  } else if ((b >= 0xE1 && b <= 0xEC) || b == 0xEE || b == 0xEF) {
    *need = 2;
  } else if (b == 0xED) {
    *need = 2;
    *hi = 0x9F;  // no surrogates
  } else if (b == 0xF0) {
    *need = 3;
    *lo = 0x90;
  } else if (b >= 0xF1 && b <= 0xF3) {
    *need = 3;
  } else if (b == 0xF4) {
    *need = 3;
    *hi = 0x8F;  // nothing above U+10FFFF
  } else {
    return false;
  }
  return true;
}

// Scans the sequence at s[i] (s[i] >= 0x80). Returns the number of bytes that form the
// longest valid prefix of a sequence starting there; *complete says whether that prefix
// is a whole character, *truncated whether it stopped only because the input ended.
size_t ScanSequence(std::string_view s, size_t i, bool* complete, bool* truncated) {
  *complete = false;
  *truncated = false;
  int need;
  uint8_t lo, hi;
  if (!LeadInfo(static_cast<uint8_t>(s[i]), &need, &lo, &hi)) return 1;
  size_t j = i + 1;
  for (int got = 0; got < need; ++got, ++j) {
    if (j >= s.size()) {
      *truncated = true;
      return j - i;
    }
    const uint8_t c = static_cast<uint8_t>(s[j]);
    const uint8_t l = got == 0 ? lo : 0x80;
    const uint8_t h = got == 0 ? hi : 0xBF;
    if (c < l || c > h) return j - i;
  }
  *complete = true;
  return j - i;
}

}  // namespace

int DecodeUtf8Char(std::string_view s, char32_t* cp) {
  if (s.empty()) return 0;
  const uint8_t b = static_cast<uint8_t>(s[0]);
  if (b < 0x80) {
    *cp = b;
    return 1;
  }
  bool complete, truncated;
  const size_t n = ScanSequence(s, 0, &complete, &truncated);
  if (!complete) return 0;
  char32_t v = b & (n == 2 ? 0x1F : n == 3 ? 0x0F : 0x07);
  for (size_t k = 1; k < n; ++k) v = (v << 6) | (static_cast<uint8_t>(s[k]) & 0x3F);
  *cp = v;
  return static_cast<int>(n);
}

bool IsValidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    if (static_cast<uint8_t>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    bool complete, truncated;
    const size_t len = ScanSequence(s, i, &complete, &truncated);
    if (!complete) return false;
    i += len;
  }
  return true;
}

void AppendUtf8(char32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

size_t AppendUtf8Lossy(std::string_view bytes, bool final, std::string* out) {
  size_t i = 0;
  const size_t n = bytes.size();
  while (i < n) {
    // Copy runs of ASCII at once.
    size_t j = i;
    while (j < n && static_cast<uint8_t>(bytes[j]) < 0x80) ++j;
    if (j > i) {
      out->append(bytes.data() + i, j - i);
      i = j;
      continue;
    }
    bool complete, truncated;
    const size_t len = ScanSequence(bytes, i, &complete, &truncated);
    if (complete) {
      out->append(bytes.data() + i, len);
    } else if (truncated && !final) {
      return i;  // may still become a valid character
    } else {
      out->append(kReplacement);
    }
    i += len;
  }
  return n;
}

std::string Utf8Lossy(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  AppendUtf8Lossy(bytes, /*final=*/true, &out);
  return out;
}

}  // namespace smolserve::tokenizer::internal
