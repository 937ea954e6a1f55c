#include "services/decoder/server/decoder_service.h"

#include <chrono>
#include <cstdio>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/grpc/server_stream.h"
#include "common/grpc/status_util.h"
#include "common/grpc/tensor_proto.h"

namespace smolserve::decoder {
namespace {

using Clock = std::chrono::steady_clock;

double Ms(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

v1::FinishReason ToProto(FinishReason r) {
  switch (r) {
    case FinishReason::kStop: return v1::FINISH_REASON_STOP;
    case FinishReason::kLength: return v1::FINISH_REASON_LENGTH;
    case FinishReason::kCancelled: return v1::FINISH_REASON_CANCELLED;
  }
  return v1::FINISH_REASON_UNSPECIFIED;
}

absl::Status WithStage(const absl::Status& s) {
  if (s.ok() || absl::StartsWith(s.message(), "decoder:")) return s;
  return absl::Status(s.code(), absl::StrCat("decoder: ", s.message()));
}

}  // namespace

absl::Status FillGenerateRequest(const v1::GenerationParams& params,
                                 const model::GenerationConfig& defaults,
                                 const DecoderServiceOptions& options, GenerateRequest* out) {
  ApplyGenerationConfig(defaults, *out);
  out->max_new_tokens = params.has_max_new_tokens()
                            ? params.max_new_tokens()
                            : defaults.max_new_tokens.value_or(options.default_max_new_tokens);
  if (out->max_new_tokens < 1 || out->max_new_tokens > options.max_new_tokens_limit) {
    return absl::InvalidArgumentError(absl::StrCat("max_new_tokens must be in [1, ",
                                                   options.max_new_tokens_limit, "]"));
  }
  SamplingParams& s = out->sampling;
  s.do_sample = params.has_temperature() && params.temperature() > 0;
  if (s.do_sample) s.temperature = params.temperature();
  if (params.has_top_p()) s.top_p = params.top_p();
  if (params.has_top_k()) s.top_k = params.top_k();
  if (params.has_repetition_penalty()) s.repetition_penalty = params.repetition_penalty();
  if (params.has_seed()) s.seed = params.seed();
  if (auto st = ValidateSamplingParams(s); !st.ok()) return st;
  out->ignore_eos = params.ignore_eos();
  for (const auto& stop : params.stop()) {
    if (stop.empty()) return absl::InvalidArgumentError("empty stop string");
    out->stop_strings.push_back(stop);
  }
  return absl::OkStatus();
}

DecoderService::DecoderService(const DecoderServiceOptions& options, metrics::StageMetrics* metrics)
    : options_(options),
      metrics_(metrics),
      executor_(1, options.max_queue, [threads = options.threads] { at::set_num_threads(threads); }) {}

DecoderService::~DecoderService() { Shutdown(); }

void DecoderService::SetModel(std::unique_ptr<DecoderModel> model) {
  model_ = std::move(model);
  ready_.store(true);
}

void DecoderService::Shutdown() { executor_.Shutdown(); }

::grpc::ServerWriteReactor<v1::GenerateResponse>* DecoderService::Generate(
    ::grpc::CallbackServerContext* context, const v1::GenerateRequest* request) {
  auto [reactor, stream] = grpc_util::ServerStream<v1::GenerateResponse>::Create();
  if (!ready_.load()) {
    stream->Finish(::grpc::Status(::grpc::StatusCode::UNAVAILABLE, "decoder: model is loading"));
    return reactor;
  }
  // Validate cheaply here; the worker does the rest.
  GenerateRequest core;
  absl::Status status = FillGenerateRequest(request->generation(), model_->generation_config,
                                            options_, &core);
  if (status.ok() && request->input_ids_size() == 0) {
    status = absl::InvalidArgumentError("input_ids is empty");
  }
  if (status.ok() && request->input_ids_size() > options_.max_prompt_tokens) {
    status = absl::ResourceExhaustedError(absl::StrCat("prompt of ", request->input_ids_size(),
                                                       " tokens is over the limit of ",
                                                       options_.max_prompt_tokens));
  }
  if (!status.ok()) {
    metrics_->RecordFailure(status.code());
    stream->Finish(grpc_util::ToGrpcStatus(WithStage(status)));
    return reactor;
  }
  const auto received = Clock::now();
  metrics_->num_requests_waiting->Increment();
  metrics_->queue_depth->Increment();
  const std::string peer = context->peer();
  auto task = [this, context, request, stream, core = std::move(core), received, peer]() mutable {
    const auto started = Clock::now();
    metrics_->num_requests_waiting->Decrement();
    metrics_->queue_depth->Decrement();
    metrics_->num_requests_running->Increment();
    metrics_->request_queue_time->Observe(Ms(received, started) / 1e3);
    absl::Status status;
    GenerateResult result;
    int64_t emitted = 0;
    auto first_token = Clock::time_point();
    auto last_token = Clock::time_point();
    if (stream->cancelled()) {
      status = absl::CancelledError("decoder: cancelled by the client");
    } else if (context->deadline() < std::chrono::system_clock::now()) {
      status = absl::DeadlineExceededError("decoder: deadline passed while queued");
    } else {
      c10::InferenceMode guard;
      core.input_ids.emplace_back(request->input_ids().begin(), request->input_ids().end());
      if (request->has_image_hidden_states()) {
        auto images = grpc_util::TensorFromProto(request->image_hidden_states(), "image_hidden_states");
        if (!images.ok()) status = images.status();
        else core.image_hidden_states = *images;
      }
      preprocess::IncrementalDecoder text(*model_->tokenizer, /*skip_special_tokens=*/true);
      const auto* tokenizer = model_->tokenizer.get();
      core.detokenize = [tokenizer](absl::Span<const int64_t> ids) {
        std::vector<int32_t> v(ids.begin(), ids.end());
        return tokenizer->Decode(v, /*skip_special_tokens=*/true);
      };
      const auto deadline = context->deadline();
      bool deadline_hit = false;
      core.on_token = [&](int64_t, int64_t token) {
        const auto now = Clock::now();
        if (emitted++ == 0) {
          first_token = now;
          metrics_->time_to_first_token->Observe(Ms(received, now) / 1e3);
        } else {
          metrics_->inter_token_latency->Observe(Ms(last_token, now) / 1e3);
        }
        last_token = now;
        if (stream->cancelled()) return StreamAction::kCancelAll;
        if (std::chrono::system_clock::now() > deadline) {
          deadline_hit = true;
          return StreamAction::kCancelAll;
        }
        v1::GenerateResponse msg;
        msg.add_token_ids(static_cast<int32_t>(token));
        msg.set_text(text.Add(static_cast<int32_t>(token)));
        stream->Push(std::move(msg));
        return StreamAction::kContinue;
      };
      if (status.ok()) {
        try {
          auto r = Generator(*model_->model).Generate(core);
          if (!r.ok()) status = r.status();
          else result = *std::move(r);
        } catch (const c10::Error& e) {
          status = absl::InternalError(absl::StrCat("generation failed: ", e.what_without_backtrace()));
        }
      }
      if (status.ok() && deadline_hit) status = absl::DeadlineExceededError("decoder: deadline exceeded");
      if (status.ok() && stream->cancelled()) status = absl::CancelledError("decoder: cancelled by the client");
      if (status.ok() && !result.rows.empty()) {
        v1::GenerateResponse last;
        last.set_text(text.Flush());
        const RowResult& row = result.rows[0];
        last.set_finish_reason(ToProto(row.finish_reason));
        last.mutable_usage()->set_prompt_tokens(static_cast<uint32_t>(row.prompt_tokens));
        last.mutable_usage()->set_completion_tokens(static_cast<uint32_t>(row.completion_tokens));
        last.set_queue_ms(Ms(received, started));
        last.set_prefill_ms(result.prefill_seconds * 1e3);
        last.set_decode_ms(result.decode_seconds * 1e3);
        stream->Push(std::move(last));
      }
    }
    const auto done = Clock::now();
    metrics_->num_requests_running->Decrement();
    metrics_->e2e_request_latency->Observe(Ms(received, done) / 1e3);
    metrics_->generation_tokens->Increment(static_cast<double>(emitted));
    if (!result.rows.empty()) {
      metrics_->prompt_tokens->Increment(static_cast<double>(result.rows[0].prompt_tokens));
    }
    if (status.ok() && !result.rows.empty()) {
      metrics_->RecordSuccess(std::string(FinishReasonName(result.rows[0].finish_reason)));
    } else if (!status.ok()) {
      metrics_->RecordFailure(status.code());
    }
    std::fprintf(stderr,
                 "{\"stage\":\"decoder\",\"rpc\":\"Generate\",\"request_id\":\"%s\",\"peer\":\"%s\","
                 "\"prompt_tokens\":%d,\"completion_tokens\":%lld,\"queue_ms\":%.1f,"
                 "\"ttft_ms\":%.1f,\"total_ms\":%.1f,\"status\":\"%s\"}\n",
                 request->request_id().c_str(), peer.c_str(), request->input_ids_size(),
                 static_cast<long long>(emitted), Ms(received, started),
                 emitted ? Ms(received, first_token) : 0.0, Ms(received, done),
                 absl::StatusCodeToString(status.code()).c_str());
    stream->Finish(grpc_util::ToGrpcStatus(WithStage(status)));
  };
  if (!executor_.TrySubmit(std::move(task))) {
    metrics_->num_requests_waiting->Decrement();
    metrics_->queue_depth->Decrement();
    metrics_->RecordFailure(absl::StatusCode::kResourceExhausted);
    stream->Finish(::grpc::Status(::grpc::StatusCode::RESOURCE_EXHAUSTED,
                                  absl::StrCat("decoder: queue full (", executor_.queued(),
                                               " waiting)")));
  }
  return reactor;
}

}  // namespace smolserve::decoder
