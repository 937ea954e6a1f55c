// Generation behaviour on the tiny fixture model: stop conditions, cancellation, streaming,
// sampling reproducibility, batching, request validation. Greedy references are the
// fixtures' `generated_ids` (transformers, EOS ignored).
#include "services/decoder/core/generator.h"

#include <algorithm>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "common/model/config.h"
#include "common/model/weights.h"
#include "services/decoder/core/golden_case.h"
#include "services/decoder/core/text_model.h"

namespace smolserve::decoder {
namespace {

using ::testing::ElementsAreArray;
using testing::GoldenCase;
using testing::LoadGoldenCase;

class GeneratorTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto config = model::LoadModelConfig(testing::kTinyModelDir);
    ASSERT_TRUE(config.ok()) << config.status();
    auto store = model::WeightStore::Open(testing::kTinyModelDir);
    ASSERT_TRUE(store.ok()) << store.status();
    auto m = TextModel::Create(*config, **store, {});
    ASSERT_TRUE(m.ok()) << m.status();
    model_ = m->release();
    auto t = LoadGoldenCase("text_only");
    ASSERT_TRUE(t.ok()) << t.status();
    text_only_ = new GoldenCase(std::move(*t));
    auto b = LoadGoldenCase("batch_mixed");
    ASSERT_TRUE(b.ok()) << b.status();
    batch_mixed_ = new GoldenCase(std::move(*b));
  }

  // Greedy request for a fixture case (EOS = a token the tiny model never emits first).
  static GenerateRequest Request(const GoldenCase& c, int64_t max_new_tokens = 16) {
    GenerateRequest r;
    r.input_ids = c.input_ids;
    r.attention_mask = c.attention_mask;
    r.image_hidden_states = c.image_hidden_states;
    r.max_new_tokens = max_new_tokens;
    return r;
  }

  static std::vector<int64_t> Prefix(const std::vector<int64_t>& v, size_t n) {
    return std::vector<int64_t>(v.begin(), v.begin() + std::min(n, v.size()));
  }

  // Index (1-based length) at which `token` first appears in `ids`, or ids.size() + 1.
  static size_t FirstOccurrence(const std::vector<int64_t>& ids, int64_t token) {
    auto it = std::find(ids.begin(), ids.end(), token);
    return it == ids.end() ? ids.size() + 1 : (it - ids.begin()) + 1;
  }

  static TextModel* model_;
  static GoldenCase* text_only_;
  static GoldenCase* batch_mixed_;
};

TextModel* GeneratorTest::model_ = nullptr;
GoldenCase* GeneratorTest::text_only_ = nullptr;
GoldenCase* GeneratorTest::batch_mixed_ = nullptr;

TEST_F(GeneratorTest, MaxNewTokensGivesLength) {
  GenerateRequest r = Request(*text_only_, 5);
  auto res = Generator(*model_).Generate(r);
  ASSERT_TRUE(res.ok()) << res.status();
  ASSERT_EQ(res->rows.size(), 1u);
  const RowResult& row = res->rows[0];
  EXPECT_EQ(row.token_ids, Prefix(text_only_->generated_ids[0], 5));
  EXPECT_EQ(row.finish_reason, FinishReason::kLength);
  EXPECT_EQ(FinishReasonName(row.finish_reason), "length");
  EXPECT_EQ(row.completion_tokens, 5);
  EXPECT_EQ(row.prompt_tokens, static_cast<int64_t>(text_only_->input_ids[0].size()));
  EXPECT_EQ(res->decode_steps, 4);  // the last token needs no forward pass
}

TEST_F(GeneratorTest, EosStopsAndIsIncluded) {
  const std::vector<int64_t>& ref = text_only_->generated_ids[0];
  const int64_t eos = ref[3];
  const size_t n = FirstOccurrence(ref, eos);
  GenerateRequest r = Request(*text_only_);
  r.eos_token_ids = {49279, eos};
  auto res = Generator(*model_).Generate(r);
  ASSERT_TRUE(res.ok()) << res.status();
  EXPECT_EQ(res->rows[0].token_ids, Prefix(ref, n));
  EXPECT_EQ(res->rows[0].token_ids.back(), eos);
  EXPECT_EQ(res->rows[0].finish_reason, FinishReason::kStop);

  r.ignore_eos = true;
  res = Generator(*model_).Generate(r);
  ASSERT_TRUE(res.ok()) << res.status();
  EXPECT_EQ(res->rows[0].token_ids, ref);
  EXPECT_EQ(res->rows[0].finish_reason, FinishReason::kLength);
}

TEST_F(GeneratorTest, StopTokenSequence) {
  const std::vector<int64_t>& ref = text_only_->generated_ids[0];
  const std::vector<int64_t> seq = {ref[4], ref[5]};
  size_t n = 0;
  for (size_t i = 2; i <= ref.size(); ++i) {
    if (ref[i - 2] == seq[0] && ref[i - 1] == seq[1]) {
      n = i;
      break;
    }
  }
  ASSERT_GT(n, 0u);
  GenerateRequest r = Request(*text_only_);
  r.stop_token_sequences = {{49000, 49001}, seq};
  auto res = Generator(*model_).Generate(r);
  ASSERT_TRUE(res.ok()) << res.status();
  EXPECT_EQ(res->rows[0].token_ids, Prefix(ref, n));
  EXPECT_EQ(res->rows[0].finish_reason, FinishReason::kStop);
}

TEST_F(GeneratorTest, StopStringThroughDetokenizer) {
  const std::vector<int64_t>& ref = text_only_->generated_ids[0];
  const size_t n = FirstOccurrence(ref, ref[6]);
  GenerateRequest r = Request(*text_only_);
  r.detokenize = [](absl::Span<const int64_t> ids) {
    std::string s;
    for (int64_t id : ids) absl::StrAppend(&s, "<", id, ">");
    return s;
  };
  const std::string stop = absl::StrCat("<", ref[6], ">");
  r.stop_strings = {"never", stop};
  auto res = Generator(*model_).Generate(r);
  ASSERT_TRUE(res.ok()) << res.status();
  EXPECT_EQ(res->rows[0].token_ids, Prefix(ref, n));
  EXPECT_EQ(res->rows[0].finish_reason, FinishReason::kStop);
  EXPECT_EQ(res->rows[0].matched_stop, stop);
}

TEST_F(GeneratorTest, StreamingCallbackSeesEveryTokenAndCanCancel) {
  const std::vector<int64_t>& ref = text_only_->generated_ids[0];
  GenerateRequest r = Request(*text_only_);
  std::vector<int64_t> streamed;
  r.on_token = [&](int64_t row, int64_t id) {
    EXPECT_EQ(row, 0);
    streamed.push_back(id);
    return streamed.size() == 4 ? StreamAction::kCancelRow : StreamAction::kContinue;
  };
  auto res = Generator(*model_).Generate(r);
  ASSERT_TRUE(res.ok()) << res.status();
  EXPECT_EQ(streamed, Prefix(ref, 4));
  EXPECT_EQ(res->rows[0].token_ids, Prefix(ref, 4));
  EXPECT_EQ(res->rows[0].finish_reason, FinishReason::kCancelled);
  EXPECT_EQ(FinishReasonName(FinishReason::kCancelled), "cancelled");
  EXPECT_EQ(res->decode_steps, 3);

  // The caller may also end a row as "stop" (e.g. a stop string matched on its own text).
  streamed.clear();
  r.on_token = [&](int64_t, int64_t id) {
    streamed.push_back(id);
    return streamed.size() == 2 ? StreamAction::kStop : StreamAction::kContinue;
  };
  res = Generator(*model_).Generate(r);
  ASSERT_TRUE(res.ok()) << res.status();
  EXPECT_EQ(res->rows[0].token_ids, Prefix(ref, 2));
  EXPECT_EQ(res->rows[0].finish_reason, FinishReason::kStop);
}

TEST_F(GeneratorTest, BatchRowsStopIndependently) {
  const GoldenCase& c = *batch_mixed_;
  // Row 1's fifth token as EOS: each row stops at its own first occurrence of it (or runs to
  // the length limit); the remaining rows keep producing the fixture's ids.
  const int64_t eos = c.generated_ids[1][4];
  GenerateRequest r = Request(c);
  r.eos_token_ids = {eos};
  std::vector<std::vector<int64_t>> streamed(3);
  r.on_token = [&](int64_t row, int64_t id) {
    streamed[row].push_back(id);
    return StreamAction::kContinue;
  };
  auto res = Generator(*model_).Generate(r);
  ASSERT_TRUE(res.ok()) << res.status();
  for (int b = 0; b < 3; ++b) {
    const size_t n = FirstOccurrence(c.generated_ids[b], eos);
    EXPECT_EQ(res->rows[b].token_ids, Prefix(c.generated_ids[b], n)) << "row " << b;
    EXPECT_EQ(streamed[b], res->rows[b].token_ids);
    EXPECT_EQ(res->rows[b].finish_reason,
              n <= c.generated_ids[b].size() ? FinishReason::kStop : FinishReason::kLength);
    int64_t real = 0;
    for (int64_t m : c.attention_mask[b]) real += m;
    EXPECT_EQ(res->rows[b].prompt_tokens, real);
  }
  EXPECT_EQ(res->rows[1].token_ids.size(), 5u);
}

TEST_F(GeneratorTest, CancelAllEndsEveryRow) {
  GenerateRequest r = Request(*batch_mixed_);
  int calls = 0;
  r.on_token = [&](int64_t row, int64_t) {
    ++calls;
    return row == 0 && calls > 3 ? StreamAction::kCancelAll : StreamAction::kContinue;
  };
  auto res = Generator(*model_).Generate(r);
  ASSERT_TRUE(res.ok()) << res.status();
  // Step 0: rows 0, 1, 2 (3 calls); step 1: row 0 cancels everything.
  EXPECT_EQ(calls, 4);
  EXPECT_EQ(res->rows[0].token_ids.size(), 2u);
  EXPECT_EQ(res->rows[1].token_ids.size(), 1u);
  EXPECT_EQ(res->rows[2].token_ids.size(), 1u);
  for (const auto& row : res->rows) EXPECT_EQ(row.finish_reason, FinishReason::kCancelled);
}

TEST_F(GeneratorTest, UnpaddedRowsAreLeftPaddedAutomatically) {
  const GoldenCase& c = *batch_mixed_;
  GenerateRequest r = Request(c);
  r.attention_mask.clear();
  for (size_t b = 0; b < c.input_ids.size(); ++b) {
    r.input_ids[b].clear();
    for (size_t i = 0; i < c.input_ids[b].size(); ++i) {
      if (c.attention_mask[b][i]) r.input_ids[b].push_back(c.input_ids[b][i]);
    }
  }
  r.ignore_eos = true;
  auto res = Generator(*model_).Generate(r);
  ASSERT_TRUE(res.ok()) << res.status();
  for (size_t b = 0; b < 3; ++b) EXPECT_EQ(res->rows[b].token_ids, c.generated_ids[b]);
}

TEST_F(GeneratorTest, SingleRowOfABatchMatchesTheBatch) {
  // Row 2 of batch_mixed alone (no padding) gives the same ids as inside the batch. Its
  // images are the last block of image_hidden_states.
  const GoldenCase& c = *batch_mixed_;
  GenerateRequest r;
  std::vector<int64_t> row;
  for (size_t i = 0; i < c.input_ids[2].size(); ++i) {
    if (c.attention_mask[2][i]) row.push_back(c.input_ids[2][i]);
  }
  r.input_ids = {row};
  const int64_t n_images = c.image_hidden_states.size(0);
  r.image_hidden_states = c.image_hidden_states.narrow(0, n_images - 1, 1);
  r.max_new_tokens = 16;
  r.ignore_eos = true;
  auto res = Generator(*model_).Generate(r);
  ASSERT_TRUE(res.ok()) << res.status();
  EXPECT_EQ(res->rows[0].token_ids, c.generated_ids[2]);
}

TEST_F(GeneratorTest, SamplingIsReproducibleBySeed) {
  GenerateRequest r = Request(*text_only_);
  r.ignore_eos = true;
  r.sampling.do_sample = true;
  r.sampling.temperature = 5.0;  // flatten the tiny model's sharp distribution
  r.sampling.top_k = 0;
  r.sampling.seed = 1;
  Generator gen(*model_);
  auto a = gen.Generate(r);
  auto b = gen.Generate(r);
  r.sampling.seed = 2;
  auto c = gen.Generate(r);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(a->rows[0].token_ids, b->rows[0].token_ids);
  EXPECT_NE(a->rows[0].token_ids, c->rows[0].token_ids);
  EXPECT_EQ(a->rows[0].token_ids.size(), 16u);
}

TEST_F(GeneratorTest, TopKOneSamplingEqualsGreedy) {
  GenerateRequest r = Request(*batch_mixed_);
  r.ignore_eos = true;
  r.sampling.do_sample = true;
  r.sampling.top_k = 1;
  r.sampling.temperature = 0.7;
  r.sampling.top_p = 0.9;
  r.sampling.seed = 42;
  auto res = Generator(*model_).Generate(r);
  ASSERT_TRUE(res.ok()) << res.status();
  for (size_t b = 0; b < 3; ++b) {
    EXPECT_EQ(res->rows[b].token_ids, batch_mixed_->generated_ids[b]) << "row " << b;
  }
}

TEST_F(GeneratorTest, RepetitionPenaltyBreaksRepetition) {
  // batch_mixed row 1's greedy continuation cycles through 5 tokens; a strong penalty
  // (applied in greedy mode too, as in HF) makes every generated token new.
  const GoldenCase& c = *batch_mixed_;
  GenerateRequest r = Request(c);
  r.ignore_eos = true;
  r.sampling.repetition_penalty = 100.0;
  auto res = Generator(*model_).Generate(r);
  ASSERT_TRUE(res.ok()) << res.status();
  const auto& ids = res->rows[1].token_ids;
  std::vector<int64_t> sorted = ids;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(std::unique(sorted.begin(), sorted.end()), sorted.end()) << "a token repeated";
  EXPECT_NE(ids, c.generated_ids[1]);
  EXPECT_EQ(ids[0], c.generated_ids[1][0]);  // unaffected unless it was in the prompt
}

TEST_F(GeneratorTest, OnLogitsSeesRawFloatLogits) {
  GenerateRequest r = Request(*text_only_, 3);
  int64_t steps = 0;
  r.on_logits = [&](int64_t step, const at::Tensor& logits) {
    EXPECT_EQ(step, steps++);
    EXPECT_EQ(logits.scalar_type(), at::kFloat);
    EXPECT_EQ(logits.size(0), 1);
    EXPECT_EQ(logits.size(1), 49280);
    if (step == 0) {
      EXPECT_LE((logits - text_only_->logits_last).abs().max().item<double>(), 1e-4);
    }
  };
  ASSERT_TRUE(Generator(*model_).Generate(r).ok());
  EXPECT_EQ(steps, 3);
}

TEST_F(GeneratorTest, ApplyGenerationConfig) {
  model::GenerationConfig gc;
  gc.eos_token_ids = {49279, 7};
  gc.do_sample = true;
  gc.temperature = 0.6;
  gc.top_p = 0.8;
  gc.top_k = 20;
  gc.repetition_penalty = 1.1;
  gc.max_new_tokens = 128;
  GenerateRequest r;
  ApplyGenerationConfig(gc, r);
  EXPECT_EQ(r.eos_token_ids, (std::vector<int64_t>{49279, 7}));
  EXPECT_EQ(r.pad_token_id, 49279);  // no pad id: HF falls back to the first eos id
  EXPECT_TRUE(r.sampling.do_sample);
  EXPECT_DOUBLE_EQ(r.sampling.temperature, 0.6);
  EXPECT_DOUBLE_EQ(r.sampling.top_p, 0.8);
  EXPECT_EQ(r.sampling.top_k, 20);
  EXPECT_DOUBLE_EQ(r.sampling.repetition_penalty, 1.1);
  EXPECT_EQ(r.max_new_tokens, 128);
  gc.pad_token_id = 2;
  ApplyGenerationConfig(gc, r);
  EXPECT_EQ(r.pad_token_id, 2);

  GenerateRequest defaults;
  ApplyGenerationConfig(model::GenerationConfig{}, defaults);
  EXPECT_EQ(defaults.eos_token_ids, std::vector<int64_t>{kDefaultEosTokenId});
  EXPECT_EQ(defaults.pad_token_id, kDefaultPadTokenId);
  EXPECT_FALSE(defaults.sampling.do_sample);
}

TEST_F(GeneratorTest, InvalidRequestsAreRejected) {
  Generator gen(*model_);
  auto expect_invalid = [&](GenerateRequest r, const char* what) {
    auto res = gen.Generate(r);
    EXPECT_FALSE(res.ok()) << what;
    if (!res.ok()) {
      EXPECT_EQ(res.status().code(), absl::StatusCode::kInvalidArgument)
          << what << ": " << res.status();
    }
  };
  GenerateRequest ok = Request(*text_only_, 2);
  ASSERT_TRUE(gen.Generate(ok).ok());

  GenerateRequest r = ok;
  r.input_ids.clear();
  r.attention_mask.clear();
  expect_invalid(r, "no rows");
  r = ok;
  r.input_ids[0].clear();
  r.attention_mask.clear();
  expect_invalid(r, "empty row");
  r = ok;
  r.attention_mask[0].pop_back();
  expect_invalid(r, "mask length");
  r = ok;
  r.attention_mask[0].back() = 0;
  expect_invalid(r, "right padding");
  r = ok;
  r.attention_mask[0][3] = 2;
  expect_invalid(r, "mask value");
  r = ok;
  r.input_ids[0][1] = 49280;
  expect_invalid(r, "id out of vocabulary");
  r = ok;
  r.input_ids[0][1] = -3;
  expect_invalid(r, "negative id");
  r = ok;
  r.max_new_tokens = 0;
  expect_invalid(r, "max_new_tokens 0");
  r = ok;
  r.max_new_tokens = 8192;
  expect_invalid(r, "longer than max_position_embeddings");
  r = ok;
  r.stop_strings = {"x"};
  expect_invalid(r, "stop string without detokenizer");
  r = ok;
  r.stop_token_sequences = {{}};
  expect_invalid(r, "empty stop sequence");
  r = ok;
  r.sampling.do_sample = true;
  r.sampling.temperature = 0;
  expect_invalid(r, "temperature 0");
  r = ok;
  r.pad_token_id = 50000;
  expect_invalid(r, "pad id");
  r = ok;
  r.image_hidden_states = at::zeros({1, 64, 32});
  expect_invalid(r, "features without <image> tokens");
  r = Request(*batch_mixed_, 2);
  r.image_hidden_states = r.image_hidden_states.narrow(0, 0, 3);
  expect_invalid(r, "one image too few");
  r = Request(*batch_mixed_, 2);
  r.image_hidden_states = at::zeros({4, 64, 16});
  expect_invalid(r, "wrong feature width");
  r = Request(*batch_mixed_, 2);
  // One extra <image> token: 129 in row 1.
  auto it = std::find_if(r.input_ids[1].begin(), r.input_ids[1].end(),
                         [](int64_t id) { return id != 49190; });
  ASSERT_NE(it, r.input_ids[1].end());
  *it = 49190;
  expect_invalid(r, "image token count not a multiple of 64");
}

}  // namespace
}  // namespace smolserve::decoder
