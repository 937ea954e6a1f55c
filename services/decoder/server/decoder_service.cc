#include "services/decoder/server/decoder_service.h"

#include <chrono>
#include <cstdio>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/grpc/generation_proto.h"
#include "common/grpc/raw_proto.h"
#include "common/grpc/server_stream.h"
#include "common/grpc/status_util.h"
#include "common/grpc/tensor_proto.h"
#include "common/status/retry_after.h"
#include "nlohmann/json.hpp"

namespace smolserve::decoder {
namespace {

using Clock = std::chrono::steady_clock;

double Ms(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

absl::Status WithStage(const absl::Status& s) {
  if (s.ok() || absl::StartsWith(s.message(), "decoder:")) return s;
  absl::Status out(s.code(), absl::StrCat("decoder: ", s.message()));
  s.ForEachPayload([&](absl::string_view url, const absl::Cord& p) { out.SetPayload(url, p); });
  return out;
}

// What one Generate call's callbacks share (engine thread) with the handler.
struct CallState {
  std::string request_id;
  std::string peer;
  int prompt_tokens = 0;
  Clock::time_point received, started, first_token, last_token;
  int64_t emitted = 0;
};

std::string Bounded(absl::string_view s, size_t n) {
  return std::string(s.substr(0, std::min(s.size(), n)));
}

// One JSON line per request, built with a JSON library (client text cannot forge records).
void LogLine(const CallState& state, const absl::Status& status, double prefill_ms) {
  const auto done = Clock::now();
  const bool started = state.started != Clock::time_point();
  nlohmann::ordered_json line = {
      {"stage", "decoder"},
      {"rpc", "Generate"},
      {"request_id", Bounded(state.request_id, 128)},
      {"peer", Bounded(state.peer, 64)},
      {"prompt_tokens", state.prompt_tokens},
      {"completion_tokens", state.emitted},
      {"queue_ms", started ? Ms(state.received, state.started) : Ms(state.received, done)},
      {"prefill_ms", prefill_ms},
      {"ttft_ms", state.emitted ? Ms(state.received, state.first_token) : 0.0},
      {"total_ms", Ms(state.received, done)},
      {"status", absl::StatusCodeToString(status.code())},
  };
  if (!status.ok()) line["error"] = Bounded(status.message(), 512);
  std::fprintf(stderr, "%s\n",
               line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
}

// A refusal for load (the engine's queue is full) carries a retry hint; one for size does not.
absl::Status Refusal(absl::Status status) {
  if (status.code() == absl::StatusCode::kResourceExhausted &&
      absl::StrContains(status.message(), "queue full")) {
    return WithRetryAfter(std::move(status), 1000);
  }
  return status;
}

}  // namespace

BatchEngineOptions EngineOptions(const DecoderServiceOptions& options) {
  BatchEngineOptions eo;
  eo.max_running = options.max_running;
  eo.prefill_chunk_tokens = options.prefill_chunk_tokens;
  eo.kv_cache_budget_bytes = options.kv_cache_budget_bytes;
  eo.prefix_cache = options.prefix_cache;
  eo.max_waiting = options.max_queue;
  eo.thread_init = [threads = options.threads] { at::set_num_threads(threads); };
  return eo;
}

DecoderService::DecoderService(const DecoderServiceOptions& options, metrics::StageMetrics* metrics)
    : options_(options), metrics_(metrics) {}

DecoderService::~DecoderService() { Shutdown(); }

absl::Status DecoderService::SetModel(std::unique_ptr<DecoderModel> model,
                                      const std::string& model_revision) {
  model_revision_ = model_revision;
  auto engine = BatchEngine::Create(*model->model, EngineOptions(options_));
  if (!engine.ok()) return engine.status();
  model_ = std::move(model);
  engine_ = *std::move(engine);
  ready_.store(true);
  return absl::OkStatus();
}

void DecoderService::Shutdown() {
  if (engine_ != nullptr) engine_->Shutdown();
}

BatchEngineStats DecoderService::engine_stats() const {
  return engine_ != nullptr ? engine_->stats() : BatchEngineStats{};
}

::grpc::ServerWriteReactor<::grpc::ByteBuffer>* DecoderService::Generate(
    ::grpc::CallbackServerContext* context, const ::grpc::ByteBuffer* raw) {
  auto [reactor, stream] = grpc_util::ServerStream<::grpc::ByteBuffer>::Create();
  auto state = std::make_shared<CallState>();
  state->received = Clock::now();
  v1::GenerateRequest parsed;
  const absl::Status parse = grpc_util::ParseRequest(*raw, &parsed, "decoder");
  const v1::GenerateRequest* request = &parsed;
  state->request_id = request->request_id();
  state->peer = context->peer();
  state->prompt_tokens = request->input_ids_size();
  metrics::StageMetrics* m = metrics_;
  auto finish = [state, stream = stream, m, context](const absl::Status& status, double prefill_ms) {
    LogLine(*state, status, prefill_ms);
    const absl::Status out = WithStage(status);
    grpc_util::AddRetryAfterTrailer(out, context);
    stream->Finish(grpc_util::ToGrpcStatus(out));
  };
  if (!parse.ok()) {
    m->RecordFailure(parse.code());
    finish(parse, 0);
    return reactor;
  }
  if (!ready_.load()) {
    m->RecordFailure(absl::StatusCode::kUnavailable);
    finish(WithRetryAfter(absl::UnavailableError("model is loading"), 1000), 0);
    return reactor;
  }

  StreamInput input;
  input.input_ids.assign(request->input_ids().begin(), request->input_ids().end());
  input.generation = grpc_util::GenerationFromProto(request->generation());
  if (request->has_image_hidden_states() && !request->vision_model_revision().empty() &&
      !model_revision_.empty() && request->vision_model_revision() != model_revision_) {
    const absl::Status mismatch = absl::FailedPreconditionError(absl::StrCat(
        "image embeddings come from vision model revision '",
        request->vision_model_revision().substr(0, 80), "', this decoder serves revision '",
        model_revision_, "': the vision and decoder stages must serve the same model"));
    m->RecordFailure(mismatch.code());
    finish(mismatch, 0);
    return reactor;
  }
  if (request->has_image_hidden_states()) {
    c10::InferenceMode guard;
    auto images = grpc_util::TensorFromProto(request->image_hidden_states(), "image_hidden_states");
    if (!images.ok()) {
      m->RecordFailure(images.status().code());
      finish(images.status(), 0);
      return reactor;
    }
    input.image_hidden_states = *images;
  }

  const auto deadline = context->deadline();
  StreamCallbacks cb;
  cb.poll = [stream = stream, deadline]() -> absl::Status {
    if (stream->cancelled()) return absl::CancelledError("cancelled by the client");
    if (std::chrono::system_clock::now() > deadline) {
      return absl::DeadlineExceededError("deadline exceeded");
    }
    return absl::OkStatus();
  };
  cb.on_start = [state, m] {
    state->started = Clock::now();
    m->num_requests_waiting->Decrement();
    m->queue_depth->Decrement();
    m->num_requests_running->Increment();
    m->request_queue_time->Observe(Ms(state->received, state->started) / 1e3);
  };
  cb.on_delta = [state, stream = stream, m](TokenDelta delta) {
    const auto now = Clock::now();
    v1::GenerateResponse msg;
    if (!delta.token_ids.empty()) {
      if (state->emitted++ == 0) {
        state->first_token = now;
        m->time_to_first_token->Observe(Ms(state->received, now) / 1e3);
      } else {
        m->inter_token_latency->Observe(Ms(state->last_token, now) / 1e3);
      }
      state->last_token = now;
      m->generation_tokens->Increment();
    }
    msg.mutable_token_ids()->Add(delta.token_ids.begin(), delta.token_ids.end());
    msg.set_text(std::move(delta.text));
    stream->Push(grpc_util::Serialize(msg));
  };
  cb.on_done = [state, stream = stream, m, finish, prefix_cache = options_.prefix_cache,
                revision = model_revision_](absl::StatusOr<GenerationOutcome> result) {
    if (state->started != Clock::time_point()) {
      m->num_requests_running->Decrement();
    } else {
      m->num_requests_waiting->Decrement();
      m->queue_depth->Decrement();
    }
    m->e2e_request_latency->Observe(Ms(state->received, Clock::now()) / 1e3);
    if (!result.ok()) {
      m->RecordFailure(result.status().code());
      finish(result.status(), 0);
      return;
    }
    v1::GenerateResponse last;
    last.set_finish_reason(grpc_util::FinishReasonToProto(result->finish_reason));
    last.mutable_usage()->set_prompt_tokens(static_cast<uint32_t>(result->prompt_tokens));
    last.mutable_usage()->set_completion_tokens(static_cast<uint32_t>(result->completion_tokens));
    last.mutable_usage()->set_cached_prompt_tokens(
        static_cast<uint32_t>(result->cached_prompt_tokens));
    last.set_queue_ms(result->queue_ms);
    last.set_prefill_ms(result->prefill_ms);
    last.set_decode_ms(result->decode_ms);
    last.set_model_revision(revision);
    stream->Push(grpc_util::Serialize(last));
    m->prompt_tokens->Increment(static_cast<double>(result->prompt_tokens - result->cached_prompt_tokens));
    if (prefix_cache) {
      m->prefix_cache_queries->Increment(static_cast<double>(result->prompt_tokens));
      m->prefix_cache_hits->Increment(static_cast<double>(result->cached_prompt_tokens));
    }
    m->RecordSuccess(std::string(FinishReasonName(result->finish_reason)));
    finish(absl::OkStatus(), result->prefill_ms);
  };

  metrics_->num_requests_waiting->Increment();
  metrics_->queue_depth->Increment();
  absl::Status status =
      SubmitStream(*engine_, *model_, options_.limits, std::move(input), std::move(cb));
  if (!status.ok()) {
    metrics_->num_requests_waiting->Decrement();
    metrics_->queue_depth->Decrement();
    metrics_->RecordFailure(status.code());
    finish(Refusal(status), 0);
  }
  return reactor;
}

}  // namespace smolserve::decoder
