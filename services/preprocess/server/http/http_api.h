// The front's OpenAI-compatible HTTP API over the chat pipeline: routes, admission (the same
// API keys and tenant limits as gRPC), a bound on requests in flight, streaming as Server-Sent
// Events, cancellation when the client disconnects, and the HTTP metrics.
//   POST /v1/chat/completions   (openai_api.h)
//   GET  /v1/models             the served model id(s) and revision
//   GET  /health                200 when both downstream stages serve, else 503 (no key needed)
#ifndef SMOLSERVE_SERVICES_PREPROCESS_SERVER_HTTP_HTTP_API_H_
#define SMOLSERVE_SERVICES_PREPROCESS_SERVER_HTTP_HTTP_API_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "absl/time/time.h"
#include "common/concurrency/bounded_executor.h"
#include "common/metrics/stage_metrics.h"
#include "services/preprocess/core/admission.h"
#include "services/preprocess/core/chat_pipeline.h"
#include "services/preprocess/server/http/http_server.h"
#include "services/preprocess/server/http/openai_api.h"

namespace smolserve::preprocess {

struct HttpApiOptions {
  openai::ApiOptions api;
  int max_concurrent = 64;  // chat requests in flight through HTTP; more get 429
  absl::Duration default_deadline = absl::Seconds(600);
};

class HttpApi {
 public:
  // Everything passed must outlive the API. `ready` says whether the downstream stages serve
  // (and why not).
  HttpApi(HttpApiOptions options, const ChatPipeline* pipeline, Admission* admission,
          BoundedExecutor* executor, metrics::StageMetrics* metrics,
          std::function<std::pair<bool, std::string>()> ready);

  // The HttpServer's handler.
  void Handle(http::HttpRequest request, std::shared_ptr<http::Responder> responder);

  // The body of the server's own error answers (413, 408, ...), in the API's error format.
  static std::pair<std::string, std::string> ErrorBody(int status, const std::string& message);

 private:
  struct Call;
  void ChatCompletions(http::HttpRequest request, std::shared_ptr<http::Responder> responder);
  void RunCall(const std::shared_ptr<Call>& call);
  void Answer(const std::shared_ptr<http::Responder>& responder, const std::string& route,
              absl::Time received, int status, std::string body, http::Headers headers = {});
  void Fail(const std::shared_ptr<http::Responder>& responder, const std::string& route,
            absl::Time received, const openai::ApiError& error);

  HttpApiOptions options_;
  const ChatPipeline* pipeline_;
  Admission* admission_;
  BoundedExecutor* executor_;
  metrics::StageMetrics* metrics_;
  std::function<std::pair<bool, std::string>()> ready_;
  std::atomic<int> in_flight_{0};
};

}  // namespace smolserve::preprocess

#endif  // SMOLSERVE_SERVICES_PREPROCESS_SERVER_HTTP_HTTP_API_H_
