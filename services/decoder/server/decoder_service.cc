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
#include "common/model/weights.h"

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

absl::StatusOr<std::unique_ptr<DecoderModel>> LoadDecoderModel(const std::string& model_dir,
                                                               at::ScalarType dtype) {
  absl::StatusOr<model::ModelConfig> config = model::LoadModelConfig(model_dir);
  if (!config.ok()) return config.status();
  absl::StatusOr<std::unique_ptr<model::WeightStore>> weights = model::WeightStore::Open(model_dir);
  if (!weights.ok()) return weights.status();
  auto dm = std::make_unique<DecoderModel>();
  TextModelOptions text_options;
  text_options.dtype = dtype;
  absl::StatusOr<std::unique_ptr<TextModel>> text =
      TextModel::Create(*config, **weights, text_options);
  if (!text.ok()) return text.status();
  dm->model = *std::move(text);
  absl::StatusOr<std::unique_ptr<preprocess::Tokenizer>> tokenizer =
      preprocess::Tokenizer::FromModelDir(model_dir);
  if (!tokenizer.ok()) return tokenizer.status();
  dm->tokenizer = *std::move(tokenizer);
  absl::StatusOr<model::GenerationConfig> gen = model::LoadGenerationConfig(model_dir);
  if (gen.ok()) {
    dm->generation_config = *gen;
  } else if (gen.status().code() != absl::StatusCode::kNotFound) {
    return gen.status();
  }
  return dm;
}

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
    : options_(options), metrics_(metrics) {}

DecoderService::~DecoderService() { Shutdown(); }

absl::Status DecoderService::SetModel(std::unique_ptr<DecoderModel> model) {
  BatchEngineOptions eo;
  eo.max_running = options_.max_running;
  eo.prefill_chunk_tokens = options_.prefill_chunk_tokens;
  eo.kv_cache_budget_bytes = options_.kv_cache_budget_bytes;
  eo.max_waiting = options_.max_queue;
  eo.thread_init = [threads = options_.threads] { at::set_num_threads(threads); };
  auto engine = BatchEngine::Create(*model->model, std::move(eo));
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

namespace {

// What one Generate call's callbacks share (engine thread) with the handler.
struct CallState {
  std::string request_id;
  std::string peer;
  int prompt_tokens = 0;
  Clock::time_point received, started, first_token, last_token;
  int64_t emitted = 0;
  bool deadline_hit = false;
  std::unique_ptr<preprocess::IncrementalDecoder> text;
};

}  // namespace

::grpc::ServerWriteReactor<v1::GenerateResponse>* DecoderService::Generate(
    ::grpc::CallbackServerContext* context, const v1::GenerateRequest* request) {
  auto [reactor, stream] = grpc_util::ServerStream<v1::GenerateResponse>::Create();
  if (!ready_.load()) {
    stream->Finish(::grpc::Status(::grpc::StatusCode::UNAVAILABLE, "decoder: model is loading"));
    return reactor;
  }
  auto state = std::make_shared<CallState>();
  state->received = Clock::now();
  state->request_id = request->request_id();
  state->peer = context->peer();
  state->prompt_tokens = request->input_ids_size();
  state->text = std::make_unique<preprocess::IncrementalDecoder>(*model_->tokenizer,
                                                                 /*skip_special_tokens=*/true);
  auto fail = [&](const absl::Status& status) {
    metrics_->RecordFailure(status.code());
    std::fprintf(stderr,
                 "{\"stage\":\"decoder\",\"rpc\":\"Generate\",\"request_id\":\"%s\",\"peer\":\"%s\","
                 "\"prompt_tokens\":%d,\"status\":\"%s\",\"error\":\"%s\"}\n",
                 state->request_id.c_str(), state->peer.c_str(), state->prompt_tokens,
                 absl::StatusCodeToString(status.code()).c_str(),
                 std::string(status.message()).c_str());
    stream->Finish(grpc_util::ToGrpcStatus(WithStage(status)));
  };

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
  if (status.ok() && request->has_image_hidden_states()) {
    c10::InferenceMode guard;
    auto images = grpc_util::TensorFromProto(request->image_hidden_states(), "image_hidden_states");
    if (!images.ok()) {
      status = images.status();
    } else {
      core.image_hidden_states = *images;
    }
  }
  if (!status.ok()) {
    fail(status);
    return reactor;
  }
  core.input_ids.emplace_back(request->input_ids().begin(), request->input_ids().end());
  const auto* tokenizer = model_->tokenizer.get();
  core.detokenize = [tokenizer](absl::Span<const int64_t> ids) {
    std::vector<int32_t> v(ids.begin(), ids.end());
    return tokenizer->Decode(v, /*skip_special_tokens=*/true);
  };
  const auto deadline = context->deadline();
  metrics::StageMetrics* m = metrics_;
  core.on_token = [state, stream, deadline, m](int64_t, int64_t token) {
    const auto now = Clock::now();
    if (state->emitted++ == 0) {
      state->first_token = now;
      m->time_to_first_token->Observe(Ms(state->received, now) / 1e3);
    } else {
      m->inter_token_latency->Observe(Ms(state->last_token, now) / 1e3);
    }
    state->last_token = now;
    m->generation_tokens->Increment();
    if (stream->cancelled()) return StreamAction::kCancelAll;
    if (std::chrono::system_clock::now() > deadline) {
      state->deadline_hit = true;
      return StreamAction::kCancelAll;
    }
    v1::GenerateResponse msg;
    msg.add_token_ids(static_cast<int32_t>(token));
    msg.set_text(state->text->Add(static_cast<int32_t>(token)));
    stream->Push(std::move(msg));
    return StreamAction::kContinue;
  };

  SequenceCallbacks cb;
  cb.poll = [stream, deadline]() -> absl::Status {
    if (stream->cancelled()) return absl::CancelledError("decoder: cancelled by the client");
    if (std::chrono::system_clock::now() > deadline) {
      return absl::DeadlineExceededError("decoder: deadline exceeded");
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
  cb.on_done = [state, stream, m](absl::StatusOr<SequenceResult> result) {
    const bool started = state->started != Clock::time_point();
    if (started) {
      m->num_requests_running->Decrement();
    } else {
      m->num_requests_waiting->Decrement();
      m->queue_depth->Decrement();
    }
    absl::Status status = result.status();
    if (status.ok() && state->deadline_hit) {
      status = absl::DeadlineExceededError("decoder: deadline exceeded");
    }
    if (status.ok() && stream->cancelled()) {
      status = absl::CancelledError("decoder: cancelled by the client");
    }
    if (status.ok()) {
      const RowResult& row = result->row;
      v1::GenerateResponse last;
      last.set_text(state->text->Flush());
      last.set_finish_reason(ToProto(row.finish_reason));
      last.mutable_usage()->set_prompt_tokens(static_cast<uint32_t>(row.prompt_tokens));
      last.mutable_usage()->set_completion_tokens(static_cast<uint32_t>(row.completion_tokens));
      last.set_queue_ms(result->queue_seconds * 1e3);
      last.set_prefill_ms(result->prefill_seconds * 1e3);
      last.set_decode_ms(result->decode_seconds * 1e3);
      stream->Push(std::move(last));
      m->prompt_tokens->Increment(static_cast<double>(row.prompt_tokens));
      m->RecordSuccess(std::string(FinishReasonName(row.finish_reason)));
    } else {
      m->RecordFailure(status.code());
    }
    const auto done = Clock::now();
    m->e2e_request_latency->Observe(Ms(state->received, done) / 1e3);
    std::fprintf(stderr,
                 "{\"stage\":\"decoder\",\"rpc\":\"Generate\",\"request_id\":\"%s\",\"peer\":\"%s\","
                 "\"prompt_tokens\":%d,\"completion_tokens\":%lld,\"queue_ms\":%.1f,"
                 "\"prefill_ms\":%.1f,\"ttft_ms\":%.1f,\"total_ms\":%.1f,\"status\":\"%s\"}\n",
                 state->request_id.c_str(), state->peer.c_str(), state->prompt_tokens,
                 static_cast<long long>(state->emitted),
                 started ? Ms(state->received, state->started) : Ms(state->received, done),
                 result.ok() ? result->prefill_seconds * 1e3 : 0.0,
                 state->emitted ? Ms(state->received, state->first_token) : 0.0,
                 Ms(state->received, done), absl::StatusCodeToString(status.code()).c_str());
    stream->Finish(grpc_util::ToGrpcStatus(WithStage(status)));
  };

  metrics_->num_requests_waiting->Increment();
  metrics_->queue_depth->Increment();
  status = engine_->Submit(std::move(core), std::move(cb));
  if (!status.ok()) {
    metrics_->num_requests_waiting->Decrement();
    metrics_->queue_depth->Decrement();
    fail(status);
  }
  return reactor;
}

}  // namespace smolserve::decoder
