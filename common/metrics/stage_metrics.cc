#include "common/metrics/stage_metrics.h"

#include "absl/strings/str_cat.h"

namespace smolserve::metrics {
namespace {

using prometheus::Histogram;

// vLLM's bucket layouts.
const Histogram::BucketBoundaries kTtftBuckets = {
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75,
    1.0,   2.5,   5.0,  7.5,  10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0};
const Histogram::BucketBoundaries kItlBuckets = {0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2,
                                                 0.3,  0.4,   0.5,  0.75,  1.0, 2.5,  5.0,
                                                 7.5,  10.0,  20.0, 40.0,  80.0};
const Histogram::BucketBoundaries kLatencyBuckets = {
    0.3,  0.5,  0.8,  1.0,  1.5,   2.0,   2.5,   5.0,   10.0,  15.0,  20.0,
    30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0};
// Our own: media decode and encode times, tile/frame counts, batch sizes.
const Histogram::BucketBoundaries kStepBuckets = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                                  1.0,   2.5,  5.0,   10.0, 25.0, 60.0};
const Histogram::BucketBoundaries kCountBuckets = {1, 2, 4, 8, 13, 17, 26, 34, 51, 64, 128, 256};

constexpr const char* kHttpRoutes[] = {"chat_completions", "models", "health", "other"};
constexpr const char* kHttpCodes[] = {"200", "400", "401", "403", "404", "405", "408", "413",
                                      "422", "429", "500", "503", "504", "other"};
constexpr const char* kTenantOutcomes[] = {"admitted", "rate_limited", "concurrency_limited"};

const char* StageName(Stage s) {
  switch (s) {
    case Stage::kPreprocess: return "preprocess";
    case Stage::kVision: return "vision";
    case Stage::kDecoder: return "decoder";
  }
  return "?";
}

}  // namespace

StageMetrics::StageMetrics(Stage stage, prometheus::Registry& r) {
  const prometheus::Labels labels = {{"stage", StageName(stage)}};
  auto hist = [&](const std::string& name, const std::string& help,
                  const Histogram::BucketBoundaries& buckets) {
    return &prometheus::BuildHistogram().Name("smolserve:" + name).Help(help).Labels(labels)
                .Register(r).Add({}, buckets);
  };
  auto gauge = [&](const std::string& name, const std::string& help) {
    return &prometheus::BuildGauge().Name("smolserve:" + name).Help(help).Labels(labels)
                .Register(r).Add({});
  };
  auto counter = [&](const std::string& name, const std::string& help) {
    return &prometheus::BuildCounter().Name("smolserve:" + name).Help(help).Labels(labels)
                .Register(r).Add({});
  };
  e2e_request_latency = hist("e2e_request_latency_seconds",
                             "Request latency from arrival at this stage to its last byte.", kLatencyBuckets);
  request_queue_time = hist("request_queue_time_seconds",
                            "Time a request waited in this stage's queue.", kLatencyBuckets);
  num_requests_running = gauge("num_requests_running", "Requests being processed.");
  num_requests_waiting = gauge("num_requests_waiting", "Requests waiting in the queue.");
  queue_depth = gauge("queue_depth", "Depth of this stage's bounded work queue.");
  success_ = &prometheus::BuildCounter().Name("smolserve:request_success_total")
                  .Help("Requests finished successfully, by finish reason.").Labels(labels).Register(r);
  failure_ = &prometheus::BuildCounter().Name("smolserve:request_failure_total")
                  .Help("Requests failed, by gRPC status code.").Labels(labels).Register(r);
  for (const char* reason : {"stop", "length", "cancelled", "ok"}) {
    success_children_[reason] = &success_->Add({{"finished_reason", reason}});
  }
  for (int code = 1; code <= 16; ++code) {
    failure_children_[code] =
        &failure_->Add({{"code", absl::StatusCodeToString(static_cast<absl::StatusCode>(code))}});
  }
  if (stage != Stage::kVision) {
    time_to_first_token = hist("time_to_first_token_seconds",
                               "Time from request arrival to its first generated token.", kTtftBuckets);
  }
  switch (stage) {
    case Stage::kDecoder:
      inter_token_latency = hist("inter_token_latency_seconds",
                                 "Time between consecutive generated tokens of a request.", kItlBuckets);
      prompt_tokens = counter("prompt_tokens_total", "Prompt tokens prefilled.");
      generation_tokens = counter("generation_tokens_total", "Tokens generated.");
      prefix_cache_queries = counter("prefix_cache_queries_total",
                                     "Prompt tokens looked up in the prefix cache.");
      prefix_cache_hits = counter("prefix_cache_hits_total",
                                  "Prompt tokens whose KV cache was reused from the prefix cache.");
      break;
    case Stage::kPreprocess: {
      auto& decode = prometheus::BuildHistogram().Name("smolserve:media_decode_seconds")
                         .Help("Media decoding and resizing time per item, by kind.")
                         .Labels(labels).Register(r);
      media_decode_image = &decode.Add({{"kind", "image"}}, kStepBuckets);
      media_decode_video = &decode.Add({{"kind", "video"}}, kStepBuckets);
      tiles_per_request = hist("tiles_per_request", "Image tiles (incl. global images) per request.", kCountBuckets);
      frames_per_request = hist("frames_per_request", "Video frames sampled per request.", kCountBuckets);
      embedding_bytes_received = counter("embedding_bytes_received_total",
                                         "Image-embedding bytes received from the vision stage.");
      media_cache_hits = counter("media_cache_hits_total",
                                 "Media items answered from the front's media cache (not decoded or encoded).");
      media_cache_misses = counter("media_cache_misses_total",
                                   "Media items not in the front's media cache (decoded and encoded).");
      media_cache_bytes = gauge("media_cache_bytes", "Bytes held by the front's media cache.");
      http_requests_ = &prometheus::BuildCounter().Name("smolserve:http_requests_total")
                            .Help("HTTP API requests, by route and HTTP status.").Labels(labels).Register(r);
      http_duration_ = &prometheus::BuildHistogram().Name("smolserve:http_request_duration_seconds")
                            .Help("HTTP API request duration (to the last byte), by route.")
                            .Labels(labels).Register(r);
      for (const char* route : kHttpRoutes) {
        for (const char* code : kHttpCodes) {
          http_children_[{route, code}] = &http_requests_->Add({{"route", route}, {"code", code}});
        }
        http_duration_children_[route] = &http_duration_->Add({{"route", route}}, kLatencyBuckets);
      }
      auth_failures = counter("auth_failures_total", "Requests refused for a missing or wrong API key.");
      tenant_requests_ = &prometheus::BuildCounter().Name("smolserve:tenant_requests_total")
                              .Help("Requests by tenant and admission outcome.").Labels(labels).Register(r);
      DeclareTenants({});
      break;
    }
    case Stage::kVision:
      vision_encode = hist("vision_encode_seconds", "Vision encoder + connector time per model call (one batch of tiles).", kStepBuckets);
      tiles_encoded = counter("tiles_encoded_total", "Tiles encoded.");
      vision_batch_size = hist("vision_batch_size", "Tiles per encoder batch.", kCountBuckets);
      tiles_in_flight = gauge("tiles_in_flight", "Tiles queued or being encoded.");
      embedding_bytes_sent = counter("embedding_bytes_sent_total", "Image-embedding bytes sent.");
      cache_hits = counter("embedding_cache_hits_total", "Tiles answered from the embedding cache.");
      cache_misses = counter("embedding_cache_misses_total", "Tiles that had to be encoded.");
      break;
  }
}

void StageMetrics::RecordSuccess(const std::string& finished_reason) {
  auto it = success_children_.find(finished_reason);
  if (it != success_children_.end()) it->second->Increment();
}

void StageMetrics::RecordFailure(absl::StatusCode code) {
  const int c = static_cast<int>(code);
  if (c >= 1 && c <= 16) failure_children_[c]->Increment();
}

void StageMetrics::RecordHttp(const std::string& route, int status, double seconds) {
  if (http_requests_ == nullptr) return;
  const std::string r = http_duration_children_.count(route) ? route : "other";
  auto it = http_children_.find({r, std::to_string(status)});
  if (it == http_children_.end()) it = http_children_.find({r, "other"});
  it->second->Increment();
  http_duration_children_[r]->Observe(seconds);
}

void StageMetrics::DeclareTenants(const std::vector<std::string>& tenants) {
  if (tenant_requests_ == nullptr) return;
  std::vector<std::string> names = tenants;
  if (names.empty()) names.push_back("anonymous");
  names.push_back("other");
  for (const std::string& t : names) {
    for (const char* outcome : kTenantOutcomes) {
      if (tenant_children_.count({t, outcome})) continue;
      tenant_children_[{t, outcome}] = &tenant_requests_->Add({{"tenant", t}, {"outcome", outcome}});
    }
  }
}

void StageMetrics::RecordTenant(const std::string& tenant, const std::string& outcome) {
  if (tenant_requests_ == nullptr) return;
  auto it = tenant_children_.find({tenant.empty() ? "anonymous" : tenant, outcome});
  if (it == tenant_children_.end()) it = tenant_children_.find({"other", outcome});
  if (it != tenant_children_.end()) it->second->Increment();
}

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(const std::string& bind_address) {
  auto s = std::unique_ptr<MetricsServer>(new MetricsServer());
  s->registry_ = std::make_shared<prometheus::Registry>();
  try {
    s->exposer_ = std::make_unique<prometheus::Exposer>(bind_address);
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat("metrics: cannot listen on ", bind_address, ": ", e.what()));
  }
  s->exposer_->RegisterCollectable(s->registry_);
  const auto ports = s->exposer_->GetListeningPorts();
  s->port_ = ports.empty() ? 0 : ports[0];
  return s;
}

}  // namespace smolserve::metrics
