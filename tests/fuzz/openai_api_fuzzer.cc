// A POST /v1/chat/completions body -> what the HTTP API does with it before the pipeline runs:
// openai::ParseChatCompletion, then ChatPipeline::Validate (the checks made before any media is
// read), then every answer builder on what was parsed (a completion, stream chunks, the finish
// and usage chunks, the error body), with answers made of the request's own text.
// Invariants: refusals are 4xx with a JSON error body; n copies of the conversation; every
// answer is valid JSON (UTF-8 included) whatever bytes the client sent.
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "services/preprocess/core/chat_pipeline.h"
#include "services/preprocess/server/http/openai_api.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

using namespace smolserve::preprocess;

void CheckJson(const std::string& text, const char* what) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  FUZZ_CHECK(!j.is_discarded() && j.is_object(), absl::StrCat(what, " is not a JSON object"));
}

const openai::ApiOptions& Options() {
  static const openai::ApiOptions* options = [] {
    auto* o = new openai::ApiOptions();
    o->model_ids = {"HuggingFaceTB/SmolVLM2-256M-Video-Instruct", "smolvlm"};
    o->revision = "fuzz";
    return o;
  }();
  return *options;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view body(reinterpret_cast<const char*>(data), size);
  openai::CompletionRequest request;
  if (auto error = openai::ParseChatCompletion(body, Options(), &request)) {
    FUZZ_CHECK(error->status >= 400 && error->status < 500, absl::StrCat(error->status));
    CheckJson(openai::ErrorJson(*error), "the error body");
    return 0;
  }
  FUZZ_CHECK(request.n >= 1 && request.n <= Options().max_n, "n");
  FUZZ_CHECK(static_cast<int>(request.chat.prepare.conversations.size()) == request.n,
             "one conversation per choice");
  // The pipeline's checks before media: no stage is touched by Validate.
  static const ChatPipeline* pipeline =
      new ChatPipeline(ChatPipelineOptions(), nullptr, nullptr, nullptr, nullptr, nullptr, nullptr);
  ChatContext ctx;
  ctx.transport = "http";
  const absl::Status valid = pipeline->Validate(request.chat, ctx);
  if (!valid.ok()) {
    const openai::ApiError e = openai::ErrorFromStatus(valid);
    FUZZ_CHECK(e.status == 400 || e.status == 413, valid.ToString());
    CheckJson(openai::ErrorJson(e), "the error body");
  }
  // Answers echoing the client's own text (any bytes) and stop strings.
  ChatResult result;
  for (int i = 0; i < request.n; ++i) {
    ChatChoice c;
    c.index = i;
    const auto& conv = request.chat.prepare.conversations[i];
    for (const Message& m : conv) {
      for (const ContentItem& item : m.content) c.text += item.text;
    }
    for (const std::string& s : request.chat.generation.stop) c.text += s;
    c.token_ids = {1, 2, static_cast<int32_t>(c.text.size())};
    c.finish_reason = i % 2 ? smolserve::FinishReason::kStop : smolserve::FinishReason::kLength;
    c.usage.prompt_tokens = static_cast<int64_t>(c.text.size());
    c.usage.completion_tokens = i;
    result.choices.push_back(std::move(c));
  }
  const std::string id = "chatcmpl-fuzz";
  CheckJson(openai::CompletionJson(request, result, id, 1, Options()), "the completion");
  for (const ChatChoice& c : result.choices) {
    smolserve::TokenDelta delta{c.token_ids, c.text};
    CheckJson(openai::ChunkJson(request, id, 1, c.index, delta, true, Options()), "a chunk");
    CheckJson(openai::FinishChunkJson(request, id, 1, c, Options()), "the finish chunk");
  }
  CheckJson(openai::UsageChunkJson(request, result, id, 1, Options()), "the usage chunk");
  CheckJson(openai::ModelsJson(Options(), 1, {request.model, request.model}), "the model list");
  return 0;
}
