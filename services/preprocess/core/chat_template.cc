#include "services/preprocess/core/chat_template.h"

#include <cctype>
#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace smolserve::preprocess {
namespace {

// The template shipped in SmolVLM model folders (chat_template.json).
constexpr absl::string_view kSmolVLMImageTemplate =
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}"
    "<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}";

// The reference processor's default, which also maps video items to "<video>".
constexpr absl::string_view kSmolVLMVideoTemplate =
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}"
    "{% elif line['type'] == 'video' %}{{ '<video>' }}{% endif %}{% endfor %}"
    "<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}";

std::string StripWhitespace(absl::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (!std::isspace(static_cast<unsigned char>(c))) out.push_back(c);
  }
  return out;
}

std::string Capitalize(absl::string_view role) {
  std::string out(role);
  for (size_t i = 0; i < out.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(out[i]);
    out[i] = static_cast<char>(i == 0 ? std::toupper(c) : std::tolower(c));
  }
  return out;
}

absl::StatusOr<std::string> ReadTemplateFrom(const std::string& path, bool* found) {
  *found = false;
  std::ifstream f(path);
  if (!f) return std::string();
  std::stringstream ss;
  ss << f.rdbuf();
  nlohmann::json j = nlohmann::json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return absl::InvalidArgumentError(absl::StrCat("'", path, "' is not valid JSON"));
  }
  if (j.is_object() && j.contains("chat_template") && j["chat_template"].is_string()) {
    *found = true;
    return j["chat_template"].get<std::string>();
  }
  return std::string();
}

}  // namespace

absl::StatusOr<ChatTemplateKind> RecognizeChatTemplate(absl::string_view jinja_text) {
  const std::string t = StripWhitespace(jinja_text);
  if (t == StripWhitespace(kSmolVLMImageTemplate)) return ChatTemplateKind::kSmolVLMImage;
  if (t == StripWhitespace(kSmolVLMVideoTemplate)) return ChatTemplateKind::kSmolVLMVideo;
  return absl::FailedPreconditionError(absl::StrCat(
      "unrecognised chat template (", jinja_text.size(),
      " characters): only the SmolVLM template family is supported; set the processor "
      "option \"chat_template\": \"smolvlm\" to use the built-in SmolVLM template"));
}

absl::StatusOr<std::string> ReadChatTemplate(const std::string& model_dir) {
  for (const char* name : {"chat_template.json", "tokenizer_config.json"}) {
    bool found = false;
    auto t = ReadTemplateFrom(model_dir + "/" + name, &found);
    if (!t.ok()) return t.status();
    if (found) return *t;
  }
  return absl::NotFoundError(absl::StrCat("no chat template in '", model_dir,
                                          "' (chat_template.json or tokenizer_config.json)"));
}

absl::StatusOr<std::string> RenderChatTemplate(ChatTemplateKind kind,
                                               const Conversation& conversation,
                                               bool add_generation_prompt) {
  std::string out = "<|im_start|>";
  for (size_t m = 0; m < conversation.size(); ++m) {
    const Message& msg = conversation[m];
    if (msg.role.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("message ", m, " has no role"));
    }
    if (msg.content.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("message ", m, " has no content"));
    }
    out += Capitalize(msg.role);
    out += msg.content.front().type == ContentItem::Type::kImage ? ":" : ": ";
    for (const ContentItem& item : msg.content) {
      switch (item.type) {
        case ContentItem::Type::kText: out += item.text; break;
        case ContentItem::Type::kImage: out += "<image>"; break;
        case ContentItem::Type::kVideo:
          if (kind == ChatTemplateKind::kSmolVLMVideo) out += "<video>";
          break;
      }
    }
    out += "<end_of_utterance>\n";
  }
  if (add_generation_prompt) out += "Assistant:";
  return out;
}

}  // namespace smolserve::preprocess
