// A retry hint on a refusal: a request refused for load (a full queue, a tenant's rate or
// concurrency limit) carries the milliseconds after which a retry can succeed. The edges turn
// it into HTTP 429 + Retry-After and gRPC RESOURCE_EXHAUSTED + "retry-after-ms" trailing
// metadata; a RESOURCE_EXHAUSTED without it means the request itself is over a size limit.
#ifndef SMOLSERVE_COMMON_STATUS_RETRY_AFTER_H_
#define SMOLSERVE_COMMON_STATUS_RETRY_AFTER_H_

#include <cstdint>
#include <optional>

#include "absl/status/status.h"

namespace smolserve {

// The status payload carrying the retry hint: decimal milliseconds (ASCII, e.g. "1000") after
// which a retry can succeed.
inline constexpr char kRetryAfterPayload[] = "type.smolserve.dev/retry_after_ms";

// `status` with the retry hint set (replacing any earlier one); ms < 0 is stored as 0. An OK
// status is returned unchanged (OK carries no payloads).
absl::Status WithRetryAfter(absl::Status status, int64_t ms);
// The retry hint of `status`, or nullopt when it has none or it is not a non-negative decimal
// integer.
std::optional<int64_t> RetryAfterMs(const absl::Status& status);

}  // namespace smolserve

#endif  // SMOLSERVE_COMMON_STATUS_RETRY_AFTER_H_
