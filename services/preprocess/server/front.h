// Everything the front process serves, built once from options, so that the stage binary and
// the in-process stages of `smolvlm bench` assemble it the same way: the preprocessor, the
// media cache, the media URL fetcher, the stage clients over gRPC channels (optionally mutual
// TLS), the request workers and the conversation pool, the chat pipeline, admission (API keys,
// tenant limits), the gRPC service, and the HTTP API when asked for.
#ifndef SMOLSERVE_SERVICES_PREPROCESS_SERVER_FRONT_H_
#define SMOLSERVE_SERVICES_PREPROCESS_SERVER_FRONT_H_

#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "common/auth/tenant_limiter.h"
#include "common/concurrency/bounded_executor.h"
#include "common/concurrency/byte_budget.h"
#include "common/grpc/server_runner.h"
#include "common/metrics/stage_metrics.h"
#include "common/net/url_fetcher.h"
#include "services/preprocess/core/admission.h"
#include "services/preprocess/core/chat_pipeline.h"
#include "services/preprocess/core/media_cache.h"
#include "services/preprocess/core/preprocessor.h"
#include "services/preprocess/server/downstream_health.h"
#include "services/preprocess/server/front_service.h"
#include "services/preprocess/server/grpc_stage_clients.h"
#include "services/preprocess/server/http/http_api.h"
#include "services/preprocess/server/http/http_server.h"

namespace smolserve::preprocess {

struct FrontOptions {
  PreprocessorOptions preprocessor;  // model folder and media limits
  ChatPipelineOptions pipeline;      // generation limits, request bounds, server-side paths
  FrontServiceOptions service;       // default deadline
  int workers = 32;                  // requests run at once (threads that mostly wait)
  int max_queue = 32;                // requests waiting beyond those; more are refused
  int conversation_threads = 16;     // conversations of batch requests run at once
  int64_t media_cache_bytes = int64_t{256} << 20;  // 0: no media cache
  // Pixel memory of all requests in flight (decoded tiles and pixel tensors); a request that
  // would go over it is refused with a retry hint. 0: unbounded.
  int64_t media_memory_bytes = int64_t{2} << 30;
  std::optional<net::UrlFetchPolicy> url_fetch;    // nullopt: media URLs are refused
  std::string api_keys_file;         // empty: no API keys
  auth::TenantLimits tenant_limits;
  std::string vision_target;
  std::string decoder_target;
  grpc_util::ChannelOptions channel;  // message size, downstream (mutual) TLS
  absl::Duration health_interval = absl::Seconds(2);  // downstream health checks
  std::optional<http::HttpServerOptions> http;        // nullopt: no HTTP API
  HttpApiOptions http_api;                            // model ids, revision, bounds
};

class Front {
 public:
  // Builds everything and starts the HTTP API (when asked for); fails on a bad model folder,
  // keys file, TLS file, URL policy or HTTP address. `on_health` (may be empty) hears when the
  // downstream stages become ready or not (from the checking thread).
  static absl::StatusOr<std::unique_ptr<Front>> Create(
      const FrontOptions& options, metrics::StageMetrics* metrics,
      std::function<void(bool ready, const std::string& why)> on_health = {});
  ~Front();  // Shutdown(0)

  FrontService* grpc_service() { return service_.get(); }
  const ChatPipeline& pipeline() const { return *pipeline_; }
  Admission& admission() { return *admission_; }
  BoundedExecutor& executor() { return *executor_; }
  int http_port() const { return http_ != nullptr ? http_->port() : -1; }
  bool downstream_ready() const { return health_ != nullptr && health_->ready(); }
  // Stops taking HTTP requests, waits up to `grace` for those being answered, then lets the
  // queued and running requests finish.
  void Shutdown(absl::Duration grace = absl::ZeroDuration());

 private:
  Front() = default;
  std::unique_ptr<ByteBudget> media_budget_;
  std::unique_ptr<Preprocessor> preprocessor_;
  std::unique_ptr<MediaCache> media_cache_;
  std::unique_ptr<net::UrlFetcher> url_fetcher_;
  std::unique_ptr<GrpcVisionClient> vision_;
  std::unique_ptr<GrpcDecoderClient> decoder_;
  std::unique_ptr<BoundedExecutor> conversation_pool_;
  std::unique_ptr<ChatPipeline> pipeline_;
  std::unique_ptr<Admission> admission_;
  std::unique_ptr<BoundedExecutor> executor_;
  std::unique_ptr<FrontService> service_;
  std::unique_ptr<DownstreamHealth> health_;
  std::unique_ptr<HttpApi> http_api_;
  std::unique_ptr<http::HttpServer> http_;
};

}  // namespace smolserve::preprocess

#endif  // SMOLSERVE_SERVICES_PREPROCESS_SERVER_FRONT_H_
