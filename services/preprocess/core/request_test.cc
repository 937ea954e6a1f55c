#include "services/preprocess/core/request.h"

#include "gtest/gtest.h"

namespace smolserve::preprocess {
namespace {

TEST(Request, ParsesSingleConversationWithOverrides) {
  auto r = ParsePrepareRequest(R"({
    "messages": [{"role": "user", "content": [
        {"type": "image", "path": "a.jpg"}, {"type": "text", "text": "Hi"},
        {"type": "video", "base64": "AAAA"}, {"type": "image", "url": "file:///x.png"}]}],
    "processor": {"do_image_splitting": false, "size": {"longest_edge": 1024},
                  "max_image_size": {"longest_edge": 384},
                  "video": {"fps": 2, "max_frames": 10, "num_frames": 8, "skip_secs": 1},
                  "image_mode": "keep", "chat_template": "smolvlm"},
    "generation": {"max_new_tokens": 5}})");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->batched);
  ASSERT_EQ(r->conversations.size(), 1u);
  const auto& items = r->conversations[0][0].content;
  ASSERT_EQ(items.size(), 4u);
  EXPECT_EQ(items[0].type, ContentItem::Type::kImage);
  EXPECT_EQ(items[0].source.kind, MediaSource::Kind::kPath);
  EXPECT_EQ(items[1].text, "Hi");
  EXPECT_EQ(items[2].type, ContentItem::Type::kVideo);
  EXPECT_EQ(items[2].source.kind, MediaSource::Kind::kBase64);
  EXPECT_EQ(items[3].source.kind, MediaSource::Kind::kUrl);
  EXPECT_EQ(r->processor.do_image_splitting, false);
  EXPECT_EQ(r->processor.longest_edge, 1024);
  EXPECT_EQ(r->processor.max_image_size, 384);
  EXPECT_EQ(r->processor.video_fps, 2.0);
  EXPECT_EQ(r->processor.video_max_frames, 10);
  EXPECT_EQ(r->processor.video_num_frames, 8);
  EXPECT_EQ(r->processor.video_skip_secs, 1.0);
  EXPECT_EQ(r->processor.keep_image_mode, true);
  EXPECT_EQ(r->processor.chat_template, "smolvlm");
  EXPECT_EQ(r->generation_json, R"({"max_new_tokens":5})");
}

TEST(Request, ParsesBatchesAndStringContent) {
  auto r = ParsePrepareRequest(R"({"conversations": [
      [{"role": "user", "content": "Hello"}],
      [{"role": "user", "content": [{"type": "text", "text": "Bye"}]}]]})");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->batched);
  ASSERT_EQ(r->conversations.size(), 2u);
  EXPECT_EQ(r->conversations[0][0].content[0].text, "Hello");
}

TEST(Request, RejectsMalformedRequestsWithThePath) {
  struct Case {
    const char* json;
    const char* expect;
  } cases[] = {
      {"not json", "not valid JSON"},
      {"[]", "must be a JSON object"},
      {"{}", "exactly one of"},
      {R"({"messages": [], "conversations": []})", "exactly one of"},
      {R"({"messages": []})", "at least one message"},
      {R"({"messages": [{"content": "x"}]})", "messages[0]: missing \"role\""},
      {R"({"messages": [{"role": "user"}]})", "missing \"content\""},
      {R"({"messages": [{"role": "user", "content": [{"type": "audio"}]}]})",
       "messages[0].content[0]: unknown content type \"audio\""},
      {R"({"messages": [{"role": "user", "content": [{"type": "image"}]}]})", "exactly one of"},
      {R"({"messages": [{"role": "user", "content": [{"type": "image", "path": "a", "url": "b"}]}]})",
       "exactly one of"},
      {R"({"conversations": [[{"role": "user", "content": "a"}], [{"role": "user", "content": 5}]]})",
       "conversations[1][0]"},
      {R"({"messages": [{"role": "user", "content": "a"}], "processor": {"size": 5}})",
       "processor.size"},
      {R"({"messages": [{"role": "user", "content": "a"}], "processor": {"bogus": 1}})",
       "unknown key \"bogus\""},
      {R"({"messages": [{"role": "user", "content": "a"}], "processor": {"video": {"fps": -1}}})",
       "processor.video.fps"},
      {R"({"messages": [{"role": "user", "content": "a"}], "extra": 1})", "unknown key \"extra\""},
  };
  for (const auto& c : cases) {
    auto r = ParsePrepareRequest(c.json);
    ASSERT_FALSE(r.ok()) << c.json;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << c.json;
    EXPECT_NE(r.status().message().find(c.expect), std::string::npos)
        << c.json << " -> " << r.status();
  }
}

TEST(Request, MediaItemsMayCarryAnIdWithOrWithoutASource) {
  auto r = ParsePrepareRequest(R"({"messages": [{"role": "user", "content": [
      {"type": "image", "path": "a.jpg", "id": "cat"}, {"type": "video", "id": "clip"}]}]})");
  ASSERT_TRUE(r.ok()) << r.status();
  const auto& items = r->conversations[0][0].content;
  EXPECT_EQ(items[0].source.kind, MediaSource::Kind::kPath);
  EXPECT_EQ(items[0].source.id, "cat");
  EXPECT_EQ(items[1].source.kind, MediaSource::Kind::kNone);
  EXPECT_EQ(items[1].source.id, "clip");
  for (const char* bad : {R"({"type": "image", "id": 5})", R"({"type": "image", "id": ""})",
                          R"({"type": "image"})", R"({"type": "image", "path": "a", "url": "b", "id": "c"})"}) {
    auto b = ParsePrepareRequest(
        std::string(R"({"messages": [{"role": "user", "content": [)") + bad + "]}]}");
    EXPECT_EQ(b.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

}  // namespace
}  // namespace smolserve::preprocess
