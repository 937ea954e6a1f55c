#include "common/status/retry_after.h"

#include <algorithm>
#include <string>

#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace smolserve {

absl::Status WithRetryAfter(absl::Status status, int64_t ms) {
  if (status.ok()) return status;
  status.SetPayload(kRetryAfterPayload, absl::Cord(absl::StrCat(std::max<int64_t>(ms, 0))));
  return status;
}

std::optional<int64_t> RetryAfterMs(const absl::Status& status) {
  auto payload = status.GetPayload(kRetryAfterPayload);
  if (!payload.has_value()) return std::nullopt;
  int64_t ms = 0;
  if (!absl::SimpleAtoi(std::string(*payload), &ms) || ms < 0) return std::nullopt;
  return ms;
}

}  // namespace smolserve
