// Loading, validation and edge cases of Tokenizer / IncrementalDecoder.
#include "common/tokenizer/tokenizer.h"

#include <cstdint>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "common/tokenizer/utf8.h"
#include <nlohmann/json.hpp>

namespace smolserve::tokenizer {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using Json = nlohmann::json;

constexpr char kModelDir[] = "models/SmolVLM-256M-Instruct";
constexpr char kFffd[] = "\xEF\xBF\xBD";

// GPT-2 byte -> code point (independent of the library's table).
std::string ByteChar(int b) {
  static const std::vector<int>* const table = [] {
    auto* t = new std::vector<int>(256, -1);
    int next = 256;
    for (int i = 0; i < 256; ++i) {
      const bool printable = (i >= 33 && i <= 126) || (i >= 161 && i <= 172) || i >= 174;
      (*t)[i] = printable ? i : next++;
    }
    return t;
  }();
  std::string s;
  internal::AppendUtf8(static_cast<char32_t>((*table)[b]), &s);
  return s;
}

// A small valid tokenizer.json: the 256 byte characters (id = byte), then
// "he"=256 "ll"=257 "hell"=258 "hello"=259 "Ġh"=260, added "<s>"=300 (special) and
// "<x>"=301 (not special).
Json SmallTokenizer() {
  Json vocab = Json::object();
  for (int b = 0; b < 256; ++b) vocab[ByteChar(b)] = b;
  vocab["he"] = 256;
  vocab["ll"] = 257;
  vocab["hell"] = 258;
  vocab["hello"] = 259;
  vocab[ByteChar(' ') + "h"] = 260;
  Json merges = Json::array({"h e", "l l", "he ll", "hell o", ByteChar(' ') + " h"});
  Json root = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"normalizer", nullptr},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         Json::array({{{"type", "Digits"}, {"individual_digits", true}},
                      {{"type", "ByteLevel"},
                       {"add_prefix_space", false},
                       {"trim_offsets", true},
                       {"use_regex", true}}})}}},
      {"post_processor", nullptr},
      {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", true}}},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", nullptr},
        {"continuing_subword_prefix", nullptr},
        {"end_of_word_suffix", nullptr},
        {"fuse_unk", false},
        {"byte_fallback", false},
        {"ignore_merges", false},
        {"vocab", vocab},
        {"merges", merges}}},
      {"added_tokens",
       Json::array({{{"id", 300}, {"content", "<s>"}, {"special", true}},
                    {{"id", 301}, {"content", "<x>"}, {"special", false}}})},
  };
  return root;
}

std::unique_ptr<Tokenizer> Load(const Json& j) {
  auto tok = Tokenizer::FromJson(j.dump());
  EXPECT_TRUE(tok.ok()) << tok.status();
  return tok.ok() ? *std::move(tok) : nullptr;
}

absl::StatusCode LoadCode(const Json& j) { return Tokenizer::FromJson(j.dump()).status().code(); }

TEST(SmallTokenizerTest, EncodeDecode) {
  auto tok = Load(SmallTokenizer());
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->vocab_size(), 302);
  EXPECT_THAT(tok->Encode("hello"), ElementsAre(259));
  EXPECT_THAT(tok->Encode("hell"), ElementsAre(258));
  EXPECT_THAT(tok->Encode("helo"), ElementsAre(256, 'l', 'o'));
  // "h e" outranks "Ġ h".
  EXPECT_THAT(tok->Encode(" hello"), ElementsAre(' ', 259));
  EXPECT_THAT(tok->Encode(" h"), ElementsAre(260));
  EXPECT_THAT(tok->Encode("hello<s>h<x>"), ElementsAre(259, 300, 'h', 301));
  EXPECT_THAT(tok->Encode("12"), ElementsAre('1', '2'));
  const std::vector<int32_t> ids = {259, 300, 'h', 301, 999, -3};
  EXPECT_EQ(tok->Decode(ids, false), "hello<s>h<x>");
  EXPECT_EQ(tok->Decode(ids, true), "helloh<x>");
  EXPECT_TRUE(tok->IsSpecial(300));
  EXPECT_FALSE(tok->IsSpecial(301));
  EXPECT_FALSE(tok->IsSpecial(259));
  EXPECT_FALSE(tok->IsKnownId(299));  // a hole between vocab and added ids
  EXPECT_EQ(tok->IdToToken(299), "");
  EXPECT_EQ(tok->IdToToken(32), ByteChar(' '));
  EXPECT_EQ(tok->TokenToId("<x>"), 301);
  EXPECT_EQ(tok->TokenToId("hello"), 259);
  EXPECT_EQ(tok->TokenToId("nothing"), std::nullopt);
}

TEST(SmallTokenizerTest, MergesAsPairsAndIgnoreMerges) {
  Json j = SmallTokenizer();
  Json pairs = Json::array();
  for (const Json& m : j["model"]["merges"]) {
    const std::string s = m.get<std::string>();
    const size_t sp = s.find(' ');
    pairs.push_back(Json::array({s.substr(0, sp), s.substr(sp + 1)}));
  }
  j["model"]["merges"] = pairs;
  auto tok = Load(j);
  ASSERT_NE(tok, nullptr);
  EXPECT_THAT(tok->Encode("hello"), ElementsAre(259));

  // "hlo" is not reachable by merges; with ignore_merges a whole-word vocab hit wins.
  j["model"]["vocab"]["hlo"] = 261;
  auto plain = Load(j);
  ASSERT_NE(plain, nullptr);
  EXPECT_THAT(plain->Encode("hlo"), ElementsAre('h', 'l', 'o'));
  j["model"]["ignore_merges"] = true;
  auto ignoring = Load(j);
  ASSERT_NE(ignoring, nullptr);
  EXPECT_THAT(ignoring->Encode("hlo"), ElementsAre(261));
}

TEST(SmallTokenizerTest, LoneByteLevelPreTokenizer) {
  Json j = SmallTokenizer();
  j["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}};
  auto tok = Load(j);
  ASSERT_NE(tok, nullptr);
  // Without Digits, " 12" is one piece (no merges for it, so three byte tokens).
  EXPECT_THAT(tok->Encode("h 12"), ElementsAre('h', ' ', '1', '2'));
  EXPECT_THAT(tok->Encode(" 12"), ElementsAre(' ', '1', '2'));
}

// Bytes whose character is missing from the vocab: dropped, or byte fallback / unk.
TEST(SmallTokenizerTest, BytesMissingFromVocab) {
  Json j = SmallTokenizer();
  j["model"]["vocab"].erase(ByteChar(4));
  auto dropping = Load(j);
  ASSERT_NE(dropping, nullptr);
  EXPECT_THAT(dropping->Encode("a\x04h"), ElementsAre('a', 'h'));
  EXPECT_THAT(dropping->Encode("\x04"), IsEmpty());
  EXPECT_THAT(dropping->Encode("!\x04\x04!"), ElementsAre('!', '!'));
  EXPECT_FALSE(dropping->IsKnownId(4));
  EXPECT_EQ(dropping->Decode({'a', 4, 'h'}, false), "ah");

  j["model"]["vocab"]["<unk>"] = 262;
  j["model"]["unk_token"] = "<unk>";
  auto unk = Load(j);
  ASSERT_NE(unk, nullptr);
  EXPECT_THAT(unk->Encode("!\x04\x04!"), ElementsAre('!', 262, 262, '!'));
  j["model"]["fuse_unk"] = true;
  auto fused = Load(j);
  ASSERT_NE(fused, nullptr);
  EXPECT_THAT(fused->Encode("!\x04\x04!"), ElementsAre('!', 262, '!'));
  EXPECT_THAT(fused->Encode("\x04"), ElementsAre(262));

  j["model"]["vocab"]["<0x04>"] = 263;
  j["model"]["byte_fallback"] = true;
  auto fallback = Load(j);
  ASSERT_NE(fallback, nullptr);
  EXPECT_THAT(fallback->Encode("!\x04\x04!"), ElementsAre('!', 263, 263, '!'));

  j["model"]["unk_token"] = "<missing>";
  EXPECT_EQ(LoadCode(j), absl::StatusCode::kInvalidArgument);
}

TEST(MalformedJsonTest, InvalidArgument) {
  for (const char* text : {"", "{", "[]", "null", "42", "{}", "{\"model\": 3}",
                           "{\"model\": {\"type\": \"BPE\", \"merges\": []}}",
                           "{\"model\": {\"type\": \"BPE\", \"vocab\": {}}}"}) {
    auto tok = Tokenizer::FromJson(text);
    EXPECT_EQ(tok.status().code(), absl::StatusCode::kInvalidArgument) << text;
  }
  EXPECT_THAT(std::string(Tokenizer::FromJson("{").status().message()), HasSubstr("JSON"));
  EXPECT_THAT(std::string(Tokenizer::FromJson("{}").status().message()), HasSubstr("model"));

  Json j = SmallTokenizer();
  j["model"]["vocab"]["bad"] = "x";
  EXPECT_EQ(LoadCode(j), absl::StatusCode::kInvalidArgument);
  j = SmallTokenizer();
  j["model"]["vocab"]["bad"] = -1;
  EXPECT_EQ(LoadCode(j), absl::StatusCode::kInvalidArgument);
  j = SmallTokenizer();
  j["model"]["vocab"]["huge"] = int64_t{1} << 40;
  EXPECT_EQ(LoadCode(j), absl::StatusCode::kInvalidArgument);
  j = SmallTokenizer();
  j["model"]["vocab"]["dup"] = 5;  // id 5 is already a byte character
  EXPECT_EQ(LoadCode(j), absl::StatusCode::kInvalidArgument);
  j = SmallTokenizer();
  j["model"]["merges"].push_back("q zz");  // "zz" is not in the vocab
  EXPECT_EQ(LoadCode(j), absl::StatusCode::kInvalidArgument);
  j = SmallTokenizer();
  j["model"]["merges"].push_back("a b c");
  EXPECT_EQ(LoadCode(j), absl::StatusCode::kInvalidArgument);
  j = SmallTokenizer();
  j["model"]["merges"].push_back(7);
  EXPECT_EQ(LoadCode(j), absl::StatusCode::kInvalidArgument);
  j = SmallTokenizer();
  j["added_tokens"].push_back({{"id", "x"}, {"content", "<y>"}});
  EXPECT_EQ(LoadCode(j), absl::StatusCode::kInvalidArgument);
  j = SmallTokenizer();
  j["added_tokens"].push_back({{"id", 302}, {"content", ""}});
  EXPECT_EQ(LoadCode(j), absl::StatusCode::kInvalidArgument);
  j = SmallTokenizer();
  j["added_tokens"] = "nope";
  EXPECT_EQ(LoadCode(j), absl::StatusCode::kInvalidArgument);
}

TEST(MalformedJsonTest, Unsupported) {
  auto expect_unsupported = [](const Json& j, const char* what) {
    auto tok = Tokenizer::FromJson(j.dump());
    EXPECT_EQ(tok.status().code(), absl::StatusCode::kFailedPrecondition) << what;
    EXPECT_THAT(std::string(tok.status().message()), HasSubstr(what));
  };
  Json j = SmallTokenizer();
  j["model"]["type"] = "WordPiece";
  expect_unsupported(j, "WordPiece");
  j = SmallTokenizer();
  j["normalizer"] = {{"type", "NFC"}};
  expect_unsupported(j, "normalizer");
  j = SmallTokenizer();
  j["pre_tokenizer"] = {{"type", "Whitespace"}};
  expect_unsupported(j, "Whitespace");
  j = SmallTokenizer();
  j["pre_tokenizer"] = nullptr;
  expect_unsupported(j, "pre_tokenizer");
  j = SmallTokenizer();
  j["pre_tokenizer"]["pretokenizers"][1]["add_prefix_space"] = true;
  expect_unsupported(j, "add_prefix_space");
  j = SmallTokenizer();
  j["post_processor"] = {{"type", "TemplateProcessing"}};
  expect_unsupported(j, "TemplateProcessing");
  j = SmallTokenizer();
  j["decoder"] = {{"type", "WordPiece"}};
  expect_unsupported(j, "decoder");
  j = SmallTokenizer();
  j["truncation"] = {{"max_length", 8}};
  expect_unsupported(j, "truncation");
  j = SmallTokenizer();
  j["model"]["dropout"] = 0.1;
  expect_unsupported(j, "dropout");
  j = SmallTokenizer();
  j["model"]["continuing_subword_prefix"] = "##";
  expect_unsupported(j, "continuing_subword_prefix");
  j = SmallTokenizer();
  j["added_tokens"][0]["lstrip"] = true;
  expect_unsupported(j, "lstrip");

  // Accepted variants: ByteLevel post-processor, dropout 0.
  j = SmallTokenizer();
  j["post_processor"] = {{"type", "ByteLevel"}, {"trim_offsets", true}};
  j["model"]["dropout"] = 0.0;
  EXPECT_NE(Load(j), nullptr);
}

TEST(MalformedJsonTest, Files) {
  EXPECT_EQ(Tokenizer::FromFile("/nonexistent/tokenizer.json").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(Tokenizer::FromModelDir("/nonexistent").status().code(), absl::StatusCode::kNotFound);
  // A file that is not a tokenizer.json: the error names the file.
  auto tok = Tokenizer::FromFile(std::string(kModelDir) + "/config.json");
  EXPECT_FALSE(tok.ok());
  EXPECT_THAT(std::string(tok.status().message()), HasSubstr("config.json"));
}

class SmolVlmTokenizerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto tok = Tokenizer::FromModelDir(kModelDir);
    ASSERT_TRUE(tok.ok()) << tok.status();
    tok_ = tok->release();
  }
  static void TearDownTestSuite() {
    delete tok_;
    tok_ = nullptr;
  }
  static const Tokenizer* tok_;
};
const Tokenizer* SmolVlmTokenizerTest::tok_ = nullptr;

TEST_F(SmolVlmTokenizerTest, Vocabulary) {
  EXPECT_EQ(tok_->vocab_size(), 49280);
  EXPECT_EQ(tok_->TokenToId("<image>"), 49190);
  EXPECT_EQ(tok_->TokenToId("<|im_start|>"), 1);
  EXPECT_EQ(tok_->TokenToId("\xC4\xA0world"), 905);  // "Ġworld"
  EXPECT_EQ(tok_->TokenToId("no such token"), std::nullopt);
  EXPECT_EQ(tok_->IdToToken(905), "\xC4\xA0world");
  EXPECT_EQ(tok_->IdToToken(49190), "<image>");
  EXPECT_EQ(tok_->IdToToken(-1), "");
  EXPECT_EQ(tok_->IdToToken(49280), "");
  EXPECT_TRUE(tok_->IsSpecial(0));
  EXPECT_TRUE(tok_->IsSpecial(16));
  EXPECT_TRUE(tok_->IsSpecial(49279));
  EXPECT_FALSE(tok_->IsSpecial(17));
  EXPECT_FALSE(tok_->IsSpecial(905));
  EXPECT_FALSE(tok_->IsSpecial(-1));
  for (int32_t id = 0; id < tok_->vocab_size(); ++id) ASSERT_TRUE(tok_->IsKnownId(id)) << id;
}

TEST_F(SmolVlmTokenizerTest, EmptyAndOnlySpecial) {
  EXPECT_THAT(tok_->Encode(""), IsEmpty());
  EXPECT_EQ(tok_->Decode({}, false), "");
  EXPECT_THAT(tok_->Encode("<image><image><|im_start|><end_of_utterance>"),
              ElementsAre(49190, 49190, 1, 49279));
  const std::vector<int32_t> ids = {49190, 1, 49279};
  EXPECT_EQ(tok_->Decode(ids, false), "<image><|im_start|><end_of_utterance>");
  EXPECT_EQ(tok_->Decode(ids, true), "");
}

TEST_F(SmolVlmTokenizerTest, OutOfRangeIdsAreSkipped) {
  const std::vector<int32_t> ids = {-1, 19556, 49280, 1 << 30, 905, INT32_MIN, INT32_MAX};
  EXPECT_EQ(tok_->Decode(ids, false), "Hello world");
  IncrementalDecoder dec(*tok_, false);
  std::string streamed;
  for (int32_t id : ids) streamed += dec.Add(id);
  streamed += dec.Flush();
  EXPECT_EQ(streamed, "Hello world");
}

TEST_F(SmolVlmTokenizerTest, InvalidUtf8Input) {
  const std::string inputs[] = {
      "\xFF",
      "abc\xFF\xFE def",
      "\xC3",
      "caf\xC3 \xE2\x82",
      "\xED\xA0\x80 surrogate",
      "<image\xFF>",
      std::string("nul\0inside", 10),
      "\xF0\x9F\x98\x80\xF0\x9F\x98",
  };
  // Encoded as from_utf8_lossy(input), the string tokenizers-rs would be given.
  for (const std::string& in : inputs) {
    const std::string lossy = internal::Utf8Lossy(in);
    const std::vector<int32_t> ids = tok_->Encode(in);
    EXPECT_EQ(ids, tok_->Encode(lossy));
    EXPECT_FALSE(ids.empty());
    for (int32_t id : ids) EXPECT_TRUE(tok_->IsKnownId(id));
    EXPECT_EQ(tok_->Decode(ids, false), lossy);
  }
  EXPECT_THAT(tok_->Encode("a\xFF"), ElementsAre(81, 24211));  // "a", "ï¿½" (U+FFFD)
  EXPECT_EQ(tok_->Decode(tok_->Encode("a\xFF"), false), std::string("a") + kFffd);
}

// The vocab has no character for these bytes; tokenizers-rs drops them (no unk token).
TEST_F(SmolVlmTokenizerTest, BytesMissingFromVocabAreDropped) {
  EXPECT_THAT(tok_->Encode("\x04"), IsEmpty());
  EXPECT_THAT(tok_->Encode("a\x04\x06\x13\x14\x16\x1D" "b"), ElementsAre(81, 82));
  EXPECT_THAT(tok_->Encode("\x07"), ElementsAre(195));  // BEL is in the vocab
  // U+40000 (F1 80 80 80): the lead byte is dropped, the continuation bytes remain.
  const std::vector<int32_t> ids = tok_->Encode("\xF1\x80\x80\x80");
  EXPECT_EQ(tok_->Decode(ids, false), std::string(kFffd) + kFffd + kFffd);
}

TEST_F(SmolVlmTokenizerTest, StreamingHoldsBackPartialCharacters) {
  const std::vector<int32_t> ids = tok_->Encode("\xF0\x9F\x98\x80");  // 😀
  ASSERT_EQ(ids.size(), 3u);
  IncrementalDecoder dec(*tok_, true);
  EXPECT_EQ(dec.Add(ids[0]), "");
  EXPECT_TRUE(dec.has_pending());
  EXPECT_EQ(dec.Add(ids[1]), "");
  EXPECT_EQ(dec.Add(ids[2]), "\xF0\x9F\x98\x80");
  EXPECT_FALSE(dec.has_pending());
  EXPECT_EQ(dec.Flush(), "");
  // An unfinished character is flushed as U+FFFD, like Decode.
  EXPECT_EQ(dec.Add(ids[0]), "");
  EXPECT_EQ(dec.Flush(), kFffd);
  EXPECT_EQ(tok_->Decode({ids[0]}, false), kFffd);
  // After Flush the decoder starts afresh.
  EXPECT_EQ(dec.Add(19556), "Hello");
}

// Random byte strings (mostly invalid UTF-8) and random id sequences: encoding never
// fails, Decode(Encode(x)) == from_utf8_lossy(x), and streaming equals Decode.
TEST_F(SmolVlmTokenizerTest, RandomInputs) {
  std::vector<bool> representable(256);
  int missing = 0;
  for (int b = 0; b < 256; ++b) {
    representable[b] = tok_->TokenToId(ByteChar(b)).has_value();
    missing += !representable[b];
  }
  EXPECT_EQ(missing, 21);
  std::mt19937 rng(12345);
  const char alphabet[] = {'a', 'Z', ' ', '\n', '\t', '1', '\'', 's', '<', '>', '.',
                           '\xC3', '\xA9', '\xE2', '\x82', '\xAC', '\xF0', '\x9F', '\x98', '\x80',
                           '\xFF', '\0'};
  for (int iter = 0; iter < 2000; ++iter) {
    std::string s;
    const int len = static_cast<int>(rng() % 40);
    for (int i = 0; i < len; ++i) {
      if (rng() % 8 == 0) {
        s += "<image>";
      } else if (rng() % 2 == 0) {
        s.push_back(alphabet[rng() % sizeof(alphabet)]);
      } else {
        s.push_back(static_cast<char>(rng() % 256));
      }
    }
    // Expected: from_utf8_lossy(s) without the bytes the vocab cannot represent.
    std::string kept;
    for (char c : internal::Utf8Lossy(s)) {
      if (representable[static_cast<uint8_t>(c)]) kept.push_back(c);
    }
    const std::vector<int32_t> ids = tok_->Encode(s);
    ASSERT_EQ(tok_->Decode(ids, false), internal::Utf8Lossy(kept)) << iter;
  }
  for (int iter = 0; iter < 500; ++iter) {
    std::vector<int32_t> ids(rng() % 30);
    for (int32_t& id : ids) id = static_cast<int32_t>(rng() % 49300) - 10;
    for (bool skip : {false, true}) {
      IncrementalDecoder dec(*tok_, skip);
      std::string streamed;
      for (int32_t id : ids) streamed += dec.Add(id);
      streamed += dec.Flush();
      ASSERT_EQ(streamed, tok_->Decode(ids, skip)) << iter;
    }
  }
}

// Several threads encoding with one tokenizer, with more distinct words than the BPE
// cache holds (so it is emptied while in use).
TEST_F(SmolVlmTokenizerTest, ConcurrentEncodeAndCacheEviction) {
  std::vector<std::string> texts;
  for (int i = 0; i < 12000; ++i) {
    std::string word = " ";
    for (int v = i; v > 0 || word.size() == 1; v /= 26) word.push_back(static_cast<char>('a' + v % 26));
    texts.push_back(word + (i % 7 == 0 ? "<image>" : "") + (i % 5 == 0 ? " 12" : ""));
  }
  std::vector<std::vector<int32_t>> expected;
  for (const std::string& t : texts) expected.push_back(tok_->Encode(t));
  auto fresh = Tokenizer::FromModelDir(kModelDir);
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  const Tokenizer& tok = **fresh;
  std::vector<int> mismatches(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (size_t k = 0; k < texts.size(); ++k) {
        const size_t i = (k * (2 * t + 1) + 977 * t) % texts.size();
        if (tok.Encode(texts[i]) != expected[i]) ++mismatches[t];
      }
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_THAT(mismatches, ElementsAre(0, 0, 0, 0));
}

TEST_F(SmolVlmTokenizerTest, LongInputs) {
  const std::string letters(200000, 'a');
  std::vector<int32_t> ids = tok_->Encode(letters);
  EXPECT_FALSE(ids.empty());
  EXPECT_EQ(tok_->Decode(ids, false), letters);
  const std::string spaces(100000, ' ');
  ids = tok_->Encode(spaces + "x");
  EXPECT_EQ(tok_->Decode(ids, false), spaces + "x");
  std::string images;
  for (int i = 0; i < 5000; ++i) images += "<image>";
  EXPECT_EQ(tok_->Encode(images), std::vector<int32_t>(5000, 49190));
}

}  // namespace
}  // namespace smolserve::tokenizer
