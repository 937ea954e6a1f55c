#include "services/vision/server/vision_service.h"

#include <chrono>
#include <cstdio>

#include <ATen/ATen.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/grpc/raw_proto.h"
#include "common/grpc/status_util.h"
#include "common/grpc/tensor_proto.h"
#include "common/pixels/normalize.h"
#include "nlohmann/json.hpp"

namespace smolserve::vision {
namespace {

using Clock = std::chrono::steady_clock;

double Ms(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

// One Encode call. Touched by the gRPC thread until Submit, then by the batcher's worker
// (or, when every tile is cached, still by the gRPC thread inside Submit).
struct Call {
  ::grpc::CallbackServerContext* context = nullptr;
  v1::EncodeRequest request_message;
  v1::EncodeResponse response_message;
  v1::EncodeResponse* response = &response_message;
  ::grpc::ByteBuffer* out = nullptr;  // the serialised response
  ::grpc::ServerUnaryReactor* reactor = nullptr;
  Clock::time_point received;
  int64_t tiles = 0;
  size_t request_bytes = 0;
  bool started = false;
};

// The JSON log line (built with a JSON library, bounded) and the answer.
void Reply(const Call& call, absl::Status status) {
  nlohmann::ordered_json line = {
      {"stage", "vision"},
      {"rpc", "Encode"},
      {"peer", call.context->peer().substr(0, 64)},
      {"tiles", call.response->tiles()},
      {"cached_tiles", call.response->cached_tiles()},
      {"request_bytes", call.request_bytes},
      {"response_bytes", call.response->image_hidden_states().data().size()},
      {"queue_ms", call.response->queue_ms()},
      {"encode_ms", call.response->encode_ms()},
      {"total_ms", Ms(call.received, Clock::now())},
      {"status", absl::StatusCodeToString(status.code())}};
  if (!status.ok()) line["error"] = std::string(status.message().substr(0, 512));
  std::fprintf(stderr, "%s\n",
               line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  if (!status.ok() && !absl::StartsWith(status.message(), "vision:")) {
    absl::Status prefixed(status.code(), absl::StrCat("vision: ", status.message()));
    status.ForEachPayload([&](absl::string_view url, const absl::Cord& p) { prefixed.SetPayload(url, p); });
    status = std::move(prefixed);
  }
  grpc_util::AddRetryAfterTrailer(status, call.context);
  if (status.ok()) *call.out = grpc_util::Serialize(*call.response);
  call.reactor->Finish(grpc_util::ToGrpcStatus(status));
}

}  // namespace

namespace {

// uint8 tiles with their normalisation -> the float32 tiles the model takes.
absl::StatusOr<at::Tensor> NormalizeRequestPixels(const v1::EncodeRequest& request,
                                                  const at::Tensor& pixels) {
  if (pixels.dim() != 4) return absl::InvalidArgumentError("uint8 pixel_values must be [N,3,H,W]");
  if (!request.has_normalization() || request.normalization().mean_size() != 3 ||
      request.normalization().std_size() != 3) {
    return absl::InvalidArgumentError(
        "uint8 pixel_values need normalization with a rescale factor and 3 means and stds");
  }
  pixels::NormalizeParams params;
  params.rescale_factor = request.normalization().rescale_factor();
  for (int c = 0; c < 3; ++c) {
    params.mean[c] = request.normalization().mean(c);
    params.std[c] = request.normalization().std(c);
  }
  const std::string& f = request.tile_formulas();
  return pixels::NormalizeTiles(
      pixels, absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(f.data()), f.size()), params);
}

}  // namespace

absl::Status ParseEncodeRequest(const v1::EncodeRequest& request, int64_t max_tiles,
                                int64_t max_tile_side, EncodeJob* job, int64_t* tiles_out) {
  auto pixels = grpc_util::TensorFromProto(request.pixel_values(), "pixel_values");
  if (!pixels.ok()) return pixels.status();
  if (pixels->scalar_type() != at::kFloat && pixels->scalar_type() != at::kByte) {
    return absl::InvalidArgumentError("pixel_values must be uint8 or float32");
  }
  if (pixels->dim() != 4 && pixels->dim() != 5) {
    return absl::InvalidArgumentError("pixel_values must be [N,3,H,W] or [B,N,3,H,W]");
  }
  if (pixels->size(-1) > max_tile_side || pixels->size(-2) > max_tile_side) {
    return absl::InvalidArgumentError(absl::StrCat("tiles of ", pixels->size(-2), "x",
                                                   pixels->size(-1), " are over this stage's limit of ",
                                                   max_tile_side, "x", max_tile_side));
  }
  const int64_t per_tile = pixels->size(-1) * pixels->size(-2) * pixels->size(-3);
  if (per_tile == 0) return absl::InvalidArgumentError("pixel_values has an empty tile dimension");
  const int64_t tiles = pixels->numel() / per_tile;
  if (tiles > max_tiles) {
    return absl::ResourceExhaustedError(
        absl::StrCat(tiles, " tiles in one request, over the limit of ", max_tiles));
  }
  if (pixels->scalar_type() == at::kByte) {
    auto normalized = NormalizeRequestPixels(request, *pixels);
    if (!normalized.ok()) return normalized.status();
    pixels = *std::move(normalized);
  }
  *tiles_out = tiles;
  job->pixel_values = *std::move(pixels);
  if (request.has_pixel_attention_mask()) {
    auto m = grpc_util::TensorFromProto(request.pixel_attention_mask(), "pixel_attention_mask");
    if (!m.ok()) return m.status();
    job->pixel_attention_mask = *std::move(m);
  }
  return absl::OkStatus();
}

VisionService::VisionService(const VisionServiceOptions& options, metrics::StageMetrics* metrics)
    : options_(options), metrics_(metrics) {}

VisionService::~VisionService() { Shutdown(); }

absl::Status VisionService::SetModel(std::unique_ptr<VisionModel> model,
                                     const std::string& model_revision) {
  std::lock_guard<std::mutex> lock(shutdown_mu_);
  if (shut_down_) return absl::UnavailableError("vision: shutting down");
  if (batcher_ != nullptr) return absl::FailedPreconditionError("vision: model already set");
  EncodeBatcherOptions o;
  o.threads = options_.threads;
  o.max_batch_tiles = options_.max_batch_tiles;
  o.max_wait = std::chrono::microseconds(static_cast<int64_t>(options_.batch_wait_ms * 1000));
  o.max_queued_tiles = options_.max_queued_tiles;
  o.max_queued_requests = options_.max_queue;
  o.cache_bytes = options_.embedding_cache_bytes;
  o.model_revision = model_revision;
  metrics::StageMetrics* m = metrics_;
  auto batcher = EncodeBatcher::Create(model.get(), o, [m](const BatchInfo& batch) {
    if (!batch.status.ok()) return;
    m->tiles_encoded->Increment(static_cast<double>(batch.tiles));
    m->vision_batch_size->Observe(static_cast<double>(batch.tiles));
    m->vision_encode->Observe(batch.encode_ms / 1e3);
  });
  if (!batcher.ok()) return batcher.status();
  model_revision_ = model_revision;
  max_tile_side_ = options_.max_tile_side > 0 ? options_.max_tile_side
                                              : model->config().vision.image_size;
  model_ = std::move(model);
  batcher_ = *std::move(batcher);
  ready_.store(true, std::memory_order_release);
  return absl::OkStatus();
}

void VisionService::Shutdown() {
  std::lock_guard<std::mutex> lock(shutdown_mu_);
  shut_down_ = true;
  if (batcher_ != nullptr) batcher_->Shutdown();
}

::grpc::ServerUnaryReactor* VisionService::Encode(::grpc::CallbackServerContext* context,
                                                  const ::grpc::ByteBuffer* raw,
                                                  ::grpc::ByteBuffer* response) {
  auto* reactor = context->DefaultReactor();
  if (!ready_.load(std::memory_order_acquire)) {
    reactor->Finish(::grpc::Status(::grpc::StatusCode::UNAVAILABLE, "vision: model is loading"));
    return reactor;
  }
  auto call = std::make_shared<Call>();
  call->context = context;
  call->out = response;
  call->reactor = reactor;
  call->received = Clock::now();
  if (absl::Status s = grpc_util::ParseRequest(*raw, &call->request_message, "vision"); !s.ok()) {
    metrics_->RecordFailure(s.code());
    Reply(*call, std::move(s));
    return reactor;
  }
  call->request_bytes = call->request_message.pixel_values().data().size();

  EncodeJob job;
  absl::Status parsed = ParseEncodeRequest(call->request_message, options_.max_tiles_per_request,
                                           max_tile_side_, &job, &call->tiles);
  // The tiles now live in the job's tensor: the parsed copy is released before the wait.
  call->request_message.Clear();
  if (!parsed.ok()) {
    metrics_->RecordFailure(parsed.code());
    Reply(*call, std::move(parsed));
    return reactor;
  }

  call->response->set_model_revision(model_revision_);
  job.is_cancelled = [context] { return context->IsCancelled(); };
  const auto sys_now = std::chrono::system_clock::now();
  const auto deadline = context->deadline();
  if (deadline < sys_now + std::chrono::hours(24 * 365)) {
    job.deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(deadline - sys_now);
  }
  metrics::StageMetrics* m = metrics_;
  job.on_start = [m, call] {
    call->started = true;
    m->num_requests_waiting->Decrement();
    m->queue_depth->Decrement();
    m->num_requests_running->Increment();
    m->request_queue_time->Observe(Ms(call->received, Clock::now()) / 1e3);
  };

  m->num_requests_waiting->Increment();
  m->queue_depth->Increment();
  m->tiles_in_flight->Increment(static_cast<double>(call->tiles));
  absl::Status submitted =
      batcher_->Submit(std::move(job), [m, call](absl::StatusOr<EncodeResult> result) {
        const auto done = Clock::now();
        if (call->started) {
          m->num_requests_running->Decrement();
        } else {  // answered from the cache, or dropped while queued
          m->num_requests_waiting->Decrement();
          m->queue_depth->Decrement();
          m->request_queue_time->Observe(Ms(call->received, done) / 1e3);
        }
        m->tiles_in_flight->Decrement(static_cast<double>(call->tiles));
        m->e2e_request_latency->Observe(Ms(call->received, done) / 1e3);
        absl::Status status = result.status();
        if (result.ok()) {
          v1::EncodeResponse* r = call->response;
          r->set_tiles(static_cast<uint32_t>(result->tiles));
          r->set_cached_tiles(static_cast<uint32_t>(result->cached_tiles));
          r->set_queue_ms(result->queue_ms);
          r->set_encode_ms(result->encode_ms);
          status = grpc_util::TensorToProto(result->image_hidden_states,
                                            r->mutable_image_hidden_states());
        }
        if (status.ok()) {
          m->cache_hits->Increment(static_cast<double>(result->cached_tiles));
          m->cache_misses->Increment(static_cast<double>(result->tiles - result->cached_tiles));
          m->embedding_bytes_sent->Increment(
              static_cast<double>(call->response->image_hidden_states().data().size()));
          m->RecordSuccess("ok");
        } else {
          m->RecordFailure(status.code());
        }
        Reply(*call, std::move(status));
      });
  if (!submitted.ok()) {
    m->num_requests_waiting->Decrement();
    m->queue_depth->Decrement();
    m->tiles_in_flight->Decrement(static_cast<double>(call->tiles));
    m->RecordFailure(submitted.code());
    Reply(*call, std::move(submitted));
  }
  return reactor;
}

}  // namespace smolserve::vision
