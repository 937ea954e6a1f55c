// Arbitrary conversations (roles, text, media items in any order) -> RenderChatTemplate in both
// template kinds, then ExpandPlaceholders with one expansion per media item, as the
// preprocessor does; the rest of the input as template text -> RecognizeChatTemplate.
// Invariants: rendering refuses only empty roles / contents (INVALID_ARGUMENT); the prompt has
// the template's frame; expansion refuses only a placeholder count mismatch (a user text
// holding "<image>"), and leaves no placeholder behind.
#include <cstddef>
#include <cstdint>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "services/preprocess/core/chat_template.h"
#include "services/preprocess/core/prompt.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace smolserve::preprocess;
  smolserve::fuzz::Bytes in(data, size);
  Conversation conv;
  const int messages = in.U8() % 6;
  int images = 0, videos = 0;
  for (int m = 0; m < messages; ++m) {
    Message msg;
    msg.role = in.String(12);
    const int items = in.U8() % 5;
    for (int k = 0; k < items; ++k) {
      ContentItem item;
      switch (in.U8() % 3) {
        case 0: item.text = in.String(64); break;
        case 1: item.type = ContentItem::Type::kImage; ++images; break;
        default: item.type = ContentItem::Type::kVideo; ++videos; break;
      }
      msg.content.push_back(std::move(item));
    }
    conv.push_back(std::move(msg));
  }
  const bool generation_prompt = in.Bool();
  for (ChatTemplateKind kind : {ChatTemplateKind::kSmolVLMImage, ChatTemplateKind::kSmolVLMVideo}) {
    absl::StatusOr<std::string> rendered = RenderChatTemplate(kind, conv, generation_prompt);
    if (!rendered.ok()) {
      FUZZ_CHECK(rendered.status().code() == absl::StatusCode::kInvalidArgument,
                 rendered.status().ToString());
      continue;
    }
    FUZZ_CHECK(absl::StartsWith(*rendered, "<|im_start|>"), "prefix");
    FUZZ_CHECK(!generation_prompt || absl::EndsWith(*rendered, "Assistant:"), "suffix");
    const bool video = kind == ChatTemplateKind::kSmolVLMVideo;
    std::vector<std::string> image_text(images, "[I]");
    std::vector<std::string> video_text(video ? videos : 0, "[V]");
    absl::StatusOr<std::string> expanded = ExpandPlaceholders(*rendered, image_text, video_text);
    if (!expanded.ok()) {
      FUZZ_CHECK(expanded.status().code() == absl::StatusCode::kInvalidArgument,
                 expanded.status().ToString());
      continue;
    }
    // Replacements hold no '<', so nothing can form a placeholder again.
    FUZZ_CHECK(!absl::StrContains(*expanded, kImagePlaceholder) &&
                   !absl::StrContains(*expanded, kVideoPlaceholder),
               "a placeholder was left unexpanded");
  }
  const std::string template_text = in.Rest();
  absl::StatusOr<ChatTemplateKind> kind = RecognizeChatTemplate(template_text);
  FUZZ_CHECK(kind.ok() || kind.status().code() == absl::StatusCode::kFailedPrecondition,
             kind.status().ToString());
  return 0;
}
