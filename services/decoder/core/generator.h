// Token generation over a TextModel with Hugging Face generate() semantics (reference doc §7):
// batched prefill with left padding, then one decode step per new token; greedy or sampling
// (logits_processor.h); per-row stopping. A finished row produces no more tokens (its input
// in later steps is pad_token_id, as HF does; its results are unaffected).
//
// Per row and step, after choosing a token: it is appended to the row's ids, on_token is
// called, then the row finishes with
//   kStop       the token is an EOS id (unless ignore_eos), a stop token sequence or stop
//               string has just been completed, or on_token returned kStop;
//               the EOS / stop tokens are included in the ids (HF includes EOS);
//   kCancelled  on_token returned kCancelRow / kCancelAll (the token is included);
//   kLength     max_new_tokens tokens were generated.
// Generation ends when every row has finished.
#ifndef SMOLSERVE_SERVICES_DECODER_CORE_GENERATOR_H_
#define SMOLSERVE_SERVICES_DECODER_CORE_GENERATOR_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/generation/generation_result.h"
#include "common/model/config.h"
#include "services/decoder/core/logits_processor.h"
#include "services/decoder/core/text_model.h"

namespace smolserve::decoder {

inline constexpr int64_t kDefaultEosTokenId = 49279;  // <end_of_utterance>
inline constexpr int64_t kDefaultPadTokenId = 2;      // <|im_end|>

using ::smolserve::FinishReason;      // common/generation/generation_result.h
using ::smolserve::FinishReasonName;  // "stop", "length", "cancelled"

// What a streaming callback asks for after seeing a token.
enum class StreamAction {
  kContinue,
  kStop,       // finish this row with reason kStop (e.g. the caller matched a stop string)
  kCancelRow,  // finish this row with reason kCancelled
  kCancelAll,  // finish every unfinished row with reason kCancelled
};

struct GenerateRequest {
  // Prompt rows. With an empty attention_mask, rows may differ in length and are left-padded
  // with pad_token_id; otherwise all rows have the same length and the mask (0/1, left
  // padding) has the same shape.
  std::vector<std::vector<int64_t>> input_ids;
  std::vector<std::vector<int64_t>> attention_mask;
  // Connector output [n_images, S, D] written at the `<image>` positions in order, or
  // undefined (no images).
  at::Tensor image_hidden_states;

  int64_t max_new_tokens = 20;  // >= 1 (HF's default max_length 20 -> 20 new tokens)
  SamplingParams sampling;      // greedy by default
  std::vector<int64_t> eos_token_ids = {kDefaultEosTokenId};
  bool ignore_eos = false;
  int64_t pad_token_id = kDefaultPadTokenId;

  // A row stops (reason kStop) as soon as its generated ids end with one of these.
  std::vector<std::vector<int64_t>> stop_token_sequences;
  // A row stops (reason kStop) as soon as detokenize(its generated ids) contains one of these.
  // Requires `detokenize` (the tokenizer lives outside this library).
  std::vector<std::string> stop_strings;
  std::function<std::string(absl::Span<const int64_t> generated_ids)> detokenize;

  // Streaming: called for every new token of every row, in row order within a step.
  std::function<StreamAction(int64_t row, int64_t token_id)> on_token;
  // Observer of the raw float32 logits [B, V] at each step (before any processing); rows
  // already finished hold garbage. For tests and log-probabilities.
  std::function<void(int64_t step, const at::Tensor& logits)> on_logits;
};

// Fills eos/pad ids, sampling defaults and max_new_tokens from generation_config.json values
// that are present (pad falls back to the first eos id when absent, as HF does).
void ApplyGenerationConfig(const model::GenerationConfig& config, GenerateRequest& request);

struct RowResult {
  std::vector<int64_t> token_ids;  // generated ids only (EOS / stop tokens included)
  FinishReason finish_reason = FinishReason::kLength;
  int64_t prompt_tokens = 0;       // real (unpadded) prompt tokens
  int64_t completion_tokens = 0;   // == token_ids.size()
  std::string matched_stop;        // the stop string that ended the row, if any
};

struct GenerateResult {
  std::vector<RowResult> rows;
  int64_t prompt_columns = 0;  // padded prompt length L
  int64_t decode_steps = 0;    // decode forward passes run
  double prefill_seconds = 0;
  double decode_seconds = 0;
};

// The checks Generate() applies to a request (shared with the batch engine).
absl::Status ValidateGenerateRequest(const GenerateRequest& request, const TextModelDims& dims);

// After `token` was appended to row.token_ids and the stream callback answered `action`:
// whether (and why) the row finishes now, by the rules above (EOS, stop sequences and strings,
// the callback's action, max_new_tokens). Sets row.matched_stop when a stop string matched.
std::optional<FinishReason> RecordToken(const GenerateRequest& request, RowResult& row,
                                        int64_t token, StreamAction action);

class Generator {
 public:
  // `model` must outlive the generator. Generate() is const and may run concurrently.
  explicit Generator(const TextModel& model) : model_(model) {}

  // INVALID_ARGUMENT for malformed requests (empty rows, shape mismatches, bad sampling
  // values, stop strings without detokenize, too long for max_position_embeddings, ...);
  // otherwise the model's errors.
  absl::StatusOr<GenerateResult> Generate(const GenerateRequest& request) const;

 private:
  const TextModel& model_;
};

}  // namespace smolserve::decoder

#endif  // SMOLSERVE_SERVICES_DECODER_CORE_GENERATOR_H_
