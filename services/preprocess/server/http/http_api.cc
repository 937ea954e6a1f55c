#include "services/preprocess/server/http/http_api.h"

#include <random>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "nlohmann/json.hpp"

namespace smolserve::preprocess {
namespace {

constexpr char kJson[] = "application/json";

std::string ResponseId() {
  thread_local std::mt19937_64 rng(std::random_device{}());
  return absl::StrFormat("chatcmpl-%016x%08x", rng(), static_cast<uint32_t>(rng()));
}

openai::ApiError Error(int status, std::string message, std::string code = "") {
  openai::ApiError e;
  e.status = status;
  e.message = std::move(message);
  e.code = std::move(code);
  e.type = "";
  return e;
}

http::Headers RetryHeaders(const openai::ApiError& e) {
  if (e.retry_after_s <= 0) return {};
  return {{"Retry-After", absl::StrCat(e.retry_after_s)}};
}

std::string Sse(const std::string& data) { return absl::StrCat("data: ", data, "\n\n"); }

}  // namespace

// One chat completion in flight: what its task, its deltas and its cancellation share.
struct HttpApi::Call {
  openai::CompletionRequest request;
  ChatContext ctx;
  CancellationToken cancel;
  Admission::Ticket ticket;
  std::shared_ptr<http::Responder> responder;
  absl::Time received;
  std::string id;
  int64_t created = 0;
  bool streaming = false;            // headers sent (task thread only)
  std::vector<bool> started;         // per choice: its first chunk went out
};

HttpApi::HttpApi(HttpApiOptions options, const ChatPipeline* pipeline, Admission* admission,
                 BoundedExecutor* executor, metrics::StageMetrics* metrics,
                 std::function<std::pair<bool, std::string>()> ready)
    : options_(std::move(options)),
      pipeline_(pipeline),
      admission_(admission),
      executor_(executor),
      metrics_(metrics),
      ready_(std::move(ready)) {}

std::pair<std::string, std::string> HttpApi::ErrorBody(int status, const std::string& message) {
  return {kJson, openai::ErrorJson(Error(status, message))};
}

void HttpApi::Answer(const std::shared_ptr<http::Responder>& responder, const std::string& route,
                     absl::Time received, int status, std::string body, http::Headers headers) {
  responder->Respond(status, kJson, std::move(body), std::move(headers));
  if (metrics_ != nullptr) {
    metrics_->RecordHttp(route, status, absl::ToDoubleSeconds(absl::Now() - received));
  }
}

void HttpApi::Fail(const std::shared_ptr<http::Responder>& responder, const std::string& route,
                   absl::Time received, const openai::ApiError& error) {
  Answer(responder, route, received, error.status, openai::ErrorJson(error), RetryHeaders(error));
}

void HttpApi::Handle(http::HttpRequest request, std::shared_ptr<http::Responder> responder) {
  const absl::Time received = absl::Now();
  const std::string& path = request.path;
  if (path == "/health" || path == "/v1/health") {
    const auto [ok, why] = ready_ ? ready_() : std::make_pair(true, std::string());
    nlohmann::json body = {{"status", ok ? "ok" : "unavailable"}, {"downstream", why}};
    return Answer(responder, "health", received, ok ? 200 : 503,
                  body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  }
  if (path == "/v1/chat/completions") {
    if (request.method != "POST") {
      return Fail(responder, "chat_completions", received, Error(405, "use POST"));
    }
    return ChatCompletions(std::move(request), std::move(responder));
  }
  if (path == "/v1/models") {
    if (request.method != "GET") return Fail(responder, "models", received, Error(405, "use GET"));
    absl::StatusOr<Admission::Ticket> ticket = admission_->Admit(request.header("authorization"));
    if (!ticket.ok()) {
      return Fail(responder, "models", received, openai::ErrorFromStatus(ticket.status()));
    }
    return Answer(responder, "models", received, 200,
                  openai::ModelsJson(options_.api, absl::ToUnixSeconds(received),
                                     pipeline_->LatestRevisions()));
  }
  Fail(responder, "other", received,
       Error(404, absl::StrCat("no route for ", request.method, " ", request.path.substr(0, 64)),
             "not_found"));
}

void HttpApi::ChatCompletions(http::HttpRequest request,
                              std::shared_ptr<http::Responder> responder) {
  const absl::Time received = absl::Now();
  const std::string route = "chat_completions";
  absl::StatusOr<Admission::Ticket> ticket = admission_->Admit(request.header("authorization"));
  if (!ticket.ok()) return Fail(responder, route, received, openai::ErrorFromStatus(ticket.status()));
  if (in_flight_.fetch_add(1) >= options_.max_concurrent) {
    in_flight_.fetch_sub(1);
    openai::ApiError e = Error(429, absl::StrCat("too many requests in flight (limit ",
                                                 options_.max_concurrent, ")"));
    e.retry_after_s = 1;
    return Fail(responder, route, received, e);
  }
  auto call = std::make_shared<Call>();
  call->received = received;
  call->responder = responder;
  call->ticket = *std::move(ticket);
  if (auto error = openai::ParseChatCompletion(request.body, options_.api, &call->request)) {
    in_flight_.fetch_sub(1);
    return Fail(responder, route, received, *error);
  }
  call->request.chat.prepare.tenant = call->ticket.tenant;
  call->id = ResponseId();
  call->created = absl::ToUnixSeconds(received);
  call->started.assign(call->request.n, false);
  call->ctx.transport = "http";
  call->ctx.received = std::chrono::steady_clock::now();
  call->ctx.call.cancel = &call->cancel;
  call->ctx.call.deadline = received + options_.default_deadline;
  const std::string client_id = request.header("x-request-id");
  call->ctx.call.request_id = client_id.empty() ? call->id : client_id.substr(0, 128);
  if (absl::Status s = pipeline_->Validate(call->request.chat, call->ctx); !s.ok()) {
    in_flight_.fetch_sub(1);
    return Fail(responder, route, received, openai::ErrorFromStatus(s));
  }
  responder->OnClose([call] { call->cancel.Cancel(); });
  if (!executor_->TrySubmit([this, call] { RunCall(call); })) {
    in_flight_.fetch_sub(1);
    openai::ApiError e = Error(429, "the server is busy; retry shortly");
    e.retry_after_s = 1;
    Fail(responder, route, received, e);
  }
}

void HttpApi::RunCall(const std::shared_ptr<Call>& call) {
  const openai::CompletionRequest& req = call->request;
  auto start_stream = [&] {
    if (call->streaming) return;
    call->streaming = true;
    call->responder->StartStream(200, "text/event-stream",
                                 {{"Cache-Control", "no-cache"}, {"X-Accel-Buffering", "no"}});
  };
  auto sink = [&](int index, const TokenDelta& delta) {
    if (!req.stream) return;
    start_stream();
    const bool first = !call->started[index];
    call->started[index] = true;
    if (!call->responder->Write(Sse(openai::ChunkJson(req, call->id, call->created, index, delta,
                                                      first, options_.api)))) {
      call->cancel.Cancel();  // the client is gone or cannot keep up
    }
  };
  absl::StatusOr<ChatResult> result = pipeline_->Run(req.chat, call->ctx, sink);
  in_flight_.fetch_sub(1);
  if (result.ok()) {  // the API has no partial answers: a failed choice fails the request
    for (const ChatChoice& c : result->choices) {
      if (!c.status.ok()) {
        result = c.status;
        break;
      }
    }
  }
  const std::string route = "chat_completions";
  if (!result.ok()) {
    const openai::ApiError error = openai::ErrorFromStatus(result.status());
    if (!call->streaming) return Fail(call->responder, route, call->received, error);
    call->responder->Write(Sse(openai::ErrorJson(error)));
    call->responder->Write(Sse("[DONE]"));
    call->responder->End();
    if (metrics_ != nullptr) {
      metrics_->RecordHttp(route, 200, absl::ToDoubleSeconds(absl::Now() - call->received));
    }
    return;
  }
  if (!req.stream) {
    return Answer(call->responder, route, call->received, 200,
                  openai::CompletionJson(req, *result, call->id, call->created, options_.api));
  }
  start_stream();
  for (const ChatChoice& c : result->choices) {
    if (!call->started[c.index]) {  // an empty answer still opens with the role
      call->responder->Write(Sse(openai::ChunkJson(req, call->id, call->created, c.index,
                                                   TokenDelta{}, true, options_.api)));
    }
    call->responder->Write(
        Sse(openai::FinishChunkJson(req, call->id, call->created, c, options_.api)));
  }
  if (req.include_usage) {
    call->responder->Write(
        Sse(openai::UsageChunkJson(req, *result, call->id, call->created, options_.api)));
  }
  call->responder->Write(Sse("[DONE]"));
  call->responder->End();
  if (metrics_ != nullptr) {
    metrics_->RecordHttp(route, 200, absl::ToDoubleSeconds(absl::Now() - call->received));
  }
}

}  // namespace smolserve::preprocess
