// Prometheus metrics of one stage, with vLLM's names and bucket layouts where the meaning
// is the same, under the "smolserve:" prefix. Every series carries the constant label
// stage="preprocess|vision|decoder". Families are built once at start-up; the hot path only
// observes/increments pre-created children (labels are bounded: finished_reason, code, kind).
#ifndef SMOLSERVE_COMMON_METRICS_STAGE_METRICS_H_
#define SMOLSERVE_COMMON_METRICS_STAGE_METRICS_H_

#include <array>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace smolserve::metrics {

enum class Stage { kPreprocess, kVision, kDecoder };

class StageMetrics {
 public:
  StageMetrics(Stage stage, prometheus::Registry& registry);

  // Common request metrics (every stage).
  prometheus::Histogram* e2e_request_latency = nullptr;  // seconds
  prometheus::Histogram* request_queue_time = nullptr;   // seconds
  prometheus::Gauge* num_requests_running = nullptr;
  prometheus::Gauge* num_requests_waiting = nullptr;
  prometheus::Gauge* queue_depth = nullptr;
  void RecordSuccess(const std::string& finished_reason);  // "stop", "length", "cancelled", "ok"
  void RecordFailure(absl::StatusCode code);

  // Front and decoder.
  prometheus::Histogram* time_to_first_token = nullptr;
  // Decoder.
  prometheus::Histogram* inter_token_latency = nullptr;
  prometheus::Counter* prompt_tokens = nullptr;
  prometheus::Counter* generation_tokens = nullptr;
  prometheus::Counter* prefix_cache_queries = nullptr;  // prompt tokens looked up
  prometheus::Counter* prefix_cache_hits = nullptr;     // of which reused from the prefix cache
  // Front (preprocess).
  prometheus::Histogram* media_decode_image = nullptr;
  prometheus::Histogram* media_decode_video = nullptr;
  prometheus::Histogram* tiles_per_request = nullptr;
  prometheus::Histogram* frames_per_request = nullptr;
  prometheus::Counter* embedding_bytes_received = nullptr;
  prometheus::Counter* media_cache_hits = nullptr;    // media items
  prometheus::Counter* media_cache_misses = nullptr;
  prometheus::Gauge* media_cache_bytes = nullptr;
  // Front: the HTTP API (route: chat_completions, models, health, other; code: the HTTP
  // status, "other" beyond the usual ones) and admission (API keys, tenant limits).
  void RecordHttp(const std::string& route, int status, double seconds);
  prometheus::Counter* auth_failures = nullptr;
  // Tenants are a bounded label set: those declared here (the keys file's; "anonymous"
  // without keys); any other name counts as "other". Call before serving.
  void DeclareTenants(const std::vector<std::string>& tenants);
  // outcome: "admitted", "rate_limited", "concurrency_limited".
  void RecordTenant(const std::string& tenant, const std::string& outcome);
  // Vision.
  prometheus::Histogram* vision_encode = nullptr;
  prometheus::Counter* tiles_encoded = nullptr;
  prometheus::Histogram* vision_batch_size = nullptr;
  prometheus::Gauge* tiles_in_flight = nullptr;
  prometheus::Counter* embedding_bytes_sent = nullptr;
  prometheus::Counter* cache_hits = nullptr;
  prometheus::Counter* cache_misses = nullptr;

 private:
  prometheus::Family<prometheus::Counter>* success_ = nullptr;
  prometheus::Family<prometheus::Counter>* failure_ = nullptr;
  std::map<std::string, prometheus::Counter*> success_children_;
  std::array<prometheus::Counter*, 17> failure_children_{};
  prometheus::Family<prometheus::Counter>* http_requests_ = nullptr;
  prometheus::Family<prometheus::Histogram>* http_duration_ = nullptr;
  prometheus::Family<prometheus::Counter>* tenant_requests_ = nullptr;
  std::map<std::pair<std::string, std::string>, prometheus::Counter*> http_children_;
  std::map<std::string, prometheus::Histogram*> http_duration_children_;
  std::map<std::pair<std::string, std::string>, prometheus::Counter*> tenant_children_;
};

// The /metrics HTTP endpoint of a stage (its own port, separate from gRPC).
class MetricsServer {
 public:
  // "host:port"; port 0 picks a free one.
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(const std::string& bind_address);
  prometheus::Registry& registry() { return *registry_; }
  int port() const { return port_; }

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  int port_ = 0;
};

}  // namespace smolserve::metrics

#endif  // SMOLSERVE_COMMON_METRICS_STAGE_METRICS_H_
