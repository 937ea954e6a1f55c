#include "services/vision/server/vision_service.h"

#include <chrono>
#include <cstdio>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/grpc/status_util.h"
#include "common/grpc/tensor_proto.h"

namespace smolserve::vision {
namespace {

using Clock = std::chrono::steady_clock;

double Ms(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

absl::Status RunEncode(const VisionModel& model, const v1::EncodeRequest& request,
                       int64_t max_tiles, v1::EncodeResponse* response) {
  auto pixels = grpc_util::TensorFromProto(request.pixel_values(), "pixel_values");
  if (!pixels.ok()) return pixels.status();
  at::Tensor mask;
  if (request.has_pixel_attention_mask()) {
    auto m = grpc_util::TensorFromProto(request.pixel_attention_mask(), "pixel_attention_mask");
    if (!m.ok()) return m.status();
    mask = *m;
  }
  if (pixels->scalar_type() != at::kFloat) {
    return absl::InvalidArgumentError("pixel_values must be float32");
  }
  if (pixels->dim() < 4) return absl::InvalidArgumentError("pixel_values must be [N,3,H,W] or [B,N,3,H,W]");
  const int64_t tiles = pixels->numel() / (pixels->size(-1) * pixels->size(-2) * pixels->size(-3));
  if (tiles > max_tiles) {
    return absl::ResourceExhaustedError(absl::StrCat(tiles, " tiles in one request, over the limit of ", max_tiles));
  }
  try {
    auto out = model.Encode(*pixels, mask);
    if (!out.ok()) return out.status();
    response->set_tiles(static_cast<uint32_t>(out->image_hidden_states.size(0)));
    return grpc_util::TensorToProto(out->image_hidden_states, response->mutable_image_hidden_states());
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("vision model failed: ", e.what_without_backtrace()));
  }
}

}  // namespace

VisionService::VisionService(const VisionServiceOptions& options, metrics::StageMetrics* metrics)
    : options_(options),
      metrics_(metrics),
      executor_(1, options.max_queue, [threads = options.threads] { at::set_num_threads(threads); }) {}

VisionService::~VisionService() { Shutdown(); }

void VisionService::SetModel(std::unique_ptr<VisionModel> model) {
  model_ = std::move(model);
  ready_.store(true);
}

void VisionService::Shutdown() { executor_.Shutdown(); }

::grpc::ServerUnaryReactor* VisionService::Encode(::grpc::CallbackServerContext* context,
                                                  const v1::EncodeRequest* request,
                                                  v1::EncodeResponse* response) {
  auto* reactor = context->DefaultReactor();
  if (!ready_.load()) {
    reactor->Finish(::grpc::Status(::grpc::StatusCode::UNAVAILABLE, "vision: model is loading"));
    return reactor;
  }
  const auto received = Clock::now();
  const auto& pv = request->pixel_values();
  const int64_t tiles = pv.shape_size() >= 4
                            ? pv.shape(0) * (pv.shape_size() == 5 ? pv.shape(1) : 1)
                            : 0;
  metrics_->num_requests_waiting->Increment();
  metrics_->queue_depth->Increment();
  metrics_->tiles_in_flight->Increment(static_cast<double>(tiles));
  const bool accepted = executor_.TrySubmit([this, context, request, response, reactor, received, tiles] {
    const auto started = Clock::now();
    metrics_->num_requests_waiting->Decrement();
    metrics_->queue_depth->Decrement();
    metrics_->num_requests_running->Increment();
    metrics_->request_queue_time->Observe(Ms(received, started) / 1e3);
    absl::Status status;
    if (context->IsCancelled()) {
      status = absl::CancelledError("vision: cancelled by the client");
    } else if (context->deadline() < std::chrono::system_clock::now()) {
      status = absl::DeadlineExceededError("vision: deadline passed while queued");
    } else {
      c10::InferenceMode guard;
      status = RunEncode(*model_, *request, options_.max_tiles_per_request, response);
    }
    const auto done = Clock::now();
    metrics_->num_requests_running->Decrement();
    metrics_->tiles_in_flight->Decrement(static_cast<double>(tiles));
    metrics_->e2e_request_latency->Observe(Ms(received, done) / 1e3);
    if (status.ok()) {
      metrics_->vision_encode->Observe(Ms(started, done) / 1e3);
      metrics_->tiles_encoded->Increment(static_cast<double>(tiles));
      metrics_->cache_misses->Increment(static_cast<double>(tiles));
      metrics_->vision_batch_size->Observe(static_cast<double>(tiles));
      metrics_->embedding_bytes_sent->Increment(
          static_cast<double>(response->image_hidden_states().data().size()));
      metrics_->RecordSuccess("ok");
    } else {
      metrics_->RecordFailure(status.code());
    }
    response->set_queue_ms(Ms(received, started));
    response->set_encode_ms(Ms(started, done));
    std::fprintf(stderr,
                 "{\"stage\":\"vision\",\"rpc\":\"Encode\",\"peer\":\"%s\",\"tiles\":%u,"
                 "\"request_bytes\":%zu,\"response_bytes\":%zu,\"queue_ms\":%.1f,"
                 "\"encode_ms\":%.1f,\"status\":\"%s\"}\n",
                 context->peer().c_str(), response->tiles(), request->pixel_values().data().size(),
                 response->image_hidden_states().data().size(), Ms(received, started),
                 Ms(started, done), absl::StatusCodeToString(status.code()).c_str());
    if (!status.ok()) {
      status = absl::Status(status.code(), absl::StrCat(
          absl::StartsWith(status.message(), "vision:") ? "" : "vision: ", status.message()));
    }
    reactor->Finish(grpc_util::ToGrpcStatus(status));
  });
  if (!accepted) {
    metrics_->num_requests_waiting->Decrement();
    metrics_->queue_depth->Decrement();
    metrics_->tiles_in_flight->Decrement(static_cast<double>(tiles));
    metrics_->RecordFailure(absl::StatusCode::kResourceExhausted);
    reactor->Finish(::grpc::Status(::grpc::StatusCode::RESOURCE_EXHAUSTED,
                                   absl::StrCat("vision: queue full (", executor_.queued(),
                                                " waiting)")));
  }
  return reactor;
}

}  // namespace smolserve::vision
