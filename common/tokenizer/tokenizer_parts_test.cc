// Unit tests of the tokenizer's building blocks.
#include <string>
#include <string_view>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "common/tokenizer/added_tokens.h"
#include "common/tokenizer/byte_level.h"
#include "common/tokenizer/pre_tokenizer.h"
#include "common/tokenizer/utf8.h"

namespace smolserve::tokenizer::internal {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr char kFffd[] = "\xEF\xBF\xBD";

// ---------------------------------------------------------------- UTF-8

TEST(Utf8Test, DecodeCharAcceptsWellFormedOnly) {
  char32_t cp = 0;
  EXPECT_EQ(DecodeUtf8Char("a", &cp), 1);
  EXPECT_EQ(cp, U'a');
  EXPECT_EQ(DecodeUtf8Char("\xC3\xA9x", &cp), 2);
  EXPECT_EQ(cp, U'\u00E9');
  EXPECT_EQ(DecodeUtf8Char("\xE2\x82\xAC", &cp), 3);
  EXPECT_EQ(cp, U'\u20AC');
  EXPECT_EQ(DecodeUtf8Char("\xF0\x9F\x98\x80", &cp), 4);
  EXPECT_EQ(cp, U'\U0001F600');
  EXPECT_EQ(DecodeUtf8Char("", &cp), 0);
  EXPECT_EQ(DecodeUtf8Char("\x80", &cp), 0);              // lone continuation
  EXPECT_EQ(DecodeUtf8Char("\xC0\xAF", &cp), 0);          // overlong
  EXPECT_EQ(DecodeUtf8Char("\xE0\x80\xAF", &cp), 0);      // overlong
  EXPECT_EQ(DecodeUtf8Char("\xED\xA0\x80", &cp), 0);      // surrogate
  EXPECT_EQ(DecodeUtf8Char("\xF4\x90\x80\x80", &cp), 0);  // > U+10FFFF
  EXPECT_EQ(DecodeUtf8Char("\xF0\x9F\x98", &cp), 0);      // truncated
}

TEST(Utf8Test, AppendUtf8) {
  std::string s;
  AppendUtf8(U'A', &s);
  AppendUtf8(U'\u0120', &s);
  AppendUtf8(U'\u20AC', &s);
  AppendUtf8(U'\U0001F600', &s);
  EXPECT_EQ(s, "A\xC4\xA0\xE2\x82\xAC\xF0\x9F\x98\x80");
}

// Expected values follow Rust's String::from_utf8_lossy (maximal subparts).
TEST(Utf8Test, LossyMatchesRust) {
  EXPECT_EQ(Utf8Lossy(""), "");
  EXPECT_EQ(Utf8Lossy("plain"), "plain");
  EXPECT_EQ(Utf8Lossy("Hello\xF0\x90\x80World"), std::string("Hello") + kFffd + "World");
  EXPECT_EQ(Utf8Lossy("\xE0\x80"), std::string(kFffd) + kFffd);  // E0 needs A0..BF
  EXPECT_EQ(Utf8Lossy("\xED\xA0\x80"), std::string(kFffd) + kFffd + kFffd);
  EXPECT_EQ(Utf8Lossy("\xC0\x80"), std::string(kFffd) + kFffd);
  EXPECT_EQ(Utf8Lossy("\xF5\x80"), std::string(kFffd) + kFffd);
  EXPECT_EQ(Utf8Lossy("\xE2\x82"), kFffd);  // truncated at the end: one U+FFFD
  EXPECT_EQ(Utf8Lossy("a\xE2\x82" "b"), std::string("a") + kFffd + "b");
  EXPECT_EQ(Utf8Lossy("\xF0\x9F\x98\x80"), "\xF0\x9F\x98\x80");
  EXPECT_EQ(Utf8Lossy("\xFF\xFE"), std::string(kFffd) + kFffd);
  EXPECT_EQ(Utf8Lossy(std::string_view("\0x", 2)), std::string("\0x", 2));
}

TEST(Utf8Test, NonFinalHoldsBackOnlyIncompleteTail) {
  std::string out;
  EXPECT_EQ(AppendUtf8Lossy("ab\xF0\x9F", /*final=*/false, &out), 2u);
  EXPECT_EQ(out, "ab");
  out.clear();
  // An invalid byte is never held back.
  EXPECT_EQ(AppendUtf8Lossy("ab\xFF", /*final=*/false, &out), 3u);
  EXPECT_EQ(out, std::string("ab") + kFffd);
  out.clear();
  // A broken sequence followed by an incomplete one.
  EXPECT_EQ(AppendUtf8Lossy("\xE2\x28\xE2\x82", /*final=*/false, &out), 2u);
  EXPECT_EQ(out, std::string(kFffd) + "(");
}

// ---------------------------------------------------------------- byte level

TEST(ByteLevelTest, Gpt2Alphabet) {
  EXPECT_EQ(ByteToCodePoint('A'), U'A');
  EXPECT_EQ(ByteToCodePoint(' '), U'\u0120');   // Ġ
  EXPECT_EQ(ByteToCodePoint('\n'), U'\u010A');  // Ċ
  EXPECT_EQ(ByteToCodePoint(0), U'\u0100');
  EXPECT_EQ(ByteToCodePoint(0xAD), U'\u0143');  // the last one
  EXPECT_EQ(ByteToCodePoint(0xA1), U'\u00A1');
  for (int b = 0; b < 256; ++b) {
    EXPECT_EQ(CodePointToByte(ByteToCodePoint(static_cast<uint8_t>(b))), b);
  }
  EXPECT_EQ(CodePointToByte(U' '), -1);
  EXPECT_EQ(CodePointToByte(U'\u0144'), -1);
  EXPECT_EQ(BytesToByteLevel(" hi\n"), "\xC4\xA0hi\xC4\x8A");
}

TEST(ByteLevelTest, TokenToBytes) {
  EXPECT_EQ(ByteLevelTokenToBytes("\xC4\xA0world"), " world");
  EXPECT_EQ(ByteLevelTokenToBytes("<image>"), "<image>");
  // A character outside the alphabet: the token's own bytes are used unchanged.
  EXPECT_EQ(ByteLevelTokenToBytes("a b"), "a b");
  EXPECT_EQ(ByteLevelTokenToBytes("\xC3\xB0\xC5\x81\xC4\xBA\xC4\xA2"),
            "\xF0\x9F\x98\x80");  // "ðŁĺĢ" -> 😀
}

// ---------------------------------------------------------------- pre-tokenizer

std::vector<std::string> Split(std::string_view text, bool split_digits = true,
                               bool individual = true) {
  std::vector<std::string_view> views;
  PreTokenizerOptions options;
  options.split_digits = split_digits;
  options.individual_digits = individual;
  PreTokenize(text, options, &views);
  std::string joined;
  for (std::string_view v : views) {
    EXPECT_FALSE(v.empty());
    joined.append(v);
  }
  EXPECT_EQ(joined, text);
  return std::vector<std::string>(views.begin(), views.end());
}

TEST(PreTokenizerTest, Words) {
  EXPECT_THAT(Split(""), IsEmpty());
  EXPECT_THAT(Split("Hello world"), ElementsAre("Hello", " world"));
  EXPECT_THAT(Split("Hello, world!"), ElementsAre("Hello", ",", " world", "!"));
  EXPECT_THAT(Split("a.b"), ElementsAre("a", ".", "b"));
  EXPECT_THAT(Split(" ?!x"), ElementsAre(" ?!", "x"));
}

TEST(PreTokenizerTest, Contractions) {
  EXPECT_THAT(Split("I'm they'll it's we've you'd don't we're"),
              ElementsAre("I", "'m", " they", "'ll", " it", "'s", " we", "'ve", " you", "'d",
                          " don", "'t", " we", "'re"));
  EXPECT_THAT(Split("DON'T"), ElementsAre("DON", "'", "T"));  // case-sensitive
  EXPECT_THAT(Split("'x ''s"), ElementsAre("'", "x", " ''", "s"));
  EXPECT_THAT(Split("'s"), ElementsAre("'s"));
  EXPECT_THAT(Split("'"), ElementsAre("'"));
}

TEST(PreTokenizerTest, WhiteSpace) {
  EXPECT_THAT(Split("two  spaces"), ElementsAre("two", " ", " spaces"));
  EXPECT_THAT(Split("three   spaces"), ElementsAre("three", "  ", " spaces"));
  EXPECT_THAT(Split("end  "), ElementsAre("end", "  "));
  EXPECT_THAT(Split("tab\there"), ElementsAre("tab", "\t", "here"));
  EXPECT_THAT(Split("a\t\tb"), ElementsAre("a", "\t", "\t", "b"));
  EXPECT_THAT(Split("a\n\n\nb"), ElementsAre("a", "\n\n", "\n", "b"));
  EXPECT_THAT(Split("  \n  "), ElementsAre("  \n  "));
  EXPECT_THAT(Split("\n a"), ElementsAre("\n", " a"));
  // U+00A0 and U+3000 are white space (Zs); U+200B is not (Cf).
  EXPECT_THAT(Split("a\u00A0b"), ElementsAre("a", "\u00A0", "b"));
  EXPECT_THAT(Split("a\u3000 b"), ElementsAre("a", "\u3000", " b"));
  EXPECT_THAT(Split("a\u200Bb"), ElementsAre("a", "\u200B", "b"));
  // U+0085 is white space, U+001F is not.
  EXPECT_THAT(Split("a\u0085\x1F"), ElementsAre("a", "\u0085", "\x1F"));
}

TEST(PreTokenizerTest, DigitsAreIsolated) {
  EXPECT_THAT(Split("2048"), ElementsAre("2", "0", "4", "8"));
  EXPECT_THAT(Split("  12  "), ElementsAre("  ", "1", "2", "  "));
  EXPECT_THAT(Split("a 1b"), ElementsAre("a", " ", "1", "b"));
  EXPECT_THAT(Split("x=10;"), ElementsAre("x", "=", "1", "0", ";"));
  // Other numeric characters (Nd, Nl, No) too.
  EXPECT_THAT(Split("\u0661\u0662 \u00B2\u216B"),
              ElementsAre("\u0661", "\u0662", " ", "\u00B2", "\u216B"));
  // Without individual digits, runs stay together; without Digits, ' ?\p{N}+' applies.
  EXPECT_THAT(Split("a 123b", true, false), ElementsAre("a", " ", "123", "b"));
  EXPECT_THAT(Split("a 123b", false), ElementsAre("a", " 123", "b"));
}

TEST(PreTokenizerTest, UnicodeClasses) {
  EXPECT_THAT(Split("caf\u00E9 na\u00EFve"), ElementsAre("caf\u00E9", " na\u00EFve"));
  // A combining mark (Mn) is neither a letter nor a number.
  EXPECT_THAT(Split("x\u0300y"), ElementsAre("x", "\u0300", "y"));
  EXPECT_THAT(Split("emoji \U0001F600 ok"), ElementsAre("emoji", " \U0001F600", " ok"));
  EXPECT_THAT(Split("\u4E2D\u6587 \u0645"), ElementsAre("\u4E2D\u6587", " \u0645"));
}

TEST(PreTokenizerTest, InvalidUtf8IsOtherClass) {
  EXPECT_THAT(Split("a\xFF\xFE b"), ElementsAre("a", "\xFF\xFE", " b"));
  EXPECT_THAT(Split("\xE2\x82x"), ElementsAre("\xE2\x82", "x"));
  EXPECT_THAT(Split(" \x80"), ElementsAre(" \x80"));
  EXPECT_THAT(Split(std::string_view("\0\0a", 3)), ElementsAre(std::string("\0\0", 2), "a"));
}

// ---------------------------------------------------------------- added tokens

TEST(AddedTokenMatcherTest, LeftmostLongest) {
  AddedTokenMatcher m;
  EXPECT_TRUE(m.empty());
  m.Add("<image>", 1);
  m.Add("<im", 2);
  m.Add("age>", 3);
  m.Add("<image>", 9);  // duplicate content keeps the first id
  EXPECT_FALSE(m.empty());
  auto match = m.FindNext("x<image>", 0);
  ASSERT_TRUE(match.has_value());
  EXPECT_EQ(match->begin, 1u);
  EXPECT_EQ(match->length, 7u);
  EXPECT_EQ(match->id, 1);
  match = m.FindNext("<imag", 0);
  ASSERT_TRUE(match.has_value());
  EXPECT_EQ(match->id, 2);
  EXPECT_EQ(match->length, 3u);
  // Leftmost wins even if a longer match starts later.
  match = m.FindNext("<image", 0);
  ASSERT_TRUE(match.has_value());
  EXPECT_EQ(match->begin, 0u);
  EXPECT_EQ(match->id, 2);
  match = m.FindNext("<image>", 1);
  ASSERT_TRUE(match.has_value());
  EXPECT_EQ(match->begin, 3u);
  EXPECT_EQ(match->id, 3);
  EXPECT_FALSE(m.FindNext("no tokens", 0).has_value());
  EXPECT_FALSE(m.FindNext("", 0).has_value());
  EXPECT_FALSE(m.FindNext("<image>", 7).has_value());
}

}  // namespace
}  // namespace smolserve::tokenizer::internal
