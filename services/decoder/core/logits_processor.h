// Logits processing and token selection with Hugging Face generate() semantics.
//
// Order (transformers' _get_logits_processor): repetition penalty (also in greedy mode), then,
// only when sampling, temperature, top-k, top-p; then argmax (greedy) or a draw from
// softmax(scores) (sampling). All functions work in place on one row of float32 scores.
//
// Semantics (transformers generation/logits_process.py):
//  - repetition penalty: for every distinct id already in the sequence, s < 0 ? s * p : s / p;
//  - temperature: s / t;
//  - top-k: k = min(max(k, 1), V); every score strictly below the k-th largest becomes -inf
//    (ties with the k-th are kept); k = 0 disables it;
//  - top-p: sort ascending, cumulative softmax probabilities; tokens whose cumulative
//    probability is <= 1 - p become -inf, the highest-scoring token is always kept;
//  - greedy: argmax, ties to the lowest index.
#ifndef SMOLSERVE_SERVICES_DECODER_CORE_LOGITS_PROCESSOR_H_
#define SMOLSERVE_SERVICES_DECODER_CORE_LOGITS_PROCESSOR_H_

#include <cstdint>
#include <optional>
#include <random>

#include "absl/status/status.h"
#include "absl/types/span.h"

namespace smolserve::decoder {

struct SamplingParams {
  bool do_sample = false;           // false: greedy (argmax) after the repetition penalty
  double temperature = 1.0;         // > 0; only used when sampling
  int64_t top_k = 50;               // 0 disables; HF's default is 50
  double top_p = 1.0;               // in [0, 1]; 1 disables
  double repetition_penalty = 1.0;  // > 0; 1 disables
  // Seed of the request's random generator: the same seed and request give the same tokens.
  // nullopt: seeded from std::random_device.
  std::optional<uint64_t> seed;
};

// INVALID_ARGUMENT for out-of-range values (HF raises for the same ones).
absl::Status ValidateSamplingParams(const SamplingParams& params);

void ApplyRepetitionPenalty(absl::Span<float> scores, absl::Span<const int64_t> previous_ids,
                            double penalty);
void ApplyTemperature(absl::Span<float> scores, double temperature);
void ApplyTopK(absl::Span<float> scores, int64_t top_k);
void ApplyTopP(absl::Span<float> scores, double top_p);

// Index of the largest score, the lowest index on ties (NaN never wins).
int64_t Argmax(absl::Span<const float> scores);

// Draws an index from softmax(scores) (float32 softmax, as torch.multinomial on HF's probs)
// by inverting the cumulative distribution with one uniform double from `rng`.
int64_t SampleFromScores(absl::Span<const float> scores, std::mt19937_64& rng);

// The whole pipeline for one row: penalty, then (sampling) temperature, top-k, top-p and a
// draw, or (greedy) argmax. `previous_ids` are the row's real prompt ids plus the ids
// generated so far. Modifies `scores`.
int64_t SelectNextToken(absl::Span<float> scores, absl::Span<const int64_t> previous_ids,
                        const SamplingParams& params, std::mt19937_64& rng);

}  // namespace smolserve::decoder

#endif  // SMOLSERVE_SERVICES_DECODER_CORE_LOGITS_PROCESSOR_H_
