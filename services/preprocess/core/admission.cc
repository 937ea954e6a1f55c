#include "services/preprocess/core/admission.h"

#include <utility>

#include "absl/strings/match.h"

namespace smolserve::preprocess {

Admission::Admission(std::optional<auth::ApiKeys> keys, auth::TenantLimits limits,
                     metrics::StageMetrics* metrics)
    : keys_(std::move(keys)), limiter_(limits), metrics_(metrics) {
  if (metrics_ != nullptr && keys_.has_value()) metrics_->DeclareTenants(keys_->tenants());
}

absl::StatusOr<Admission::Ticket> Admission::Admit(absl::string_view authorization) {
  Ticket ticket;
  if (keys_.has_value()) {
    absl::StatusOr<auth::Principal> who = keys_->AuthenticateHeader(authorization);
    if (!who.ok()) {
      if (metrics_ != nullptr) metrics_->auth_failures->Increment();
      return who.status();
    }
    ticket.tenant = who->tenant;
  }
  absl::StatusOr<auth::TenantLimiter::Permit> permit = limiter_.Admit(ticket.tenant);
  if (!permit.ok()) {
    if (metrics_ != nullptr) {
      const bool rate = absl::StrContains(permit.status().message(), "per minute");
      metrics_->RecordTenant(ticket.tenant, rate ? "rate_limited" : "concurrency_limited");
    }
    return permit.status();
  }
  if (metrics_ != nullptr) metrics_->RecordTenant(ticket.tenant, "admitted");
  ticket.permit = *std::move(permit);
  return ticket;
}

}  // namespace smolserve::preprocess
