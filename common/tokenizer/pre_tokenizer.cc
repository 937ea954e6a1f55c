#include "common/tokenizer/pre_tokenizer.h"

#include <cstdint>

#include "common/tokenizer/utf8.h"
#include "unicode/uchar.h"

namespace smolserve::tokenizer::internal {
namespace {

enum CharClass : uint8_t { kLetter, kNumber, kSpace, kOther };

// Marks a byte that does not start a well-formed UTF-8 character.
constexpr char32_t kInvalidByte = 0xFFFFFFFF;

struct Char {
  size_t begin;  // byte offset into the segment; a character ends where the next begins
  char32_t cp;
  CharClass cls;
};

CharClass ClassifyNonAscii(char32_t c) {
  const uint32_t mask = U_GET_GC_MASK(static_cast<UChar32>(c));
  if (mask & U_GC_L_MASK) return kLetter;
  if (mask & U_GC_N_MASK) return kNumber;
  if (c == 0x85 || (mask & (U_GC_ZS_MASK | U_GC_ZL_MASK | U_GC_ZP_MASK))) return kSpace;
  return kOther;
}

CharClass ClassifyAscii(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return kLetter;
  if (c >= '0' && c <= '9') return kNumber;
  if (c == ' ' || (c >= '\t' && c <= '\r')) return kSpace;
  return kOther;
}

void DecodeChars(std::string_view text, std::vector<Char>* chars) {
  chars->clear();
  chars->reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    const char c = text[i];
    if (static_cast<uint8_t>(c) < 0x80) {
      chars->push_back({i, static_cast<char32_t>(c), ClassifyAscii(c)});
      ++i;
      continue;
    }
    char32_t cp;
    const int len = DecodeUtf8Char(text.substr(i), &cp);
    if (len == 0) {
      chars->push_back({i, kInvalidByte, kOther});
      ++i;
    } else {
      chars->push_back({i, cp, ClassifyNonAscii(cp)});
      i += len;
    }
  }
}

class Splitter {
 public:
  Splitter(std::string_view text, const std::vector<Char>& chars,
           std::vector<std::string_view>* pieces)
      : text_(text), chars_(chars), pieces_(pieces) {}

  // Emits chars [b, e) as one piece.
  void Emit(size_t b, size_t e) {
    const size_t end = e < chars_.size() ? chars_[e].begin : text_.size();
    pieces_->push_back(text_.substr(chars_[b].begin, end - chars_[b].begin));
  }

  // The GPT-2 regex over chars [b, e) (the regex sees only this range).
  void ByteLevelSplit(size_t b, size_t e) {
    size_t i = b;
    while (i < e) {
      const Char& c = chars_[i];
      // 's|'t|'re|'ve|'m|'ll|'d (case-sensitive)
      if (c.cp == '\'' && i + 1 < e) {
        const char32_t a = chars_[i + 1].cp;
        size_t len = 0;
        if (a == 's' || a == 't' || a == 'm' || a == 'd') {
          len = 2;
        } else if (i + 2 < e) {
          const char32_t z = chars_[i + 2].cp;
          if ((a == 'r' && z == 'e') || (a == 'v' && z == 'e') || (a == 'l' && z == 'l')) len = 3;
        }
        if (len > 0) {
          Emit(i, i + len);
          i += len;
          continue;
        }
      }
      // ' ?\p{L}+', ' ?\p{N}+', ' ?[^\s\p{L}\p{N}]+': an optional U+0020 then a run of
      // one class. A space followed by white space falls through to the \s rules.
      size_t start = i;
      if (c.cp == ' ' && i + 1 < e && chars_[i + 1].cls != kSpace) start = i + 1;
      const CharClass cls = chars_[start].cls;
      if (cls != kSpace) {
        size_t j = start + 1;
        while (j < e && chars_[j].cls == cls) ++j;
        Emit(i, j);
        i = j;
        continue;
      }
      // '\s+(?!\S)': the white space run, minus its last character when a non-space
      // follows (backtracking), if that leaves at least one; otherwise '\s+'.
      size_t j = i + 1;
      while (j < e && chars_[j].cls == kSpace) ++j;
      if (j < e && j - i >= 2) --j;
      Emit(i, j);
      i = j;
    }
  }

 private:
  std::string_view text_;
  const std::vector<Char>& chars_;
  std::vector<std::string_view>* pieces_;
};

void Split(std::string_view text, const std::vector<Char>& chars,
           const PreTokenizerOptions& options, std::vector<std::string_view>* pieces) {
  Splitter splitter(text, chars, pieces);
  const size_t n = chars.size();
  if (!options.split_digits) {
    splitter.ByteLevelSplit(0, n);
    return;
  }
  size_t i = 0;
  while (i < n) {
    size_t j = i + 1;
    if (chars[i].cls == kNumber) {
      // The regex maps an isolated numeric run to itself (' ?\p{N}+').
      if (!options.individual_digits) {
        while (j < n && chars[j].cls == kNumber) ++j;
      }
      splitter.Emit(i, j);
    } else {
      while (j < n && chars[j].cls != kNumber) ++j;
      splitter.ByteLevelSplit(i, j);
    }
    i = j;
  }
}

}  // namespace

void PreTokenize(std::string_view text, const PreTokenizerOptions& options,
                 std::vector<std::string_view>* pieces) {
  if (text.empty()) return;
  // Reused between calls on the same thread; a large buffer is released after use.
  thread_local std::vector<Char> chars;
  DecodeChars(text, &chars);
  Split(text, chars, options, pieces);
  if (chars.capacity() > (size_t{1} << 16)) std::vector<Char>().swap(chars);
}

}  // namespace smolserve::tokenizer::internal
