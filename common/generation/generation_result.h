// What a generation produces, transport-neutral: the pieces streamed while it runs and the
// outcome at its end. The decoder stage produces them, the gRPC messages carry them, and the
// front's chat pipeline and the CLI consume them.
#ifndef SMOLSERVE_COMMON_GENERATION_GENERATION_RESULT_H_
#define SMOLSERVE_COMMON_GENERATION_GENERATION_RESULT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace smolserve {

enum class FinishReason {
  kStop,       // end of utterance, a stop token sequence or a stop string
  kLength,     // max_new_tokens reached
  kCancelled,  // the client went away (only seen by observers; callers get CANCELLED)
};

// "stop", "length", "cancelled" (the names OpenAI's API and the metrics use).
inline absl::string_view FinishReasonName(FinishReason reason) {
  switch (reason) {
    case FinishReason::kStop: return "stop";
    case FinishReason::kLength: return "length";
    case FinishReason::kCancelled: return "cancelled";
  }
  return "stop";
}

// New tokens and the text they complete: UTF-8 safe (empty while a multi-byte character is
// incomplete), special tokens skipped, never past a stop string.
struct TokenDelta {
  std::vector<int32_t> token_ids;
  std::string text;
};

struct GenerationOutcome {
  FinishReason finish_reason = FinishReason::kLength;
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  int64_t cached_prompt_tokens = 0;  // prompt tokens whose KV came from a prefix cache
  double queue_ms = 0;               // waiting for a running slot / KV memory
  double prefill_ms = 0;
  double decode_ms = 0;
  std::string model_revision;  // of the model that generated it, where the transport says ("" unknown)
};

}  // namespace smolserve

#endif  // SMOLSERVE_COMMON_GENERATION_GENERATION_RESULT_H_
