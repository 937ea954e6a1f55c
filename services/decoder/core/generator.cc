#include "services/decoder/core/generator.h"

#include <algorithm>
#include <chrono>
#include <optional>
#include <random>
#include <utility>

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include "absl/strings/str_cat.h"
#include "common/status/exception_status.h"
#include "common/status/status_macros.h"

namespace smolserve::decoder {
namespace {

double SecondsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

bool EndsWith(const std::vector<int64_t>& ids, const std::vector<int64_t>& suffix) {
  return suffix.size() <= ids.size() &&
         std::equal(suffix.rbegin(), suffix.rend(), ids.rbegin());
}

struct Batch {
  at::Tensor input_ids;       // [B, L] int64
  at::Tensor attention_mask;  // [B, L] int64
  std::vector<std::vector<int64_t>> real_ids;  // per row, prompt ids where mask == 1
};

absl::StatusOr<Batch> BuildBatch(const GenerateRequest& r) {
  const int64_t B = r.input_ids.size();
  if (B == 0) return absl::InvalidArgumentError("input_ids has no rows");
  int64_t L = 0;
  for (int64_t b = 0; b < B; ++b) {
    if (r.input_ids[b].empty()) {
      return absl::InvalidArgumentError(absl::StrCat("input_ids row ", b, " is empty"));
    }
    L = std::max<int64_t>(L, r.input_ids[b].size());
  }
  const bool has_mask = !r.attention_mask.empty();
  if (has_mask && static_cast<int64_t>(r.attention_mask.size()) != B) {
    return absl::InvalidArgumentError("attention_mask must have one row per input_ids row");
  }
  Batch batch;
  batch.input_ids = at::empty({B, L}, at::TensorOptions().dtype(at::kLong));
  batch.attention_mask = at::empty({B, L}, at::TensorOptions().dtype(at::kLong));
  int64_t* ids = batch.input_ids.data_ptr<int64_t>();
  int64_t* mask = batch.attention_mask.data_ptr<int64_t>();
  batch.real_ids.resize(B);
  for (int64_t b = 0; b < B; ++b) {
    const auto& row = r.input_ids[b];
    const int64_t n = row.size();
    if (has_mask) {
      if (n != L || static_cast<int64_t>(r.attention_mask[b].size()) != L) {
        return absl::InvalidArgumentError(absl::StrCat(
            "with an attention_mask, every input_ids / attention_mask row must have length ",
            L, " (row ", b, ")"));
      }
    }
    const int64_t pad = L - n;
    for (int64_t i = 0; i < L; ++i) {
      const bool padded = i < pad;
      ids[b * L + i] = padded ? r.pad_token_id : row[i - pad];
      mask[b * L + i] = padded ? 0 : (has_mask ? r.attention_mask[b][i] : 1);
      if (mask[b * L + i] == 1) batch.real_ids[b].push_back(ids[b * L + i]);
    }
  }
  return batch;
}

}  // namespace

absl::Status ValidateGenerateRequest(const GenerateRequest& r, const TextModelDims& dims) {
  if (r.max_new_tokens < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_new_tokens must be >= 1, got ", r.max_new_tokens));
  }
  if (r.pad_token_id < 0 || r.pad_token_id >= dims.vocab_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("pad_token_id ", r.pad_token_id, " is outside the vocabulary"));
  }
  for (const auto& seq : r.stop_token_sequences) {
    if (seq.empty()) return absl::InvalidArgumentError("empty stop token sequence");
  }
  for (const auto& s : r.stop_strings) {
    if (s.empty()) return absl::InvalidArgumentError("empty stop string");
  }
  if (!r.stop_strings.empty() && !r.detokenize) {
    return absl::InvalidArgumentError("stop_strings need a detokenize callback");
  }
  return ValidateSamplingParams(r.sampling);
}

std::optional<FinishReason> RecordToken(const GenerateRequest& request, RowResult& row,
                                        int64_t token, StreamAction action) {
  bool stop = !request.ignore_eos &&
              std::find(request.eos_token_ids.begin(), request.eos_token_ids.end(), token) !=
                  request.eos_token_ids.end();
  for (size_t i = 0; !stop && i < request.stop_token_sequences.size(); ++i) {
    stop = EndsWith(row.token_ids, request.stop_token_sequences[i]);
  }
  if (!stop && !request.stop_strings.empty()) {
    const std::string text = request.detokenize(row.token_ids);
    for (const std::string& s : request.stop_strings) {
      if (text.find(s) != std::string::npos) {
        stop = true;
        row.matched_stop = s;
        break;
      }
    }
  }
  if (stop || action == StreamAction::kStop) return FinishReason::kStop;
  if (action == StreamAction::kCancelRow || action == StreamAction::kCancelAll) {
    return FinishReason::kCancelled;
  }
  if (static_cast<int64_t>(row.token_ids.size()) >= request.max_new_tokens) {
    return FinishReason::kLength;
  }
  return std::nullopt;
}

void ApplyGenerationConfig(const model::GenerationConfig& config, GenerateRequest& request) {
  if (!config.eos_token_ids.empty()) request.eos_token_ids = config.eos_token_ids;
  if (config.pad_token_id.has_value()) {
    request.pad_token_id = *config.pad_token_id;
  } else if (!config.eos_token_ids.empty()) {
    request.pad_token_id = config.eos_token_ids.front();
  }
  if (config.do_sample.has_value()) request.sampling.do_sample = *config.do_sample;
  if (config.temperature.has_value()) request.sampling.temperature = *config.temperature;
  if (config.top_k.has_value()) request.sampling.top_k = *config.top_k;
  if (config.top_p.has_value()) request.sampling.top_p = *config.top_p;
  if (config.repetition_penalty.has_value()) {
    request.sampling.repetition_penalty = *config.repetition_penalty;
  }
  if (config.max_new_tokens.has_value()) request.max_new_tokens = *config.max_new_tokens;
}

absl::StatusOr<GenerateResult> Generator::Generate(const GenerateRequest& request) const {
  RETURN_IF_ERROR(ValidateGenerateRequest(request, model_.dims()));
  ASSIGN_OR_RETURN(Batch batch, BuildBatch(request));
  const int64_t B = batch.input_ids.size(0), L = batch.input_ids.size(1);
  const int64_t V = model_.dims().vocab_size;

  GenerateResult result;
  result.prompt_columns = L;
  result.rows.resize(B);
  std::vector<std::vector<int64_t>> history = batch.real_ids;  // for the repetition penalty
  for (int64_t b = 0; b < B; ++b) result.rows[b].prompt_tokens = batch.real_ids[b].size();

  ASSIGN_OR_RETURN(KvCache cache, model_.NewCache(B, L + request.max_new_tokens));
  auto t0 = std::chrono::steady_clock::now();
  ASSIGN_OR_RETURN(at::Tensor logits, model_.Prefill(batch.input_ids, batch.attention_mask,
                                                     request.image_hidden_states, cache));
  result.prefill_seconds = SecondsSince(t0);
  t0 = std::chrono::steady_clock::now();

  std::mt19937_64 rng(request.sampling.seed.has_value() ? *request.sampling.seed
                                                        : std::random_device{}());
  std::vector<bool> finished(B, false);
  std::vector<int64_t> next(B, request.pad_token_id);
  auto finish = [&](int64_t b, FinishReason reason) {
    finished[b] = true;
    result.rows[b].finish_reason = reason;
  };
  for (int64_t step = 0; step < request.max_new_tokens; ++step) {
    try {
      if (request.on_logits) request.on_logits(step, logits);
      if (logits.scalar_type() != at::kFloat || !logits.is_contiguous() ||
          logits.size(0) != B || logits.size(1) != V) {
        return absl::InternalError("unexpected logits layout");
      }
    } catch (const std::exception& e) {
      return StatusFromException(e, "generation");
    }
    float* base = logits.data_ptr<float>();
    bool cancel_all = false;
    for (int64_t b = 0; b < B; ++b) {
      if (finished[b]) {
        next[b] = request.pad_token_id;
        continue;
      }
      RowResult& row = result.rows[b];
      absl::Span<float> scores(base + b * V, V);
      const int64_t token = SelectNextToken(scores, history[b], request.sampling, rng);
      next[b] = token;
      row.token_ids.push_back(token);
      row.completion_tokens = row.token_ids.size();
      history[b].push_back(token);
      const StreamAction action =
          request.on_token ? request.on_token(b, token) : StreamAction::kContinue;

      const std::optional<FinishReason> reason = RecordToken(request, row, token, action);
      if (reason.has_value()) {
        finish(b, *reason);
        if (*reason == FinishReason::kCancelled && action == StreamAction::kCancelAll) {
          cancel_all = true;
          break;
        }
      }
    }
    if (cancel_all) {
      for (int64_t b = 0; b < B; ++b) {
        if (!finished[b]) finish(b, FinishReason::kCancelled);
      }
    }
    if (std::all_of(finished.begin(), finished.end(), [](bool f) { return f; })) break;
    ASSIGN_OR_RETURN(logits, model_.DecodeStep(next, cache));
    ++result.decode_steps;
  }
  result.decode_seconds = SecondsSince(t0);
  return result;
}

}  // namespace smolserve::decoder
