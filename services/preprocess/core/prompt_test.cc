#include "services/preprocess/core/prompt.h"

#include <fstream>
#include <sstream>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace smolserve::preprocess {
namespace {

nlohmann::json ReadCase(const std::string& name) {
  std::ifstream f("tests/golden/cases/" + name + "/case.json");
  std::stringstream ss;
  ss << f.rdbuf();
  return nlohmann::json::parse(ss.str());
}

// Grid of an image from the fixture's resize calls: the second call of a split image
// resizes to the tile-multiple size (H x W) whose grid is H/512 x W/512.
TEST(Prompt, SplitImageLayoutMatchesGolden) {
  struct Case {
    const char* name;
    int rows, cols;
  } cases[] = {{"single_image", 4, 4}, {"longest_edge_1024", 2, 2}, {"odd_size_image", 4, 1}};
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const auto j = ReadCase(c.name);
    const auto& calls = j["image_resize_calls"];
    ASSERT_GE(calls.size(), 2u);
    EXPECT_EQ(calls[1]["out_shape"][0].get<int>(), c.rows * 512);
    EXPECT_EQ(calls[1]["out_shape"][1].get<int>(), c.cols * 512);
    auto expanded = ExpandPlaceholders(j["prompt_template"].get<std::string>(),
                                       {ImagePromptTokens(c.rows, c.cols, 64)}, {});
    ASSERT_TRUE(expanded.ok()) << expanded.status();
    EXPECT_EQ(*expanded, j["prompt_expanded"][0].get<std::string>());
  }
}

TEST(Prompt, SingleImageLayoutMatchesGolden) {
  const auto j = ReadCase("rgba_image");
  const std::string block = ImagePromptTokens(0, 0, 64);
  auto expanded = ExpandPlaceholders(j["prompt_template"].get<std::string>(), {block, block}, {});
  ASSERT_TRUE(expanded.ok()) << expanded.status();
  EXPECT_EQ(*expanded, j["prompt_expanded"][0].get<std::string>());
}

TEST(Prompt, PlaceholderCountsMustMatch) {
  auto too_few = ExpandPlaceholders("a<image>b<image>", {"X"}, {});
  EXPECT_EQ(too_few.status().code(), absl::StatusCode::kInvalidArgument);
  auto too_many = ExpandPlaceholders("a<image>", {"X", "Y"}, {});
  EXPECT_EQ(too_many.status().code(), absl::StatusCode::kInvalidArgument);
  auto videos = ExpandPlaceholders("<video>x<image>y<video>", {"I"}, {"V1", "V2"});
  ASSERT_TRUE(videos.ok());
  EXPECT_EQ(*videos, "V1xIyV2");
  EXPECT_EQ(ExpandPlaceholders("<video>", {}, {}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(Prompt, TokenCountsFollowTheLayout) {
  // rows*cols*(S+2) + rows + S + 3 tokens when "\n\n" is one token; here count strings.
  const std::string s = ImagePromptTokens(3, 4, 64);
  size_t images = 0;
  for (size_t p = s.find("<image>"); p != std::string::npos; p = s.find("<image>", p + 1)) ++images;
  EXPECT_EQ(images, 13u * 64u);
  EXPECT_NE(s.find("<row_3_col_4>"), std::string::npos);
  EXPECT_EQ(s.find("<row_4_col_1>"), std::string::npos);
  EXPECT_NE(s.find("\n\n<fake_token_around_image><global-img>"), std::string::npos);
}

}  // namespace
}  // namespace smolserve::preprocess
