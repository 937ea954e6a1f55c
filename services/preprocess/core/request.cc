#include "services/preprocess/core/request.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/json/parse.h"
#include "nlohmann/json.hpp"

namespace smolserve::preprocess {
namespace {

using nlohmann::json;

absl::Status Bad(const std::string& where, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(where, ": ", what));
}

absl::StatusOr<ContentItem> ParseItem(const json& j, const std::string& where) {
  if (!j.is_object()) return Bad(where, "a content item must be an object");
  if (!j.contains("type") || !j["type"].is_string()) return Bad(where, "missing \"type\"");
  const std::string type = j["type"].get<std::string>();
  ContentItem item;
  if (type == "text") {
    item.type = ContentItem::Type::kText;
    if (!j.contains("text") || !j["text"].is_string()) return Bad(where, "text item needs a string \"text\"");
    item.text = j["text"].get<std::string>();
    return item;
  }
  if (type == "image" || type == "video") {
    item.type = type == "image" ? ContentItem::Type::kImage : ContentItem::Type::kVideo;
    int sources = 0;
    for (const char* key : {"path", "url", "base64"}) {
      if (!j.contains(key)) continue;
      if (!j[key].is_string()) return Bad(where, absl::StrCat("\"", key, "\" must be a string"));
      ++sources;
      item.source.value = j[key].get<std::string>();
      item.source.kind = std::string(key) == "path" ? MediaSource::Kind::kPath
                         : std::string(key) == "url" ? MediaSource::Kind::kUrl
                                                     : MediaSource::Kind::kBase64;
    }
    if (j.contains("id")) {
      if (!j["id"].is_string() || j["id"].get<std::string>().empty()) {
        return Bad(where, "\"id\" must be a non-empty string");
      }
      item.source.id = j["id"].get<std::string>();
    }
    if (sources == 0 && !item.source.id.empty()) {
      item.source.kind = MediaSource::Kind::kNone;
    } else if (sources != 1) {
      return Bad(where, absl::StrCat(type, " item needs exactly one of \"path\", \"url\", \"base64\"",
                                     " (or only an \"id\" of media sent before)"));
    }
    if (j.contains("mime_type") && j["mime_type"].is_string()) {
      item.source.mime_type = j["mime_type"].get<std::string>();
    }
    return item;
  }
  return Bad(where, absl::StrCat("unknown content type \"", type, "\" (expected text, image or video)"));
}

absl::StatusOr<Conversation> ParseConversation(const json& j, const std::string& where) {
  if (!j.is_array()) return Bad(where, "a conversation must be an array of messages");
  if (j.empty()) return Bad(where, "a conversation needs at least one message");
  Conversation conv;
  for (size_t m = 0; m < j.size(); ++m) {
    const std::string mw = absl::StrCat(where, "[", m, "]");
    const json& msg = j[m];
    if (!msg.is_object()) return Bad(mw, "a message must be an object");
    if (!msg.contains("role") || !msg["role"].is_string() || msg["role"].get<std::string>().empty()) {
      return Bad(mw, "missing \"role\"");
    }
    Message out;
    out.role = msg["role"].get<std::string>();
    if (!msg.contains("content")) return Bad(mw, "missing \"content\"");
    const json& content = msg["content"];
    if (content.is_string()) {
      ContentItem item;
      item.text = content.get<std::string>();
      out.content.push_back(std::move(item));
    } else if (content.is_array()) {
      if (content.empty()) return Bad(mw, "\"content\" is empty");
      for (size_t c = 0; c < content.size(); ++c) {
        auto item = ParseItem(content[c], absl::StrCat(mw, ".content[", c, "]"));
        if (!item.ok()) return item.status();
        out.content.push_back(*std::move(item));
      }
    } else {
      return Bad(mw, "\"content\" must be a string or an array of items");
    }
    conv.push_back(std::move(out));
  }
  return conv;
}

template <typename T>
absl::Status ReadOptional(const json& obj, const char* key, const std::string& where,
                          std::optional<T>* out) {
  if (!obj.contains(key) || obj[key].is_null()) return absl::OkStatus();
  const json& v = obj[key];
  if constexpr (std::is_same_v<T, bool>) {
    if (!v.is_boolean()) return Bad(absl::StrCat(where, ".", key), "must be true or false");
    *out = v.get<bool>();
  } else if constexpr (std::is_same_v<T, int>) {
    if (!v.is_number_integer()) return Bad(absl::StrCat(where, ".", key), "must be an integer");
    const int64_t x = v.get<int64_t>();
    if (x <= 0 || x > (1 << 20)) return Bad(absl::StrCat(where, ".", key), "out of range");
    *out = static_cast<int>(x);
  } else {
    if (!v.is_number()) return Bad(absl::StrCat(where, ".", key), "must be a number");
    const double x = v.get<double>();
    if (!(x >= 0) || x > 1e6) return Bad(absl::StrCat(where, ".", key), "out of range");
    *out = x;
  }
  return absl::OkStatus();
}

absl::Status ReadLongestEdge(const json& obj, const char* key, const std::string& where,
                             std::optional<int>* out) {
  if (!obj.contains(key)) return absl::OkStatus();
  const json& v = obj[key];
  const std::string w = absl::StrCat(where, ".", key);
  if (!v.is_object()) return Bad(w, "must be an object {\"longest_edge\": N}");
  for (auto it = v.begin(); it != v.end(); ++it) {
    if (it.key() != "longest_edge") return Bad(w, absl::StrCat("unsupported key \"", it.key(), "\""));
  }
  return ReadOptional(v, "longest_edge", w, out);
}

absl::StatusOr<ProcessorOverrides> ParseProcessor(const json& j) {
  const std::string where = "processor";
  if (!j.is_object()) return Bad(where, "must be an object");
  ProcessorOverrides p;
  for (auto it = j.begin(); it != j.end(); ++it) {
    static const char* kKnown[] = {"do_image_splitting", "do_resize", "size", "max_image_size",
                                   "video", "image_mode", "chat_template"};
    bool known = false;
    for (const char* k : kKnown) known = known || it.key() == k;
    if (!known) return Bad(where, absl::StrCat("unknown key \"", it.key(), "\""));
  }
  if (auto s = ReadOptional(j, "do_image_splitting", where, &p.do_image_splitting); !s.ok()) return s;
  if (auto s = ReadOptional(j, "do_resize", where, &p.do_resize); !s.ok()) return s;
  if (auto s = ReadLongestEdge(j, "size", where, &p.longest_edge); !s.ok()) return s;
  if (auto s = ReadLongestEdge(j, "max_image_size", where, &p.max_image_size); !s.ok()) return s;
  if (j.contains("video")) {
    const json& v = j["video"];
    const std::string vw = "processor.video";
    if (!v.is_object()) return Bad(vw, "must be an object");
    for (auto it = v.begin(); it != v.end(); ++it) {
      if (it.key() != "fps" && it.key() != "max_frames" && it.key() != "num_frames" &&
          it.key() != "skip_secs") {
        return Bad(vw, absl::StrCat("unknown key \"", it.key(), "\""));
      }
    }
    if (auto s = ReadOptional(v, "fps", vw, &p.video_fps); !s.ok()) return s;
    if (p.video_fps && *p.video_fps <= 0) return Bad(vw + ".fps", "must be > 0");
    if (auto s = ReadOptional(v, "max_frames", vw, &p.video_max_frames); !s.ok()) return s;
    if (auto s = ReadOptional(v, "num_frames", vw, &p.video_num_frames); !s.ok()) return s;
    if (auto s = ReadOptional(v, "skip_secs", vw, &p.video_skip_secs); !s.ok()) return s;
  }
  if (j.contains("image_mode")) {
    const json& v = j["image_mode"];
    if (!v.is_string() || (v != "rgb" && v != "keep")) {
      return Bad("processor.image_mode", "must be \"rgb\" or \"keep\"");
    }
    p.keep_image_mode = v == "keep";
  }
  if (j.contains("chat_template")) {
    const json& v = j["chat_template"];
    if (!v.is_string() || (v != "auto" && v != "smolvlm")) {
      return Bad("processor.chat_template", "must be \"auto\" or \"smolvlm\"");
    }
    p.chat_template = v.get<std::string>();
  }
  return p;
}

}  // namespace

absl::StatusOr<PrepareRequest> ParsePrepareRequest(absl::string_view text) {
  absl::StatusOr<json> parsed = ::smolserve::json::Parse(text);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("request is not valid JSON: ", parsed.status().message()));
  }
  const json& j = *parsed;
  if (!j.is_object()) return absl::InvalidArgumentError("request must be a JSON object");
  try {
    PrepareRequest req;
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (it.key() != "messages" && it.key() != "conversations" && it.key() != "processor" &&
          it.key() != "generation") {
        return absl::InvalidArgumentError(absl::StrCat("request: unknown key \"", it.key(), "\""));
      }
    }
    const bool has_messages = j.contains("messages");
    const bool has_conversations = j.contains("conversations");
    if (has_messages == has_conversations) {
      return absl::InvalidArgumentError(
          "request needs exactly one of \"messages\" or \"conversations\"");
    }
    if (has_messages) {
      auto conv = ParseConversation(j["messages"], "messages");
      if (!conv.ok()) return conv.status();
      req.conversations.push_back(*std::move(conv));
    } else {
      const json& convs = j["conversations"];
      if (!convs.is_array() || convs.empty()) {
        return absl::InvalidArgumentError("\"conversations\" must be a non-empty array");
      }
      req.batched = true;
      for (size_t b = 0; b < convs.size(); ++b) {
        auto conv = ParseConversation(convs[b], absl::StrCat("conversations[", b, "]"));
        if (!conv.ok()) return conv.status();
        req.conversations.push_back(*std::move(conv));
      }
    }
    if (j.contains("processor")) {
      auto p = ParseProcessor(j["processor"]);
      if (!p.ok()) return p.status();
      req.processor = *p;
    }
    if (j.contains("generation")) {
      if (!j["generation"].is_object()) {
        return absl::InvalidArgumentError("\"generation\" must be an object");
      }
      req.generation_json = j["generation"].dump();
    }
    return req;
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("malformed request: ", e.what()));
  }
}

absl::StatusOr<ChatRequest> ParseChatRequest(absl::string_view text) {
  ChatRequest out;
  absl::StatusOr<PrepareRequest> prepare = ParsePrepareRequest(text);
  if (!prepare.ok()) return prepare.status();
  out.prepare = *std::move(prepare);
  if (!out.prepare.generation_json.empty()) {
    absl::StatusOr<GenerationParams> g = GenerationParamsFromJson(out.prepare.generation_json);
    if (!g.ok()) return g.status();
    out.generation = *std::move(g);
  }
  return out;
}

}  // namespace smolserve::preprocess
