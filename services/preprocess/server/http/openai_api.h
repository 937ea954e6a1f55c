// OpenAI's chat-completions API <-> the chat pipeline's core types. Pure functions: JSON in,
// core request out; core results in, JSON out. All JSON of the HTTP API is built and parsed
// here, with a JSON library (bodies with a nesting-depth bound).
//
// Request: model, messages (string content or parts: text, image_url {url}, video_url {url} —
// URLs as data:, http(s): and, when the server allows paths, file:), max_tokens /
// max_completion_tokens, temperature, top_p, seed, stop, n, stream, stream_options
// .include_usage, and the extensions top_k, repetition_penalty, ignore_eos and
// return_token_ids. Fields the SDKs commonly send with neutral values (frequency_penalty 0,
// logprobs false, tool_choice "none", response_format text, user, metadata, ...) are accepted
// and ignored; any other unknown field is ignored; a feature asked for that is not supported
// (tools, logprobs, penalties != 0, JSON mode) is a clear 400.
#ifndef SMOLSERVE_SERVICES_PREPROCESS_SERVER_HTTP_OPENAI_API_H_
#define SMOLSERVE_SERVICES_PREPROCESS_SERVER_HTTP_OPENAI_API_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "services/preprocess/core/chat_pipeline.h"
#include "services/preprocess/core/request.h"

namespace smolserve::preprocess::openai {

// An error as the API returns it: {"error": {"message", "type", "param", "code"}} with
// `status` as the HTTP status. retry_after_s > 0 adds a Retry-After header.
struct ApiError {
  int status = 400;
  std::string type = "invalid_request_error";
  std::string message;
  std::string param;  // "" -> null
  std::string code;   // "" -> null
  int64_t retry_after_s = 0;
};

// How a pipeline status reaches a client: INVALID_ARGUMENT / OUT_OF_RANGE 400,
// UNAUTHENTICATED 401, PERMISSION_DENIED 403, NOT_FOUND 404, RESOURCE_EXHAUSTED 429 with
// Retry-After when it carries a retry hint (load) and 413 without one (the request is over a
// size limit), FAILED_PRECONDITION 422, UNAVAILABLE 503, DEADLINE_EXCEEDED 504,
// UNIMPLEMENTED 501, the rest 500.
ApiError ErrorFromStatus(const absl::Status& status);
std::string ErrorJson(const ApiError& error);

struct ApiOptions {
  std::vector<std::string> model_ids;  // served names; the first is the canonical one
  std::string revision;                // reported as system_fingerprint and by /v1/models
  int max_n = 8;
  int64_t max_body_bytes = 64 << 20;   // for the error message only (the server enforces it)
};

struct CompletionRequest {
  ChatRequest chat;
  std::string model;  // as requested (a served name)
  int n = 1;
  bool stream = false;
  bool include_usage = false;
  bool return_token_ids = false;
};

// Fills `out`, or returns the error: 400 (not JSON, nested too deep, bad values, unsupported
// features), 422 (well-formed JSON of the wrong shape or types), 404 (unknown model) — each
// naming the param. n > 1 becomes n copies of the conversation (each its own seed + i).
std::optional<ApiError> ParseChatCompletion(absl::string_view body, const ApiOptions& options,
                                            CompletionRequest* out);

// Responses. `id` is the response id ("chatcmpl-..."), `created` Unix seconds.
std::string CompletionJson(const CompletionRequest& request, const ChatResult& result,
                           const std::string& id, int64_t created, const ApiOptions& options);
// One streamed chunk with a piece of choice `index` (role "assistant" on its first chunk).
std::string ChunkJson(const CompletionRequest& request, const std::string& id, int64_t created,
                      int index, const TokenDelta& delta, bool first, const ApiOptions& options);
// The chunk that closes choice `index` with its finish reason.
std::string FinishChunkJson(const CompletionRequest& request, const std::string& id,
                            int64_t created, const ChatChoice& choice, const ApiOptions& options);
// The last chunk when stream_options.include_usage: no choices, the usage.
std::string UsageChunkJson(const CompletionRequest& request, const ChatResult& result,
                           const std::string& id, int64_t created, const ApiOptions& options);
// GET /v1/models: each model id with `revision` (options.revision: the front's model files) and,
// once the stages have answered, `served_revisions` {vision, decoder}: the weight revisions
// (common/model/model_revision.h) of their latest answers.
std::string ModelsJson(const ApiOptions& options, int64_t created, const ServedRevisions& served);

}  // namespace smolserve::preprocess::openai

#endif  // SMOLSERVE_SERVICES_PREPROCESS_SERVER_HTTP_OPENAI_API_H_
