#include "common/generation/generation_params.h"

#include <cmath>
#include <limits>

#include "gtest/gtest.h"

namespace smolserve {
namespace {

TEST(ValidateGenerationParams, AcceptsDefaultsAndSaneValues) {
  GenerationLimits limits;
  EXPECT_TRUE(ValidateGenerationParams({}, limits).ok());
  GenerationParams p;
  p.max_new_tokens = 64;
  p.temperature = 0.7;
  p.top_p = 1.0;
  p.top_k = 0;
  p.repetition_penalty = 1.1;
  p.stop = {"\n\n", "END"};
  EXPECT_TRUE(ValidateGenerationParams(p, limits).ok());
}

TEST(ValidateGenerationParams, RefusesEachBadValueNamingTheField) {
  GenerationLimits limits;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  struct Case {
    GenerationParams p;
    std::string field;
  };
  std::vector<Case> cases;
  auto add = [&](auto set, std::string field) {
    GenerationParams p;
    set(p);
    cases.push_back({p, field});
  };
  add([](GenerationParams& p) { p.max_new_tokens = 0; }, "max_new_tokens");
  add([](GenerationParams& p) { p.max_new_tokens = 4097; }, "max_new_tokens");
  add([&](GenerationParams& p) { p.temperature = nan; }, "temperature");
  add([](GenerationParams& p) { p.temperature = -1; }, "temperature");
  add([&](GenerationParams& p) { p.temperature = inf; }, "temperature");
  add([](GenerationParams& p) { p.top_p = 0; }, "top_p");
  add([](GenerationParams& p) { p.top_p = 1.5; }, "top_p");
  add([&](GenerationParams& p) { p.top_p = nan; }, "top_p");
  add([](GenerationParams& p) { p.top_k = -1; }, "top_k");
  add([](GenerationParams& p) { p.repetition_penalty = 0; }, "repetition_penalty");
  add([](GenerationParams& p) { p.stop = {""}; }, "stop");
  add([](GenerationParams& p) { p.stop = {"a", "b", "c", "d", "e"}; }, "stop");
  add([](GenerationParams& p) { p.stop = {std::string(257, 'x')}; }, "stop");
  for (const auto& c : cases) {
    absl::Status s = ValidateGenerationParams(c.p, limits);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.field;
    EXPECT_EQ(s.message().substr(0, c.field.size()), c.field) << s;
  }
}

TEST(GenerationParamsFromJson, ReadsEveryKey) {
  auto g = GenerationParamsFromJson(
      R"({"max_new_tokens": 8, "temperature": 0.5, "top_p": 0.9, "top_k": 40,
          "repetition_penalty": 1.2, "seed": 18446744073709551615, "ignore_eos": true,
          "stop": ["x", "y"]})");
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(*g->max_new_tokens, 8);
  EXPECT_DOUBLE_EQ(*g->temperature, 0.5);
  EXPECT_DOUBLE_EQ(*g->top_p, 0.9);
  EXPECT_EQ(*g->top_k, 40);
  EXPECT_DOUBLE_EQ(*g->repetition_penalty, 1.2);
  EXPECT_EQ(*g->seed, 18446744073709551615ull);
  EXPECT_TRUE(g->ignore_eos);
  EXPECT_EQ(g->stop, (std::vector<std::string>{"x", "y"}));
  auto greedy = GenerationParamsFromJson(R"({"greedy": true, "stop": "s"})");
  ASSERT_TRUE(greedy.ok());
  EXPECT_EQ(*greedy->temperature, 0.0);
  EXPECT_EQ(greedy->stop, (std::vector<std::string>{"s"}));
}

TEST(GenerationParamsFromJson, RefusesUnknownKeysAndTypes) {
  for (const char* bad : {R"({"max_tokens": 3})", R"({"top_p": "0.5"})", R"({"seed": 1.5})",
                          R"({"stop": [1]})", R"({"ignore_eos": 1})", R"([1])", "nope"}) {
    EXPECT_EQ(GenerationParamsFromJson(bad).status().code(), absl::StatusCode::kInvalidArgument)
        << bad;
  }
}

}  // namespace
}  // namespace smolserve
