#include "services/decoder/core/logits_processor.h"

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace smolserve::decoder {
namespace {

using ::testing::ElementsAre;
using ::testing::FloatEq;

constexpr float kInf = std::numeric_limits<float>::infinity();

TEST(RepetitionPenaltyTest, DividesPositiveMultipliesNegativeOncePerId) {
  std::vector<float> s = {2.0f, -1.0f, 0.5f, 3.0f};
  // id 1 repeated: penalised once; 7 is outside the vocabulary and ignored.
  ApplyRepetitionPenalty(absl::MakeSpan(s), {0, 1, 1, 7}, 2.0);
  EXPECT_THAT(s, ElementsAre(FloatEq(1.0f), FloatEq(-2.0f), FloatEq(0.5f), FloatEq(3.0f)));
}

TEST(RepetitionPenaltyTest, PenaltyBelowOneRewards) {
  std::vector<float> s = {2.0f, -1.0f};
  ApplyRepetitionPenalty(absl::MakeSpan(s), {0, 1}, 0.5);
  EXPECT_THAT(s, ElementsAre(FloatEq(4.0f), FloatEq(-0.5f)));
}

TEST(RepetitionPenaltyTest, OneIsIdentity) {
  std::vector<float> s = {2.0f, -1.0f};
  ApplyRepetitionPenalty(absl::MakeSpan(s), {0, 1}, 1.0);
  EXPECT_THAT(s, ElementsAre(2.0f, -1.0f));
}

TEST(TemperatureTest, Divides) {
  std::vector<float> s = {1.0f, -2.0f, 4.0f};
  ApplyTemperature(absl::MakeSpan(s), 0.5);
  EXPECT_THAT(s, ElementsAre(2.0f, -4.0f, 8.0f));
}

TEST(TopKTest, KeepsKLargestAndTiesWithTheKth) {
  std::vector<float> s = {1, 5, 3, 5, 2};
  ApplyTopK(absl::MakeSpan(s), 2);
  EXPECT_THAT(s, ElementsAre(-kInf, 5, -kInf, 5, -kInf));

  s = {1, 5, 3, 5, 2};
  ApplyTopK(absl::MakeSpan(s), 3);
  EXPECT_THAT(s, ElementsAre(-kInf, 5, 3, 5, -kInf));

  s = {1, 5, 3, 4, 2};
  ApplyTopK(absl::MakeSpan(s), 1);
  EXPECT_THAT(s, ElementsAre(-kInf, 5, -kInf, -kInf, -kInf));
}

TEST(TopKTest, ZeroAndLargeKAreNoOps) {
  std::vector<float> s = {1, 5, 3};
  ApplyTopK(absl::MakeSpan(s), 0);
  EXPECT_THAT(s, ElementsAre(1, 5, 3));
  ApplyTopK(absl::MakeSpan(s), 50);
  EXPECT_THAT(s, ElementsAre(1, 5, 3));
}

TEST(TopPTest, RemovesTheLowTailHfStyle) {
  // Probabilities 0.1, 0.2, 0.3, 0.4 (scores are their logs). Ascending cumulative sums are
  // 0.1, 0.3, 0.6, 1.0; with top_p = 0.65 those <= 0.35 go: the 0.1 and 0.2 tokens.
  std::vector<float> s = {std::log(0.3f), std::log(0.1f), std::log(0.4f), std::log(0.2f)};
  const std::vector<float> orig = s;
  ApplyTopP(absl::MakeSpan(s), 0.65);
  EXPECT_THAT(s, ElementsAre(orig[0], -kInf, orig[2], -kInf));

  // top_p = 0.95: threshold 0.05 -> nothing removed.
  s = orig;
  ApplyTopP(absl::MakeSpan(s), 0.95);
  EXPECT_EQ(s, orig);

  // top_p = 0: only the best token survives (min_tokens_to_keep = 1).
  s = orig;
  ApplyTopP(absl::MakeSpan(s), 0.0);
  EXPECT_THAT(s, ElementsAre(-kInf, -kInf, orig[2], -kInf));

  // top_p = 1 disables.
  s = orig;
  ApplyTopP(absl::MakeSpan(s), 1.0);
  EXPECT_EQ(s, orig);
}

TEST(TopPTest, IgnoresAlreadyFilteredTokens) {
  // After top-k only two finite scores remain: probabilities 0.25 / 0.75 among them.
  std::vector<float> s = {-kInf, std::log(0.25f), -kInf, std::log(0.75f)};
  ApplyTopP(absl::MakeSpan(s), 0.7);  // threshold 0.3: the 0.25 token goes
  EXPECT_THAT(s, ElementsAre(-kInf, -kInf, -kInf, FloatEq(std::log(0.75f))));
}

TEST(ArgmaxTest, TiesGoToTheLowestIndexAndNanNeverWins) {
  EXPECT_EQ(Argmax(std::vector<float>{1, 3, 3, 2}), 1);
  EXPECT_EQ(Argmax(std::vector<float>{std::nanf(""), 1, 2}), 2);
  EXPECT_EQ(Argmax(std::vector<float>{-kInf, -kInf}), 0);
}

TEST(SampleTest, NeverPicksFilteredTokensAndFollowsTheDistribution) {
  std::mt19937_64 rng(1234);
  // p = 0.2 / 0 / 0.8.
  const std::vector<float> s = {std::log(0.2f), -kInf, std::log(0.8f)};
  int counts[3] = {0, 0, 0};
  const int n = 20000;
  for (int i = 0; i < n; ++i) ++counts[SampleFromScores(s, rng)];
  EXPECT_EQ(counts[1], 0);
  // 5 sigma of a binomial(20000, 0.8) frequency is 0.014.
  EXPECT_NEAR(counts[2] / static_cast<double>(n), 0.8, 0.014);
}

TEST(SampleTest, SameSeedSameDraws) {
  const std::vector<float> s = {0.1f, 0.2f, 0.3f, 0.0f, -0.5f};
  std::mt19937_64 a(7), b(7), c(8);
  std::vector<int64_t> da, db, dc;
  for (int i = 0; i < 64; ++i) {
    da.push_back(SampleFromScores(s, a));
    db.push_back(SampleFromScores(s, b));
    dc.push_back(SampleFromScores(s, c));
  }
  EXPECT_EQ(da, db);
  EXPECT_NE(da, dc);
}

TEST(SelectNextTokenTest, GreedyAppliesThePenaltyFirst) {
  std::mt19937_64 rng(0);
  SamplingParams p;
  p.repetition_penalty = 2.0;
  std::vector<float> s = {3.0f, 2.0f};  // token 0 seen: 3 / 2 = 1.5 < 2
  EXPECT_EQ(SelectNextToken(absl::MakeSpan(s), {0}, p, rng), 1);
}

TEST(SelectNextTokenTest, GreedyIgnoresSamplingWarpers) {
  std::mt19937_64 rng(0);
  SamplingParams p;
  p.temperature = 0.1;  // unused without do_sample (and not validated)
  p.top_k = 1;
  std::vector<float> s = {1.0f, 2.0f, 0.5f};
  EXPECT_EQ(SelectNextToken(absl::MakeSpan(s), {}, p, rng), 1);
  EXPECT_THAT(s, ElementsAre(1.0f, 2.0f, 0.5f));
}

TEST(SelectNextTokenTest, TopKOneSamplingIsGreedy) {
  std::mt19937_64 rng(99);
  SamplingParams p;
  p.do_sample = true;
  p.top_k = 1;
  p.temperature = 3.0;
  for (int i = 0; i < 100; ++i) {
    std::vector<float> s = {0.5f, 0.2f, 0.7f, 0.69f};
    EXPECT_EQ(SelectNextToken(absl::MakeSpan(s), {}, p, rng), 2);
  }
}

TEST(SelectNextTokenTest, OrderIsPenaltyTemperatureTopKTopP) {
  // Penalty 2 turns token 0 from 4 into 2; temperature 0.5 doubles everything: 4, 6, 2, 0;
  // top_k = 3 drops the 0; top_p = 0.5 keeps only the best (6): probability of 6 among
  // {4, 6, 2} is 0.867 > 0.5 and the next cumulative sum from below is 0.133 <= 0.5.
  SamplingParams p;
  p.do_sample = true;
  p.repetition_penalty = 2.0;
  p.temperature = 0.5;
  p.top_k = 3;
  p.top_p = 0.5;
  std::mt19937_64 rng(5);
  std::vector<float> s = {4.0f, 3.0f, 1.0f, 0.0f};
  EXPECT_EQ(SelectNextToken(absl::MakeSpan(s), {0}, p, rng), 1);
  EXPECT_THAT(s, ElementsAre(-kInf, FloatEq(6.0f), -kInf, -kInf));
}

TEST(ValidateSamplingParamsTest, RejectsOutOfRangeValues) {
  SamplingParams p;
  EXPECT_TRUE(ValidateSamplingParams(p).ok());
  p.do_sample = true;
  p.temperature = 0;
  EXPECT_FALSE(ValidateSamplingParams(p).ok());
  p.temperature = 0.7;
  EXPECT_TRUE(ValidateSamplingParams(p).ok());
  p.top_p = 1.5;
  EXPECT_FALSE(ValidateSamplingParams(p).ok());
  p.top_p = 0.9;
  p.top_k = -1;
  EXPECT_FALSE(ValidateSamplingParams(p).ok());
  p.top_k = 10;
  p.repetition_penalty = 0;
  EXPECT_FALSE(ValidateSamplingParams(p).ok());
  p.repetition_penalty = std::nan("");
  EXPECT_FALSE(ValidateSamplingParams(p).ok());
  p.repetition_penalty = 1.2;
  EXPECT_TRUE(ValidateSamplingParams(p).ok());
}

}  // namespace
}  // namespace smolserve::decoder
