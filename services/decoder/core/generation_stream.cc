#include "services/decoder/core/generation_stream.h"

#include <memory>
#include <mutex>
#include <utility>

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <c10/util/Exception.h>

#include "absl/strings/str_cat.h"
#include "common/status/status_macros.h"
#include "common/tokenizer/tokenizer.h"
#include "services/decoder/core/stop_matcher.h"

namespace smolserve::decoder {
namespace {

// What one stream's engine callbacks share. Engine thread only.
struct StreamState {
  StreamState(const tokenizer::Tokenizer& tok, std::vector<std::string> stops)
      : text(tok, /*skip_special_tokens=*/true), stop(std::move(stops)) {}
  tokenizer::IncrementalDecoder text;
  StopMatcher stop;
  bool stopped = false;
  StreamCallbacks callbacks;
};

absl::Status CheckImages(const at::Tensor& images, const TextModelDims& dims) {
  if (!images.defined()) return absl::OkStatus();
  if (images.dim() != 3 || images.size(1) != dims.image_seq_len ||
      images.size(2) != dims.hidden_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "image_hidden_states must be [n, ", dims.image_seq_len, ", ", dims.hidden_size, "]"));
  }
  if (!at::isFloatingType(images.scalar_type())) {
    return absl::InvalidArgumentError("image_hidden_states must be floating point");
  }
  try {
    c10::InferenceMode guard;
    if (!at::isfinite(images).all().item<bool>()) {
      return absl::InvalidArgumentError("image_hidden_states contains NaN or infinity");
    }
  } catch (const c10::Error& e) {
    return absl::InvalidArgumentError("image_hidden_states could not be read");
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status FillGenerateRequest(const GenerationParams& params,
                                 const model::GenerationConfig& defaults,
                                 const DecoderLimits& limits, GenerateRequest* out) {
  RETURN_IF_ERROR(ValidateGenerationParams(params, limits.generation));
  ApplyGenerationConfig(defaults, *out);
  out->max_new_tokens = params.max_new_tokens.value_or(
      std::min(defaults.max_new_tokens.value_or(limits.default_max_new_tokens),
               limits.generation.max_new_tokens));
  SamplingParams& s = out->sampling;
  s.do_sample = params.samples();
  if (s.do_sample) s.temperature = *params.temperature;
  if (params.top_p) s.top_p = *params.top_p;
  if (params.top_k) s.top_k = *params.top_k;
  if (params.repetition_penalty) s.repetition_penalty = *params.repetition_penalty;
  if (params.seed) s.seed = *params.seed;
  RETURN_IF_ERROR(ValidateSamplingParams(s));
  out->ignore_eos = params.ignore_eos;
  return absl::OkStatus();
}

absl::Status SubmitStream(BatchEngine& engine, const DecoderModel& model,
                          const DecoderLimits& limits, StreamInput input,
                          StreamCallbacks callbacks) {
  GenerateRequest request;
  RETURN_IF_ERROR(FillGenerateRequest(input.generation, model.generation_config, limits, &request));
  if (input.input_ids.empty()) return absl::InvalidArgumentError("input_ids is empty");
  if (static_cast<int64_t>(input.input_ids.size()) > limits.max_prompt_tokens) {
    return absl::ResourceExhaustedError(absl::StrCat("prompt of ", input.input_ids.size(),
                                                     " tokens is over the limit of ",
                                                     limits.max_prompt_tokens));
  }
  RETURN_IF_ERROR(CheckImages(input.image_hidden_states, model.model->dims()));
  request.input_ids.emplace_back(input.input_ids.begin(), input.input_ids.end());
  request.image_hidden_states = input.image_hidden_states;

  auto state = std::make_shared<StreamState>(*model.tokenizer, std::move(input.generation.stop));
  state->callbacks = std::move(callbacks);
  request.on_token = [state](int64_t, int64_t token) {
    StopMatcher::Step step = state->stop.Add(state->text.Add(static_cast<int32_t>(token)));
    TokenDelta delta;
    delta.token_ids.push_back(static_cast<int32_t>(token));
    delta.text = std::move(step.text);
    state->callbacks.on_delta(std::move(delta));
    if (!step.stopped) return StreamAction::kContinue;
    state->stopped = true;
    return StreamAction::kStop;
  };
  SequenceCallbacks seq;
  seq.poll = state->callbacks.poll;
  seq.on_start = state->callbacks.on_start;
  seq.on_first_logits = state->callbacks.on_first_logits;
  seq.on_done = [state](absl::StatusOr<SequenceResult> result) {
    if (result.ok() && !state->stopped) {
      StopMatcher::Step tail = state->stop.Add(state->text.Flush());
      std::string text = tail.text + (tail.stopped ? "" : state->stop.Flush());
      if (!text.empty()) state->callbacks.on_delta(TokenDelta{{}, std::move(text)});
    }
    if (!result.ok()) {
      state->callbacks.on_done(result.status());
      return;
    }
    GenerationOutcome out;
    out.finish_reason = result->row.finish_reason;
    out.prompt_tokens = result->row.prompt_tokens;
    out.cached_prompt_tokens = result->cached_prompt_tokens;
    out.completion_tokens = result->row.completion_tokens;
    out.queue_ms = result->queue_seconds * 1e3;
    out.prefill_ms = result->prefill_seconds * 1e3;
    out.decode_ms = result->decode_seconds * 1e3;
    state->callbacks.on_done(out);
  };
  return engine.Submit(std::move(request), std::move(seq));
}

}  // namespace smolserve::decoder
