// The chat-completions JSON mapping: what each request field becomes, which errors (status,
// type, param) bad requests get, and the shape of answers and stream chunks.
#include "services/preprocess/server/http/openai_api.h"

#include "common/status/retry_after.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace smolserve::preprocess::openai {
namespace {

using nlohmann::json;

ApiOptions Options() {
  ApiOptions o;
  o.model_ids = {"HuggingFaceTB/SmolVLM2-256M-Video-Instruct", "smolvlm"};
  o.revision = "abc123";
  o.max_n = 4;
  return o;
}

std::optional<ApiError> Parse(const json& body, CompletionRequest* out) {
  return ParseChatCompletion(body.dump(), Options(), out);
}

json Image(const std::string& url) {
  return {{"role", "user"},
          {"content", {{{"type", "text"}, {"text", "What is it?"}},
                       {{"type", "image_url"}, {"image_url", {{"url", url}, {"detail", "auto"}}}}}}};
}

TEST(OpenAiApi, MapsTheRequest) {
  CompletionRequest r;
  json body = {{"model", "smolvlm"},
               {"messages", {{{"role", "system"}, {"content", "Be brief."}}, Image("data:image/png;base64,AAAA")}},
               {"max_tokens", 10},
               {"max_completion_tokens", 12},
               {"temperature", 0.5},
               {"top_p", 0.9},
               {"top_k", -1},
               {"repetition_penalty", 1.1},
               {"seed", 42},
               {"stop", {"\n\n", "END"}},
               {"stream", true},
               {"stream_options", {{"include_usage", true}}},
               {"frequency_penalty", 0},
               {"presence_penalty", 0},
               {"logprobs", false},
               {"user", "someone"},
               {"metadata", {{"a", "b"}}},
               {"tool_choice", "none"},
               {"response_format", {{"type", "text"}}},
               {"some_future_field", {1, 2, 3}}};
  ASSERT_FALSE(Parse(body, &r)) << Parse(body, &r)->message;
  EXPECT_EQ(r.model, "smolvlm");
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
  const GenerationParams& g = r.chat.generation;
  EXPECT_EQ(*g.max_new_tokens, 12);  // max_completion_tokens wins
  EXPECT_DOUBLE_EQ(*g.temperature, 0.5);
  EXPECT_DOUBLE_EQ(*g.top_p, 0.9);
  EXPECT_EQ(*g.top_k, 0);
  EXPECT_DOUBLE_EQ(*g.repetition_penalty, 1.1);
  EXPECT_EQ(*g.seed, 42u);
  EXPECT_EQ(g.stop, (std::vector<std::string>{"\n\n", "END"}));
  ASSERT_EQ(r.chat.prepare.conversations.size(), 1u);
  const Conversation& c = r.chat.prepare.conversations[0];
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0].role, "system");
  EXPECT_EQ(c[0].content[0].text, "Be brief.");
  ASSERT_EQ(c[1].content.size(), 2u);
  EXPECT_EQ(c[1].content[1].type, ContentItem::Type::kImage);
  EXPECT_EQ(c[1].content[1].source.kind, MediaSource::Kind::kUrl);
  EXPECT_EQ(c[1].content[1].source.value, "data:image/png;base64,AAAA");
}

TEST(OpenAiApi, VideoUrlsDeveloperRoleAndDefaults) {
  CompletionRequest r;
  json body = {{"messages", {{{"role", "developer"}, {"content", "x"}},
                             {{"role", "user"},
                              {"content", {{{"type", "video_url"}, {"video_url", {{"url", "https://e.com/v.mp4"}}}}}}}}}};
  ASSERT_FALSE(Parse(body, &r));
  EXPECT_EQ(r.model, "HuggingFaceTB/SmolVLM2-256M-Video-Instruct");
  EXPECT_FALSE(r.stream);
  EXPECT_EQ(r.n, 1);
  EXPECT_EQ(r.chat.prepare.conversations[0][0].role, "system");
  EXPECT_EQ(r.chat.prepare.conversations[0][1].content[0].type, ContentItem::Type::kVideo);
  EXPECT_FALSE(r.chat.generation.max_new_tokens.has_value());
}

TEST(OpenAiApi, NBecomesCopiesWithDistinctSeeds) {
  CompletionRequest r;
  ASSERT_FALSE(Parse({{"messages", {Image("data:,x")}}, {"n", 3}}, &r));
  EXPECT_EQ(r.n, 3);
  EXPECT_EQ(r.chat.prepare.conversations.size(), 3u);
  EXPECT_TRUE(r.chat.distinct_seeds);
}

struct BadCase {
  json body;
  int status;
  std::string param;
};

TEST(OpenAiApi, RefusesBadRequestsWithStatusAndParam) {
  const json ok_messages = {{{"role", "user"}, {"content", "hi"}}};
  std::vector<BadCase> cases = {
      {{{"model", "gpt-4o"}, {"messages", ok_messages}}, 404, "model"},
      {{{"model", 7}, {"messages", ok_messages}}, 422, "model"},
      {json::object(), 400, "messages"},
      {{{"messages", "hi"}}, 422, "messages"},
      {{{"messages", json::array()}}, 400, "messages"},
      {{{"messages", {{{"role", "tool"}, {"content", "x"}}}}}, 400, "messages[0].role"},
      {{{"messages", {{{"role", "user"}}}}}, 400, "messages[0].content"},
      {{{"messages", {{{"role", "user"}, {"content", 5}}}}}, 422, "messages[0].content"},
      {{{"messages", {{{"role", "user"}, {"content", {{{"type", "input_audio"}}}}}}}}, 400,
       "messages[0].content[0].type"},
      {{{"messages", {{{"role", "user"}, {"content", {{{"type", "image_url"}, {"image_url", 5}}}}}}}}, 422,
       "messages[0].content[0].image_url"},
      {{{"messages", ok_messages}, {"max_tokens", "10"}}, 422, "max_tokens"},
      {{{"messages", ok_messages}, {"temperature", "hot"}}, 422, "temperature"},
      {{{"messages", ok_messages}, {"stream", "yes"}}, 422, "stream"},
      {{{"messages", ok_messages}, {"stop", 3}}, 422, "stop"},
      {{{"messages", ok_messages}, {"n", 9}}, 400, "n"},
      {{{"messages", ok_messages}, {"n", 0}}, 400, "n"},
      {{{"messages", ok_messages}, {"logprobs", true}}, 400, "logprobs"},
      {{{"messages", ok_messages}, {"frequency_penalty", 0.5}}, 400, "frequency_penalty"},
      {{{"messages", ok_messages}, {"tools", {{{"type", "function"}}}}}, 400, "tools"},
      {{{"messages", ok_messages}, {"response_format", {{"type", "json_object"}}}}, 400, "response_format"},
      // Found with tests/fuzz/openai_api_fuzzer: a "type" that is not a string threw a
      // json::type_error out of ParseChatCompletion (the HTTP API then leaked its in-flight slot).
      {{{"messages", ok_messages}, {"response_format", {{"type", 1}}}}, 400, "response_format"},
      {{{"messages", ok_messages}, {"response_format", {{"type", nullptr}}}}, 400, "response_format"},
      {{{"messages", ok_messages}, {"stream_options", {{"include_usage", 1}}}}, 422,
       "stream_options.include_usage"},
  };
  for (const BadCase& c : cases) {
    CompletionRequest r;
    auto e = Parse(c.body, &r);
    ASSERT_TRUE(e.has_value()) << c.body.dump();
    EXPECT_EQ(e->status, c.status) << c.body.dump() << " -> " << e->message;
    EXPECT_EQ(e->param, c.param) << c.body.dump() << " -> " << e->message;
    const json j = json::parse(ErrorJson(*e));
    EXPECT_EQ(j["error"]["message"], e->message);
    EXPECT_TRUE(j["error"]["type"].is_string());
    EXPECT_TRUE(j["error"].contains("param") && j["error"].contains("code"));
  }
}

TEST(OpenAiApi, RefusesBodiesThatAreNotJsonOrTooDeep) {
  CompletionRequest r;
  auto e = ParseChatCompletion("{\"messages\": [", Options(), &r);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->status, 400);
  e = ParseChatCompletion(std::string(100000, '[') + std::string(100000, ']'), Options(), &r);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->status, 400);
  EXPECT_NE(e->message.find("nested deeper"), std::string::npos) << e->message;
  e = ParseChatCompletion("[1, 2]", Options(), &r);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->status, 422);
  // Found by tests/fuzz/request_fuzzer (common/json/parse.cc): a number beyond double's range
  // escaped the parser as an exception.
  e = ParseChatCompletion(R"({"messages": [{"role": "user", "content": "x"}], "max_tokens": 1e999})",
                          Options(), &r);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->status, 400);
  EXPECT_NE(e->message.find("not valid JSON"), std::string::npos) << e->message;
}

TEST(OpenAiApi, MapsPipelineStatusesToHttp) {
  struct Case {
    absl::Status status;
    int http;
  };
  for (const Case& c : std::vector<Case>{
           {absl::InvalidArgumentError("x"), 400},
           {absl::UnauthenticatedError("x"), 401},
           {absl::PermissionDeniedError("x"), 403},
           {absl::NotFoundError("x"), 404},
           {absl::ResourceExhaustedError("too many images"), 413},
           {WithRetryAfter(absl::ResourceExhaustedError("queue full"), 1500), 429},
           {absl::FailedPreconditionError("x"), 422},
           {absl::UnavailableError("x"), 503},
           {absl::DeadlineExceededError("x"), 504},
           {absl::InternalError("x"), 500}}) {
    ApiError e = ErrorFromStatus(c.status);
    EXPECT_EQ(e.status, c.http) << c.status;
    if (c.http == 429) EXPECT_EQ(e.retry_after_s, 2);
  }
}

ChatResult Result() {
  ChatResult result;
  for (int i = 0; i < 2; ++i) {
    ChatChoice c;
    c.index = i;
    c.text = i == 0 ? "A cat." : "A dog.";
    c.token_ids = {5, 6, 7};
    c.finish_reason = i == 0 ? FinishReason::kStop : FinishReason::kLength;
    c.usage.prompt_tokens = 100;
    c.usage.completion_tokens = 3;
    c.usage.cached_prompt_tokens = 64;
    result.choices.push_back(c);
  }
  return result;
}

TEST(OpenAiApi, CompletionAndChunks) {
  CompletionRequest r;
  r.model = "smolvlm";
  r.n = 2;
  r.return_token_ids = true;
  const json done = json::parse(CompletionJson(r, Result(), "chatcmpl-1", 1700000000, Options()));
  EXPECT_EQ(done["object"], "chat.completion");
  EXPECT_EQ(done["id"], "chatcmpl-1");
  EXPECT_EQ(done["created"], 1700000000);
  EXPECT_EQ(done["model"], "smolvlm");
  EXPECT_EQ(done["system_fingerprint"], "abc123");
  ASSERT_EQ(done["choices"].size(), 2u);
  EXPECT_EQ(done["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(done["choices"][0]["message"]["content"], "A cat.");
  EXPECT_EQ(done["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(done["choices"][1]["finish_reason"], "length");
  EXPECT_EQ(done["choices"][0]["token_ids"], json({5, 6, 7}));
  EXPECT_EQ(done["usage"]["prompt_tokens"], 100);  // one prompt, n answers
  EXPECT_EQ(done["usage"]["completion_tokens"], 6);
  EXPECT_EQ(done["usage"]["total_tokens"], 106);
  EXPECT_EQ(done["usage"]["prompt_tokens_details"]["cached_tokens"], 64);

  const json first = json::parse(ChunkJson(r, "chatcmpl-1", 1, 1, TokenDelta{{9}, "Hel"}, true, Options()));
  EXPECT_EQ(first["object"], "chat.completion.chunk");
  EXPECT_EQ(first["choices"][0]["index"], 1);
  EXPECT_EQ(first["choices"][0]["delta"]["role"], "assistant");
  EXPECT_EQ(first["choices"][0]["delta"]["content"], "Hel");
  EXPECT_TRUE(first["choices"][0]["finish_reason"].is_null());
  const json next = json::parse(ChunkJson(r, "chatcmpl-1", 1, 0, TokenDelta{{9}, "lo"}, false, Options()));
  EXPECT_FALSE(next["choices"][0]["delta"].contains("role"));
  const json fin = json::parse(FinishChunkJson(r, "chatcmpl-1", 1, Result().choices[0], Options()));
  EXPECT_EQ(fin["choices"][0]["finish_reason"], "stop");
  EXPECT_TRUE(fin["choices"][0]["delta"].empty());
  const json usage = json::parse(UsageChunkJson(r, Result(), "chatcmpl-1", 1, Options()));
  EXPECT_TRUE(usage["choices"].empty());
  EXPECT_EQ(usage["usage"]["total_tokens"], 106);
  const json models = json::parse(ModelsJson(Options(), 5, {}));
  EXPECT_EQ(models["object"], "list");
  EXPECT_EQ(models["data"][0]["id"], "HuggingFaceTB/SmolVLM2-256M-Video-Instruct");
  EXPECT_EQ(models["data"][0]["revision"], "abc123");
  EXPECT_FALSE(models["data"][0].contains("served_revisions"));  // no stage has answered yet
  const json served = json::parse(ModelsJson(Options(), 5, {"rev-v", "rev-d"}));
  EXPECT_EQ(served["data"][0]["served_revisions"]["vision"], "rev-v");
  EXPECT_EQ(served["data"][0]["served_revisions"]["decoder"], "rev-d");
}

TEST(OpenAiApi, InvalidUtf8InTextIsReplacedNotThrown) {
  CompletionRequest r;
  r.model = "m";
  ChatResult result = Result();
  result.choices[0].text = "bad \xff byte";
  const json j = json::parse(CompletionJson(r, result, "id", 1, Options()));
  EXPECT_EQ(j["choices"][0]["message"]["content"].get<std::string>().find('\xff'), std::string::npos);
}

}  // namespace
}  // namespace smolserve::preprocess::openai
