// Who may use the front, and how much: the API keys (optional) and the per-tenant limits, one
// behaviour for every transport. The gRPC adapter passes the "authorization" metadata, the HTTP
// API the Authorization header; both get a Ticket (the tenant and its concurrency slot, held
// until the request ends) or the refusal to send back:
//   UNAUTHENTICATED    missing or wrong key (HTTP 401)
//   RESOURCE_EXHAUSTED the tenant's rate or concurrency limit, with a retry hint (HTTP 429)
//
// Threads: Admit may be called from any number of threads at once.
#ifndef SMOLSERVE_SERVICES_PREPROCESS_CORE_ADMISSION_H_
#define SMOLSERVE_SERVICES_PREPROCESS_CORE_ADMISSION_H_

#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/auth/api_keys.h"
#include "common/auth/tenant_limiter.h"
#include "common/metrics/stage_metrics.h"

namespace smolserve::preprocess {

class Admission {
 public:
  // No keys: every caller is the tenant "" (and the limits apply to all callers together).
  // `metrics` may be null; otherwise the tenants are declared on it.
  Admission(std::optional<auth::ApiKeys> keys, auth::TenantLimits limits,
            metrics::StageMetrics* metrics);

  struct Ticket {
    std::string tenant;
    auth::TenantLimiter::Permit permit;  // released when the ticket is destroyed
  };

  // `authorization`: "Bearer <key>", or "" when the caller sent none.
  absl::StatusOr<Ticket> Admit(absl::string_view authorization);

  bool requires_key() const { return keys_.has_value(); }

 private:
  std::optional<auth::ApiKeys> keys_;
  auth::TenantLimiter limiter_;
  metrics::StageMetrics* metrics_;
};

}  // namespace smolserve::preprocess

#endif  // SMOLSERVE_SERVICES_PREPROCESS_CORE_ADMISSION_H_
