#include "common/json/parse.h"

#include <string>

#include "gtest/gtest.h"

namespace smolserve::json {
namespace {

std::string Nested(int depth) { return std::string(depth, '[') + std::string(depth, ']'); }

TEST(Parse, AcceptsDocumentsWithinTheDepth) {
  auto j = Parse(R"({"a": [1, {"b": "c"}]})");
  ASSERT_TRUE(j.ok()) << j.status();
  EXPECT_EQ((*j)["a"][1]["b"], "c");
  EXPECT_TRUE(Parse(Nested(64)).ok());
  EXPECT_TRUE(Parse("3").ok());
}

TEST(Parse, RefusesTooDeepDocuments) {
  for (int depth : {65, 1000, 100000}) {
    auto j = Parse(Nested(depth));
    EXPECT_EQ(j.status().code(), absl::StatusCode::kInvalidArgument) << depth;
    EXPECT_NE(j.status().message().find("nested deeper than 64"), std::string::npos);
  }
  std::string objects;
  for (int i = 0; i < 200000; ++i) objects += "{\"a\":";
  EXPECT_EQ(Parse(objects).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(Parse, RefusesInvalidJsonWithAPosition) {
  auto j = Parse("{\"a\": tru}");
  EXPECT_EQ(j.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(j.status().message().find("invalid JSON at byte"), std::string::npos);
  EXPECT_FALSE(Parse("").ok());
  EXPECT_FALSE(Parse("{} x").ok());
}

// Found by tests/fuzz/request_fuzzer: nlohmann reports a number beyond double's range as
// out_of_range, which escaped Parse and terminated the process (any JSON body could do it).
TEST(Parse, RefusesNumbersOutOfRange) {
  for (const char* text : {"1e999", "-1e400", R"({"messages": [{"role": 1e999}]})",
                           R"({"max_tokens": 1e999})"}) {
    auto j = Parse(text);
    EXPECT_EQ(j.status().code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_NE(j.status().message().find("invalid JSON"), std::string::npos) << text;
  }
}

}  // namespace
}  // namespace smolserve::json
