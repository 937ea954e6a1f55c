#include "services/preprocess/core/chat_template.h"

#include <fstream>
#include <sstream>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "services/preprocess/core/request.h"

namespace smolserve::preprocess {
namespace {

constexpr char kCases[] = "tests/golden/cases/";
constexpr char kTinyModel[] = "tests/golden/models/tiny-smolvlm2-256m-geometry";

nlohmann::json ReadJson(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return nlohmann::json::parse(ss.str());
}

// The fixture's messages as our request conversations (one or a batch).
std::vector<Conversation> CaseConversations(const nlohmann::json& c) {
  nlohmann::json req;
  if (c["processor_call"] == "processor_call") {
    req["conversations"] = c["messages"];
  } else {
    req["messages"] = c["messages"];
  }
  auto parsed = ParsePrepareRequest(req.dump());
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  return parsed.ok() ? parsed->conversations : std::vector<Conversation>{};
}

bool HasVideo(const Conversation& conv) {
  for (const auto& m : conv)
    for (const auto& item : m.content)
      if (item.type == ContentItem::Type::kVideo) return true;
  return false;
}

TEST(ChatTemplate, RecognisesTheModelFolderTemplate) {
  auto text = ReadChatTemplate(kTinyModel);
  ASSERT_TRUE(text.ok()) << text.status();
  auto kind = RecognizeChatTemplate(*text);
  ASSERT_TRUE(kind.ok()) << kind.status();
  EXPECT_EQ(*kind, ChatTemplateKind::kSmolVLMImage);
  // The tokenizer_config.json copy of the same family is recognised too.
  auto tc = ReadJson("models/SmolVLM-256M-Instruct/tokenizer_config.json");
  EXPECT_TRUE(RecognizeChatTemplate(tc["chat_template"].get<std::string>()).ok());
}

TEST(ChatTemplate, RejectsUnknownTemplates) {
  auto kind = RecognizeChatTemplate("{% for m in messages %}{{ m['content'] }}{% endfor %}");
  ASSERT_FALSE(kind.ok());
  EXPECT_EQ(kind.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(kind.status().message().find("unrecognised chat template"), std::string::npos);
  EXPECT_EQ(ReadChatTemplate("tests/golden/media").status().code(), absl::StatusCode::kNotFound);
}

TEST(ChatTemplate, MatchesEveryGoldenPromptTemplate) {
  int checked = 0;
  for (const char* name : {"single_image", "two_images", "text_only", "video_default_sampling",
                           "video_vfr_8_frames", "no_splitting", "longest_edge_1024",
                           "odd_size_image", "greyscale_image", "rgba_image",
                           "pil_modes_direct_call", "batch_mixed"}) {
    SCOPED_TRACE(name);
    const auto c = ReadJson(std::string(kCases) + name + "/case.json");
    const auto convs = CaseConversations(c);
    std::vector<std::string> expected;
    if (c["prompt_template"].is_array()) {
      expected = c["prompt_template"].get<std::vector<std::string>>();
    } else {
      expected.push_back(c["prompt_template"].get<std::string>());
    }
    ASSERT_EQ(convs.size(), expected.size());
    for (size_t b = 0; b < convs.size(); ++b) {
      const auto kind = HasVideo(convs[b]) ? ChatTemplateKind::kSmolVLMVideo
                                           : ChatTemplateKind::kSmolVLMImage;
      auto rendered = RenderChatTemplate(kind, convs[b], /*add_generation_prompt=*/true);
      ASSERT_TRUE(rendered.ok()) << rendered.status();
      EXPECT_EQ(*rendered, expected[b]);
      ++checked;
    }
  }
  EXPECT_EQ(checked, 14);
}

TEST(ChatTemplate, MultiTurnSystemAndRoleCapitalisation) {
  auto req = ParsePrepareRequest(R"({"messages": [
      {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
      {"role": "USER", "content": "Hi"},
      {"role": "assistant", "content": [{"type": "text", "text": "Hello!"}]},
      {"role": "user", "content": [{"type": "text", "text": "Why?"}, {"type": "video", "path": "v.mp4"}]}]})");
  ASSERT_TRUE(req.ok()) << req.status();
  auto video = RenderChatTemplate(ChatTemplateKind::kSmolVLMVideo, req->conversations[0], true);
  ASSERT_TRUE(video.ok());
  EXPECT_EQ(*video,
            "<|im_start|>System: Be brief.<end_of_utterance>\nUser: Hi<end_of_utterance>\n"
            "Assistant: Hello!<end_of_utterance>\nUser: Why?<video><end_of_utterance>\nAssistant:");
  // The image-only template drops video items, as the model folder's Jinja template does.
  auto image = RenderChatTemplate(ChatTemplateKind::kSmolVLMImage, req->conversations[0], false);
  ASSERT_TRUE(image.ok());
  EXPECT_EQ(image->substr(image->size() - 29), "User: Why?<end_of_utterance>\n");
}

}  // namespace
}  // namespace smolserve::preprocess
