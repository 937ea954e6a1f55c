// Parsing JSON that comes from outside (request bodies, request files, Hub answers) with
// nlohmann::json under a nesting-depth bound, so that a deeply nested document is refused
// before any recursive code (copying, dumping, our own walkers) can exhaust the stack.
#ifndef SMOLSERVE_COMMON_JSON_PARSE_H_
#define SMOLSERVE_COMMON_JSON_PARSE_H_

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace smolserve::json {

inline constexpr int kDefaultMaxDepth = 64;

// INVALID_ARGUMENT: not valid JSON ("... at byte N"), or nested deeper than `max_depth`
// (arrays and objects; the top level is depth 1).
absl::StatusOr<nlohmann::json> Parse(absl::string_view text, int max_depth = kDefaultMaxDepth);

}  // namespace smolserve::json

#endif  // SMOLSERVE_COMMON_JSON_PARSE_H_
