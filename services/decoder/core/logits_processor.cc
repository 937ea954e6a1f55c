#include "services/decoder/core/logits_processor.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "absl/strings/str_cat.h"

namespace smolserve::decoder {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Uniform double in [0, 1) from the top 53 bits (portable across standard libraries).
double Uniform(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

}  // namespace

absl::Status ValidateSamplingParams(const SamplingParams& p) {
  if (p.do_sample && !(p.temperature > 0 && std::isfinite(p.temperature))) {
    return absl::InvalidArgumentError(
        absl::StrCat("temperature must be a positive number when sampling, got ",
                     p.temperature));
  }
  if (p.top_k < 0) {
    return absl::InvalidArgumentError(absl::StrCat("top_k must be >= 0, got ", p.top_k));
  }
  if (!(p.top_p >= 0.0 && p.top_p <= 1.0)) {
    return absl::InvalidArgumentError(absl::StrCat("top_p must be in [0, 1], got ", p.top_p));
  }
  if (!(p.repetition_penalty > 0 && std::isfinite(p.repetition_penalty))) {
    return absl::InvalidArgumentError(
        absl::StrCat("repetition_penalty must be a positive number, got ",
                     p.repetition_penalty));
  }
  return absl::OkStatus();
}

void ApplyRepetitionPenalty(absl::Span<float> scores, absl::Span<const int64_t> previous_ids,
                            double penalty) {
  if (penalty == 1.0) return;
  const float p = static_cast<float>(penalty);
  std::vector<int64_t> ids(previous_ids.begin(), previous_ids.end());
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  const int64_t v = static_cast<int64_t>(scores.size());
  for (int64_t id : ids) {
    if (id < 0 || id >= v) continue;
    const float s = scores[id];
    scores[id] = s < 0 ? s * p : s / p;
  }
}

void ApplyTemperature(absl::Span<float> scores, double temperature) {
  if (temperature == 1.0) return;
  const float t = static_cast<float>(temperature);
  for (float& s : scores) s = s / t;
}

void ApplyTopK(absl::Span<float> scores, int64_t top_k) {
  const int64_t v = static_cast<int64_t>(scores.size());
  if (top_k <= 0 || v == 0) return;
  const int64_t k = std::min(std::max<int64_t>(top_k, 1), v);
  if (k == v) return;
  std::vector<float> copy(scores.begin(), scores.end());
  // NaN sorts last so it never becomes the threshold.
  auto greater = [](float a, float b) {
    if (std::isnan(a)) return false;
    if (std::isnan(b)) return true;
    return a > b;
  };
  std::nth_element(copy.begin(), copy.begin() + (k - 1), copy.end(), greater);
  const float kth = copy[k - 1];
  for (float& s : scores) {
    if (s < kth) s = kNegInf;
  }
}

void ApplyTopP(absl::Span<float> scores, double top_p) {
  if (top_p >= 1.0) return;
  // Tokens at -inf have probability 0 and are removed either way: work on the others.
  std::vector<int64_t> idx;
  idx.reserve(scores.size());
  for (int64_t i = 0; i < static_cast<int64_t>(scores.size()); ++i) {
    if (scores[i] != kNegInf && !std::isnan(scores[i])) idx.push_back(i);
  }
  if (idx.size() <= 1) return;
  // Ascending by score (ties: higher index first, so the lowest index counts as "higher").
  std::sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) {
    if (scores[a] != scores[b]) return scores[a] < scores[b];
    return a > b;
  });
  const float mx = scores[idx.back()];
  std::vector<float> probs(idx.size());
  float sum = 0.0f;
  for (size_t i = 0; i < idx.size(); ++i) {
    probs[i] = std::exp(scores[idx[i]] - mx);
    sum += probs[i];
  }
  const float threshold = static_cast<float>(1.0 - top_p);
  double cum = 0.0;  // torch's CPU cumsum accumulates in double
  for (size_t i = 0; i + 1 < idx.size(); ++i) {  // the top token is always kept
    cum += static_cast<double>(probs[i] / sum);
    if (static_cast<float>(cum) <= threshold) scores[idx[i]] = kNegInf;
  }
}

int64_t Argmax(absl::Span<const float> scores) {
  int64_t best_index = 0;
  float best = kNegInf;
  for (int64_t i = 0; i < static_cast<int64_t>(scores.size()); ++i) {
    if (scores[i] > best) {
      best = scores[i];
      best_index = i;
    }
  }
  return best_index;
}

int64_t SampleFromScores(absl::Span<const float> scores, std::mt19937_64& rng) {
  const int64_t v = static_cast<int64_t>(scores.size());
  const int64_t top = Argmax(scores);
  const float mx = scores[top];
  if (!std::isfinite(mx)) return top;
  std::vector<float> probs(v);
  double sum = 0.0;
  for (int64_t i = 0; i < v; ++i) {
    probs[i] = std::isnan(scores[i]) ? 0.0f : std::exp(scores[i] - mx);
    sum += probs[i];
  }
  const double target = Uniform(rng) * sum;
  double cum = 0.0;
  int64_t last_nonzero = top;
  for (int64_t i = 0; i < v; ++i) {
    if (probs[i] <= 0.0f) continue;
    cum += probs[i];
    last_nonzero = i;
    if (target < cum) return i;
  }
  return last_nonzero;
}

int64_t SelectNextToken(absl::Span<float> scores, absl::Span<const int64_t> previous_ids,
                        const SamplingParams& params, std::mt19937_64& rng) {
  ApplyRepetitionPenalty(scores, previous_ids, params.repetition_penalty);
  if (!params.do_sample) return Argmax(scores);
  ApplyTemperature(scores, params.temperature);
  ApplyTopK(scores, params.top_k);
  ApplyTopP(scores, params.top_p);
  return SampleFromScores(scores, rng);
}

}  // namespace smolserve::decoder
