// Stop strings over streamed text, incrementally: text goes in as it is decoded; what comes out
// is the text that can no longer be the start of a stop string, so a stop string is never
// streamed to the client, and the generation ends at the first complete one. Work per token is
// bounded by the stop strings' lengths, not by the length of the answer.
#ifndef SMOLSERVE_SERVICES_DECODER_CORE_STOP_MATCHER_H_
#define SMOLSERVE_SERVICES_DECODER_CORE_STOP_MATCHER_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace smolserve::decoder {

class StopMatcher {
 public:
  // Empty strings are ignored. `stops` should be bounded (GenerationLimits).
  explicit StopMatcher(std::vector<std::string> stops);

  struct Step {
    std::string text;     // safe to emit now (whole UTF-8 characters)
    bool stopped = false;  // a stop string completed: `text` ends just before it
    std::string matched;   // that stop string
  };
  // Adds decoded text (whole UTF-8 characters). After a stop, further calls return nothing.
  Step Add(absl::string_view text);
  // The text held back at the end of a generation that did not stop on a stop string.
  std::string Flush();

 private:
  std::vector<std::string> stops_;
  size_t max_len_ = 0;
  std::string held_;  // text that may still become the start of a stop string
  bool stopped_ = false;
};

}  // namespace smolserve::decoder

#endif  // SMOLSERVE_SERVICES_DECODER_CORE_STOP_MATCHER_H_
