// Exact agreement with Hugging Face tokenizers-rs: tests/golden/tokenizer_golden.json
// (200 strings) and the prompts of tests/golden/cases/*/case.json.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "common/tokenizer/tokenizer.h"
#include <nlohmann/json.hpp>

namespace smolserve::tokenizer {
namespace {

using Json = nlohmann::json;

constexpr char kTokenizerJson[] = "models/SmolVLM-256M-Instruct/tokenizer.json";
constexpr char kGoldenJson[] = "tests/golden/tokenizer_golden.json";
constexpr char kCasesDir[] = "tests/golden/cases";
constexpr int32_t kPadId = 2;  // <|im_end|>

Json ReadJson(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << path;
  std::stringstream buf;
  buf << in.rdbuf();
  return Json::parse(buf.str());
}

std::string StreamDecode(const Tokenizer& tok, const std::vector<int32_t>& ids, bool skip) {
  IncrementalDecoder dec(tok, skip);
  std::string out;
  for (int32_t id : ids) out += dec.Add(id);
  out += dec.Flush();
  return out;
}

class GoldenTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto tok = Tokenizer::FromFile(kTokenizerJson);
    ASSERT_TRUE(tok.ok()) << tok.status();
    tok_ = tok->release();
  }
  static void TearDownTestSuite() {
    delete tok_;
    tok_ = nullptr;
  }
  static const Tokenizer* tok_;
};
const Tokenizer* GoldenTest::tok_ = nullptr;

TEST_F(GoldenTest, TokenizerGoldenEntries) {
  const Json golden = ReadJson(kGoldenJson);
  const Json& entries = golden.at("entries");
  ASSERT_EQ(entries.size(), 200u);
  int ids_ok = 0, tokens_ok = 0, decode_ok = 0, skip_ok = 0, stream_ok = 0, round_trip_ok = 0;
  for (size_t i = 0; i < entries.size(); ++i) {
    const Json& e = entries[i];
    const std::string text = e.at("text").get<std::string>();
    const auto expected = e.at("ids").get<std::vector<int32_t>>();
    const auto tokens = e.at("tokens").get<std::vector<std::string>>();
    const std::string decode = e.at("decode").get<std::string>();
    const std::string decode_skip = e.at("decode_skip_special").get<std::string>();
    SCOPED_TRACE(::testing::Message() << "entry " << i << ": " << text);

    const std::vector<int32_t> ids = tok_->Encode(text);
    EXPECT_EQ(ids, expected);
    ids_ok += ids == expected;
    std::vector<std::string> got_tokens;
    for (int32_t id : expected) got_tokens.push_back(tok_->IdToToken(id));
    EXPECT_EQ(got_tokens, tokens);
    tokens_ok += got_tokens == tokens;

    EXPECT_EQ(tok_->Decode(expected, false), decode);
    EXPECT_EQ(tok_->Decode(expected, true), decode_skip);
    decode_ok += tok_->Decode(expected, false) == decode;
    skip_ok += tok_->Decode(expected, true) == decode_skip;

    const bool stream = StreamDecode(*tok_, expected, false) == decode &&
                        StreamDecode(*tok_, expected, true) == decode_skip;
    EXPECT_TRUE(stream);
    stream_ok += stream;

    EXPECT_EQ(tok_->Decode(ids, false), text);
    round_trip_ok += tok_->Decode(ids, false) == text;
  }
  std::printf(
      "golden entries: %zu; ids %d, tokens %d, decode %d, decode_skip_special %d, "
      "incremental %d, round trip %d\n",
      entries.size(), ids_ok, tokens_ok, decode_ok, skip_ok, stream_ok, round_trip_ok);
}

std::vector<std::string> CaseDirs() {
  std::vector<std::string> dirs;
  for (const auto& entry : std::filesystem::directory_iterator(kCasesDir)) {
    if (std::filesystem::exists(entry.path() / "case.json")) dirs.push_back(entry.path().string());
  }
  std::sort(dirs.begin(), dirs.end());
  return dirs;
}

TEST_F(GoldenTest, CasePrompts) {
  int rows = 0, cases_with_prompts = 0, generated = 0;
  for (const std::string& dir : CaseDirs()) {
    SCOPED_TRACE(dir);
    const Json c = ReadJson(dir + "/case.json");
    if (c.contains("prompt_expanded") && c.contains("input_ids") && !c["input_ids"].is_null()) {
      ++cases_with_prompts;
      const auto prompts = c.at("prompt_expanded").get<std::vector<std::string>>();
      const auto input_ids = c.at("input_ids").get<std::vector<std::vector<int32_t>>>();
      const auto mask = c.at("attention_mask").get<std::vector<std::vector<int32_t>>>();
      ASSERT_EQ(prompts.size(), input_ids.size());
      ASSERT_EQ(mask.size(), input_ids.size());
      for (size_t b = 0; b < prompts.size(); ++b) {
        SCOPED_TRACE(::testing::Message() << "row " << b);
        ASSERT_EQ(mask[b].size(), input_ids[b].size());
        std::vector<int32_t> expected;
        for (size_t k = 0; k < input_ids[b].size(); ++k) {
          if (mask[b][k] != 0) {
            expected.push_back(input_ids[b][k]);
          } else {
            EXPECT_EQ(input_ids[b][k], kPadId);
          }
        }
        EXPECT_EQ(tok_->Encode(prompts[b]), expected);
        EXPECT_EQ(tok_->Decode(expected, false), prompts[b]);
        ++rows;
      }
    }
    // Greedy outputs of the random tiny model: arbitrary ids, some giving U+FFFD.
    if (c.contains("generated_ids") && !c["generated_ids"].is_null()) {
      const auto gen = c.at("generated_ids").get<std::vector<std::vector<int32_t>>>();
      const auto text = c.at("generated_text").get<std::vector<std::string>>();
      const auto text_skip = c.at("generated_text_skip_special").get<std::vector<std::string>>();
      ASSERT_EQ(gen.size(), text.size());
      ASSERT_EQ(gen.size(), text_skip.size());
      for (size_t b = 0; b < gen.size(); ++b) {
        EXPECT_EQ(tok_->Decode(gen[b], false), text[b]);
        EXPECT_EQ(tok_->Decode(gen[b], true), text_skip[b]);
        EXPECT_EQ(StreamDecode(*tok_, gen[b], false), text[b]);
        EXPECT_EQ(StreamDecode(*tok_, gen[b], true), text_skip[b]);
        ++generated;
      }
    }
  }
  std::printf("cases with prompts: %d, prompt rows: %d, generated rows: %d\n",
              cases_with_prompts, rows, generated);
  EXPECT_EQ(cases_with_prompts, 12);
  EXPECT_EQ(rows, 14);
  EXPECT_EQ(generated, 14);
}

// Encode speed of the single_image prompt (1141 tokens, most of them added tokens).
TEST(GoldenTimingTest, SingleImagePrompt) {
  const Json c = ReadJson(std::string(kCasesDir) + "/single_image/case.json");
  const std::string prompt = c.at("prompt_expanded")[0].get<std::string>();
  auto tok = Tokenizer::FromFile(kTokenizerJson);
  ASSERT_TRUE(tok.ok()) << tok.status();
  using Clock = std::chrono::steady_clock;
  auto time_us = [&] {
    const auto t0 = Clock::now();
    const std::vector<int32_t> ids = (*tok)->Encode(prompt);
    const auto t1 = Clock::now();
    EXPECT_EQ(ids.size(), 1141u);
    return std::chrono::duration<double, std::micro>(t1 - t0).count();
  };
  const double cold = time_us();  // empty BPE cache
  std::vector<double> warm;
  for (int i = 0; i < 21; ++i) warm.push_back(time_us());
  std::sort(warm.begin(), warm.end());
  const double median = warm[warm.size() / 2];
  std::printf("single_image prompt (%zu bytes): first encode %.1f us, median of 21 %.1f us\n",
              prompt.size(), cold, median);
  EXPECT_LT(median, 10000.0);
}

}  // namespace
}  // namespace smolserve::tokenizer
