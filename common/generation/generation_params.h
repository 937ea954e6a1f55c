// What a client asks of generation, transport-neutral: the gRPC GenerationParams message, the
// request-file "generation" object and the OpenAI chat-completions fields all map to this one
// struct, and one validation (ValidateGenerationParams) runs at the edge, before any media is
// decoded, and again in the decoder stage. Unset fields take the model's
// generation_config.json and then the decoder's defaults.
#ifndef SMOLSERVE_COMMON_GENERATION_GENERATION_PARAMS_H_
#define SMOLSERVE_COMMON_GENERATION_GENERATION_PARAMS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace smolserve {

struct GenerationParams {
  std::optional<int64_t> max_new_tokens;
  std::optional<double> temperature;  // 0 = greedy; > 0 samples
  std::optional<double> top_p;        // (0, 1]
  std::optional<int64_t> top_k;       // >= 0; 0 disables
  std::optional<double> repetition_penalty;  // > 0
  std::optional<uint64_t> seed;
  bool ignore_eos = false;            // generate exactly max_new_tokens
  // Generation stops when the text contains one of these (the stop text is not returned).
  std::vector<std::string> stop;

  bool samples() const { return temperature.has_value() && *temperature > 0; }
};

// Server-side bounds on what a client may ask.
struct GenerationLimits {
  int64_t max_new_tokens = 4096;
  int max_stop_strings = 4;      // as OpenAI's API
  int max_stop_string_bytes = 256;
};

// INVALID_ARGUMENT naming the field: non-finite numbers, temperature < 0, top_p outside
// (0, 1], top_k < 0, repetition_penalty <= 0, max_new_tokens outside [1, limit], empty, too
// many or too long stop strings.
absl::Status ValidateGenerationParams(const GenerationParams& params,
                                      const GenerationLimits& limits);

// The "generation" object of the request-file format (request.h): max_new_tokens,
// temperature, top_p, top_k, repetition_penalty, seed, ignore_eos, greedy, stop (a string or a
// list). INVALID_ARGUMENT for unknown keys and wrong types ("generation.top_p: must be a
// number"). Values are checked by ValidateGenerationParams, not here.
absl::StatusOr<GenerationParams> GenerationParamsFromJson(absl::string_view json_object);

}  // namespace smolserve

#endif  // SMOLSERVE_COMMON_GENERATION_GENERATION_PARAMS_H_
