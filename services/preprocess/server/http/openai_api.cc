#include "services/preprocess/server/http/openai_api.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/json/parse.h"
#include "common/status/retry_after.h"
#include "nlohmann/json.hpp"

namespace smolserve::preprocess::openai {
namespace {

using nlohmann::json;

std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

ApiError Invalid(std::string message, std::string param, int status = 400) {
  ApiError e;
  e.status = status;
  e.message = std::move(message);
  e.param = std::move(param);
  return e;
}

// A wrong JSON type: the request is well-formed JSON of the wrong shape (as schema validation
// answers: 422).
ApiError WrongType(const std::string& param, const char* expected) {
  return Invalid(absl::StrCat("'", param, "' must be ", expected), param, 422);
}

std::optional<ApiError> ParseMediaPart(const json& part, const std::string& param, bool video,
                                       ContentItem* item) {
  const char* key = video ? "video_url" : "image_url";
  if (!part.contains(key)) return Invalid(absl::StrCat("'", param, ".", key, "' is missing"), param);
  const json& v = part[key];
  std::string url;
  if (v.is_string()) {
    url = v.get<std::string>();
  } else if (v.is_object() && v.contains("url") && v["url"].is_string()) {
    url = v["url"].get<std::string>();
  } else {
    return WrongType(absl::StrCat(param, ".", key), "an object with a string 'url'");
  }
  if (url.empty()) return Invalid(absl::StrCat("'", param, ".", key, ".url' is empty"), param);
  item->type = video ? ContentItem::Type::kVideo : ContentItem::Type::kImage;
  item->source.kind = MediaSource::Kind::kUrl;
  item->source.value = std::move(url);
  return std::nullopt;
}

std::optional<ApiError> ParseContent(const json& content, const std::string& param,
                                     Message* msg) {
  if (content.is_string()) {
    ContentItem item;
    item.text = content.get<std::string>();
    msg->content.push_back(std::move(item));
    return std::nullopt;
  }
  if (content.is_null()) return Invalid(absl::StrCat("'", param, "' is null"), param);
  if (!content.is_array()) return WrongType(param, "a string or an array of content parts");
  if (content.empty()) return Invalid(absl::StrCat("'", param, "' is empty"), param);
  for (size_t k = 0; k < content.size(); ++k) {
    const std::string p = absl::StrCat(param, "[", k, "]");
    const json& part = content[k];
    if (!part.is_object() || !part.contains("type") || !part["type"].is_string()) {
      return WrongType(p, "an object with a string 'type'");
    }
    const std::string type = part["type"].get<std::string>();
    ContentItem item;
    if (type == "text") {
      if (!part.contains("text") || !part["text"].is_string()) return WrongType(p + ".text", "a string");
      item.text = part["text"].get<std::string>();
    } else if (type == "image_url" || type == "video_url") {
      if (auto e = ParseMediaPart(part, p, type == "video_url", &item)) return e;
    } else {
      return Invalid(absl::StrCat("content part type '", type.substr(0, 32),
                                  "' is not supported (text, image_url, video_url)"),
                     p + ".type");
    }
    msg->content.push_back(std::move(item));
  }
  return std::nullopt;
}

std::optional<ApiError> ParseMessages(const json& messages, Conversation* conv) {
  if (!messages.is_array()) return WrongType("messages", "an array");
  if (messages.empty()) return Invalid("'messages' must not be empty", "messages");
  for (size_t m = 0; m < messages.size(); ++m) {
    const std::string p = absl::StrCat("messages[", m, "]");
    const json& msg = messages[m];
    if (!msg.is_object()) return WrongType(p, "an object");
    if (!msg.contains("role") || !msg["role"].is_string()) return WrongType(p + ".role", "a string");
    Message out;
    out.role = msg["role"].get<std::string>();
    if (out.role == "developer") out.role = "system";
    if (out.role != "system" && out.role != "user" && out.role != "assistant") {
      return Invalid(absl::StrCat("role '", out.role.substr(0, 32),
                                  "' is not supported (system, developer, user, assistant)"),
                     p + ".role");
    }
    if (msg.contains("tool_calls") && !msg["tool_calls"].is_null() && !msg["tool_calls"].empty()) {
      return Invalid("tool calls are not supported", p + ".tool_calls");
    }
    if (!msg.contains("content")) return Invalid(absl::StrCat("'", p, ".content' is missing"), p + ".content");
    if (auto e = ParseContent(msg["content"], p + ".content", &out)) return e;
    conv->push_back(std::move(out));
  }
  return std::nullopt;
}

// Reads an optional number field; nullopt when absent or null.
std::optional<ApiError> Number(const json& j, const char* key, std::optional<double>* out) {
  if (!j.contains(key) || j[key].is_null()) return std::nullopt;
  if (!j[key].is_number()) return WrongType(key, "a number");
  *out = j[key].get<double>();
  return std::nullopt;
}

std::optional<ApiError> Integer(const json& j, const char* key, std::optional<int64_t>* out) {
  if (!j.contains(key) || j[key].is_null()) return std::nullopt;
  const json& v = j[key];
  if (!v.is_number_integer()) return WrongType(key, "an integer");
  if (v.is_number_unsigned() && v.get<uint64_t>() > (uint64_t{1} << 62)) {
    return Invalid(absl::StrCat("'", key, "' is out of range"), key);
  }
  *out = v.get<int64_t>();
  return std::nullopt;
}

std::optional<ApiError> Bool(const json& j, const char* key, bool* out) {
  if (!j.contains(key) || j[key].is_null()) return std::nullopt;
  if (!j[key].is_boolean()) return WrongType(key, "a boolean");
  *out = j[key].get<bool>();
  return std::nullopt;
}

// Features the API has and we do not: accepted only at their neutral values.
std::optional<ApiError> Unsupported(const json& j) {
  for (const char* key : {"frequency_penalty", "presence_penalty"}) {
    if (j.contains(key) && !j[key].is_null() && !(j[key].is_number() && j[key].get<double>() == 0)) {
      return Invalid(absl::StrCat("'", key, "' is not supported (only 0)"), key);
    }
  }
  for (const char* key : {"logprobs"}) {
    if (j.contains(key) && !j[key].is_null() && !(j[key].is_boolean() && !j[key].get<bool>())) {
      return Invalid(absl::StrCat("'", key, "' is not supported"), key);
    }
  }
  if (j.contains("top_logprobs") && !j["top_logprobs"].is_null() &&
      !(j["top_logprobs"].is_number() && j["top_logprobs"].get<double>() == 0)) {
    return Invalid("'top_logprobs' is not supported", "top_logprobs");
  }
  for (const char* key : {"tools", "functions", "logit_bias"}) {
    if (j.contains(key) && !j[key].is_null() && !j[key].empty()) {
      return Invalid(absl::StrCat("'", key, "' is not supported"), key);
    }
  }
  if (j.contains("response_format") && !j["response_format"].is_null()) {
    const json& rf = j["response_format"];
    // value() would throw on a "type" that is not a string.
    if (!rf.is_object() ||
        (rf.contains("type") && !(rf["type"].is_string() && rf["type"] == "text"))) {
      return Invalid("only response_format {\"type\": \"text\"} is supported", "response_format");
    }
  }
  return std::nullopt;
}

std::optional<ApiError> ParseStop(const json& j, std::vector<std::string>* stop) {
  if (!j.contains("stop") || j["stop"].is_null()) return std::nullopt;
  const json& v = j["stop"];
  if (v.is_string()) {
    stop->push_back(v.get<std::string>());
    return std::nullopt;
  }
  if (!v.is_array()) return WrongType("stop", "a string or an array of strings");
  for (const json& s : v) {
    if (!s.is_string()) return WrongType("stop", "a string or an array of strings");
    stop->push_back(s.get<std::string>());
  }
  return std::nullopt;
}

std::optional<ApiError> ParseGeneration(const json& j, CompletionRequest* out) {
  GenerationParams& g = out->chat.generation;
  std::optional<int64_t> max_tokens, max_completion_tokens, top_k, seed;
  if (auto e = Integer(j, "max_tokens", &max_tokens)) return e;
  if (auto e = Integer(j, "max_completion_tokens", &max_completion_tokens)) return e;
  g.max_new_tokens = max_completion_tokens ? max_completion_tokens : max_tokens;
  if (auto e = Number(j, "temperature", &g.temperature)) return e;
  if (auto e = Number(j, "top_p", &g.top_p)) return e;
  if (auto e = Integer(j, "top_k", &top_k)) return e;
  // vLLM's convention: top_k -1 disables it.
  if (top_k) g.top_k = *top_k == -1 ? 0 : *top_k;
  if (auto e = Number(j, "repetition_penalty", &g.repetition_penalty)) return e;
  if (auto e = Integer(j, "seed", &seed)) return e;
  if (seed) g.seed = static_cast<uint64_t>(*seed);
  if (auto e = Bool(j, "ignore_eos", &g.ignore_eos)) return e;
  return ParseStop(j, &g.stop);
}

std::optional<ApiError> ParseStreaming(const json& j, CompletionRequest* out) {
  if (auto e = Bool(j, "stream", &out->stream)) return e;
  if (j.contains("stream_options") && !j["stream_options"].is_null()) {
    const json& so = j["stream_options"];
    if (!so.is_object()) return WrongType("stream_options", "an object");
    if (auto e = Bool(so, "include_usage", &out->include_usage)) {
      e->param = "stream_options.include_usage";
      return e;
    }
  }
  return Bool(j, "return_token_ids", &out->return_token_ids);
}

json UsageJson(const ChatResult& result) {
  int64_t prompt = 0, completion = 0, cached = 0;
  for (size_t i = 0; i < result.choices.size(); ++i) {
    const ChatUsage& u = result.choices[i].usage;
    // n copies of one prompt: it counts once.
    if (i == 0) {
      prompt = u.prompt_tokens;
      cached = u.cached_prompt_tokens;
    }
    completion += u.completion_tokens;
  }
  return {{"prompt_tokens", prompt},
          {"completion_tokens", completion},
          {"total_tokens", prompt + completion},
          {"prompt_tokens_details", {{"cached_tokens", cached}}}};
}

json ChunkBase(const CompletionRequest& request, const std::string& id, int64_t created,
               const ApiOptions& options) {
  return {{"id", id},
          {"object", "chat.completion.chunk"},
          {"created", created},
          {"model", request.model},
          {"system_fingerprint", options.revision}};
}

const char* ErrorType(int status) {
  switch (status) {
    case 401: return "authentication_error";
    case 403: return "permission_error";
    case 404: return "not_found_error";
    case 429: return "rate_limit_error";
    case 503: return "service_unavailable_error";
    case 504: return "timeout_error";
    default: return status >= 500 ? "server_error" : "invalid_request_error";
  }
}

}  // namespace

ApiError ErrorFromStatus(const absl::Status& status) {
  ApiError e;
  e.message = std::string(status.message());
  const std::optional<int64_t> retry_ms = RetryAfterMs(status);
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange: e.status = 400; break;
    case absl::StatusCode::kUnauthenticated: e.status = 401; break;
    case absl::StatusCode::kPermissionDenied: e.status = 403; break;
    case absl::StatusCode::kNotFound: e.status = 404; break;
    case absl::StatusCode::kResourceExhausted: e.status = retry_ms ? 429 : 413; break;
    case absl::StatusCode::kFailedPrecondition: e.status = 422; break;
    case absl::StatusCode::kUnavailable: e.status = 503; break;
    case absl::StatusCode::kDeadlineExceeded: e.status = 504; break;
    case absl::StatusCode::kUnimplemented: e.status = 501; break;
    case absl::StatusCode::kCancelled: e.status = 499; break;
    default: e.status = 500; break;
  }
  e.type = ErrorType(e.status);
  e.code = absl::AsciiStrToLower(absl::StatusCodeToString(status.code()));
  if (retry_ms) e.retry_after_s = std::max<int64_t>(1, (*retry_ms + 999) / 1000);
  return e;
}

std::string ErrorJson(const ApiError& e) {
  json error = {{"message", e.message},
                {"type", e.type.empty() ? ErrorType(e.status) : e.type},
                {"param", e.param.empty() ? json(nullptr) : json(e.param)},
                {"code", e.code.empty() ? json(nullptr) : json(e.code)}};
  return Dump({{"error", error}});
}

std::optional<ApiError> ParseChatCompletion(absl::string_view body, const ApiOptions& options,
                                            CompletionRequest* out) {
  absl::StatusOr<json> parsed = ::smolserve::json::Parse(body);
  if (!parsed.ok()) {
    return Invalid(absl::StrCat("the request body is not valid JSON: ", parsed.status().message()), "");
  }
  const json& j = *parsed;
  if (!j.is_object()) return Invalid("the request body must be a JSON object", "", 422);
  if (j.contains("model") && !j["model"].is_null()) {
    if (!j["model"].is_string()) return WrongType("model", "a string");
    out->model = j["model"].get<std::string>();
    if (std::find(options.model_ids.begin(), options.model_ids.end(), out->model) ==
        options.model_ids.end()) {
      ApiError e = Invalid(absl::StrCat("The model '", out->model.substr(0, 128),
                                        "' does not exist; this server serves '",
                                        options.model_ids.empty() ? "" : options.model_ids[0], "'"),
                           "model", 404);
      e.type = "not_found_error";
      e.code = "model_not_found";
      return e;
    }
  } else {
    out->model = options.model_ids.empty() ? "" : options.model_ids[0];
  }
  if (!j.contains("messages")) return Invalid("'messages' is missing", "messages");
  Conversation conv;
  if (auto e = ParseMessages(j["messages"], &conv)) return e;
  if (auto e = Unsupported(j)) return e;
  if (auto e = ParseGeneration(j, out)) return e;
  if (auto e = ParseStreaming(j, out)) return e;
  std::optional<int64_t> n;
  if (auto e = Integer(j, "n", &n)) return e;
  out->n = static_cast<int>(n.value_or(1));
  if (n && (*n < 1 || *n > options.max_n)) {
    return Invalid(absl::StrCat("'n' must be in [1, ", options.max_n, "]"), "n");
  }
  for (int i = 0; i < out->n; ++i) out->chat.prepare.conversations.push_back(conv);
  out->chat.prepare.batched = out->n > 1;
  out->chat.distinct_seeds = out->n > 1;
  return std::nullopt;
}

std::string CompletionJson(const CompletionRequest& request, const ChatResult& result,
                           const std::string& id, int64_t created, const ApiOptions& options) {
  json choices = json::array();
  for (const ChatChoice& c : result.choices) {
    json choice = {{"index", c.index},
                   {"message", {{"role", "assistant"}, {"content", c.text}}},
                   {"logprobs", nullptr},
                   {"finish_reason", std::string(FinishReasonName(c.finish_reason))}};
    if (request.return_token_ids) choice["token_ids"] = c.token_ids;
    choices.push_back(std::move(choice));
  }
  return Dump({{"id", id},
               {"object", "chat.completion"},
               {"created", created},
               {"model", request.model},
               {"system_fingerprint", options.revision},
               {"choices", std::move(choices)},
               {"usage", UsageJson(result)}});
}

std::string ChunkJson(const CompletionRequest& request, const std::string& id, int64_t created,
                      int index, const TokenDelta& delta, bool first, const ApiOptions& options) {
  json j = ChunkBase(request, id, created, options);
  json d = {{"content", delta.text}};
  if (first) d["role"] = "assistant";
  json choice = {{"index", index}, {"delta", std::move(d)}, {"logprobs", nullptr},
                 {"finish_reason", nullptr}};
  if (request.return_token_ids) choice["token_ids"] = delta.token_ids;
  j["choices"] = json::array({std::move(choice)});
  return Dump(j);
}

std::string FinishChunkJson(const CompletionRequest& request, const std::string& id,
                            int64_t created, const ChatChoice& c, const ApiOptions& options) {
  json j = ChunkBase(request, id, created, options);
  j["choices"] = json::array({{{"index", c.index},
                               {"delta", json::object()},
                               {"logprobs", nullptr},
                               {"finish_reason", std::string(FinishReasonName(c.finish_reason))}}});
  return Dump(j);
}

std::string UsageChunkJson(const CompletionRequest& request, const ChatResult& result,
                           const std::string& id, int64_t created, const ApiOptions& options) {
  json j = ChunkBase(request, id, created, options);
  j["choices"] = json::array();
  j["usage"] = UsageJson(result);
  return Dump(j);
}

std::string ModelsJson(const ApiOptions& options, int64_t created, const ServedRevisions& served) {
  json data = json::array();
  for (const std::string& m : options.model_ids) {
    json model = {{"id", m},
                  {"object", "model"},
                  {"created", created},
                  {"owned_by", "smolserve"},
                  {"revision", options.revision}};
    json stages = json::object();
    if (!served.vision.empty()) stages["vision"] = served.vision;
    if (!served.decoder.empty()) stages["decoder"] = served.decoder;
    if (!stages.empty()) model["served_revisions"] = std::move(stages);
    data.push_back(std::move(model));
  }
  return Dump({{"object", "list"}, {"data", std::move(data)}});
}

}  // namespace smolserve::preprocess::openai
