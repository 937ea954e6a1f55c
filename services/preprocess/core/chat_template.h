// The SmolVLM chat-template family, rendered natively.
//
// Debian ships no C++ Jinja engine, so the templates this model family uses are recognised
// and rendered by code: the model folder's template (images and text) and the video-capable
// default that the reference processor substitutes whenever a conversation holds a video.
// Any other template text is refused with a clear error rather than rendered wrongly.
#ifndef SMOLSERVE_SERVICES_PREPROCESS_CORE_CHAT_TEMPLATE_H_
#define SMOLSERVE_SERVICES_PREPROCESS_CORE_CHAT_TEMPLATE_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "services/preprocess/core/conversation.h"

namespace smolserve::preprocess {

enum class ChatTemplateKind {
  kSmolVLMImage,  // SmolVLM template: text and image items ("<image>"); video items render nothing
  kSmolVLMVideo,  // the same plus video items ("<video>")
};

// Identifies a Jinja template text of the SmolVLM family (whitespace-insensitive match).
absl::StatusOr<ChatTemplateKind> RecognizeChatTemplate(absl::string_view jinja_text);

// Reads the template from a model folder: chat_template.json's "chat_template", else
// tokenizer_config.json's "chat_template". NOT_FOUND when neither has one.
absl::StatusOr<std::string> ReadChatTemplate(const std::string& model_dir);

// Renders `conversation` (placeholders "<image>"/"<video>" unexpanded). Roles are
// capitalised like Jinja's `capitalize` (first letter upper, the rest lower). A message
// whose first item is an image gets "Role:" (no space); every other message "Role: ".
absl::StatusOr<std::string> RenderChatTemplate(ChatTemplateKind kind,
                                               const Conversation& conversation,
                                               bool add_generation_prompt);

}  // namespace smolserve::preprocess

#endif  // SMOLSERVE_SERVICES_PREPROCESS_CORE_CHAT_TEMPLATE_H_
