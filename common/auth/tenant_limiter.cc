#include "common/auth/tenant_limiter.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <utility>

#include "absl/strings/cord.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace smolserve::auth {
namespace {

constexpr int64_t kConcurrencyRetryMs = 1000;
constexpr size_t kMaxTenantInMessage = 64;

absl::Time SteadyNow() {
  return absl::UnixEpoch() + absl::FromChrono(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                 std::chrono::steady_clock::now().time_since_epoch()));
}

std::string ShownTenant(const std::string& tenant) {
  if (tenant.size() <= kMaxTenantInMessage) return absl::CHexEscape(tenant);
  return absl::StrCat(absl::CHexEscape(tenant.substr(0, kMaxTenantInMessage)), "...");
}

}  // namespace

TenantLimiter::TenantLimiter(TenantLimits limits, std::function<absl::Time()> clock)
    : limits_([&] {
        limits.max_tracked_tenants = std::max(limits.max_tracked_tenants, 1);
        return limits;
      }()),
      clock_(clock ? std::move(clock) : std::function<absl::Time()>(SteadyNow)) {}

TenantLimiter::~TenantLimiter() = default;

TenantLimiter::Permit::Permit(Permit&& other) noexcept
    : limiter_(std::exchange(other.limiter_, nullptr)),
      state_(std::exchange(other.state_, nullptr)) {}

TenantLimiter::Permit& TenantLimiter::Permit::operator=(Permit&& other) noexcept {
  if (this != &other) {
    Release();
    limiter_ = std::exchange(other.limiter_, nullptr);
    state_ = std::exchange(other.state_, nullptr);
  }
  return *this;
}

void TenantLimiter::Permit::Release() {
  if (limiter_ == nullptr) return;
  std::exchange(limiter_, nullptr)->ReleaseSlot(std::exchange(state_, nullptr));
}

void TenantLimiter::ReleaseSlot(TenantState* state) {
  std::lock_guard<std::mutex> lock(mu_);
  --state->in_flight;
}

void TenantLimiter::RefillLocked(TenantState& state, absl::Time now) const {
  if (limits_.requests_per_minute <= 0 || now <= state.refilled_at) return;
  const double capacity = limits_.requests_per_minute;
  const double added =
      absl::ToDoubleSeconds(now - state.refilled_at) * limits_.requests_per_minute / 60.0;
  state.tokens = std::min(capacity, state.tokens + added);
  state.refilled_at = now;
}

void TenantLimiter::SweepLocked(absl::Time now) {
  const double capacity = limits_.requests_per_minute;
  for (auto it = tenants_.begin(); it != tenants_.end();) {
    TenantState& state = it->second;
    RefillLocked(state, now);
    const bool full = limits_.requests_per_minute <= 0 || state.tokens >= capacity;
    if (state.in_flight == 0 && full) {
      it = tenants_.erase(it);
    } else {
      ++it;
    }
  }
  // Amortization: a sweep is O(table) and must free a good share of it, or the next new
  // tenant would sweep again at once.
  const size_t target = static_cast<size_t>(limits_.max_tracked_tenants) * 3 / 4;
  if (tenants_.size() <= target) return;
  for (auto it = tenants_.begin(); it != tenants_.end();) {
    if (it->second.in_flight == 0) {
      it = tenants_.erase(it);
    } else {
      ++it;
    }
  }
}

absl::StatusOr<TenantLimiter::Permit> TenantLimiter::Admit(const std::string& tenant) {
  std::lock_guard<std::mutex> lock(mu_);
  const absl::Time now = clock_();
  auto it = tenants_.find(tenant);
  if (it == tenants_.end()) {
    if (tenants_.size() >= static_cast<size_t>(limits_.max_tracked_tenants)) SweepLocked(now);
    TenantState fresh;
    fresh.tokens = std::max(limits_.requests_per_minute, 0);
    fresh.refilled_at = now;
    it = tenants_.emplace(tenant, fresh).first;
  }
  TenantState& state = it->second;
  RefillLocked(state, now);

  if (limits_.max_concurrent > 0 && state.in_flight >= limits_.max_concurrent) {
    return WithRetryAfter(
        absl::ResourceExhaustedError(absl::StrCat("tenant '", ShownTenant(tenant), "' has ",
                                                  state.in_flight, " requests in flight (limit ",
                                                  limits_.max_concurrent, ")")),
        kConcurrencyRetryMs);
  }
  if (limits_.requests_per_minute > 0 && state.tokens < 1.0) {
    const double wait_ms = (1.0 - state.tokens) * 60000.0 / limits_.requests_per_minute;
    const int64_t retry_ms = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(wait_ms)));
    return WithRetryAfter(
        absl::ResourceExhaustedError(absl::StrCat("tenant '", ShownTenant(tenant), "' is over ",
                                                  limits_.requests_per_minute,
                                                  " requests per minute")),
        retry_ms);
  }
  if (limits_.requests_per_minute > 0) state.tokens -= 1.0;
  ++state.in_flight;
  return Permit(this, &state);
}

int TenantLimiter::in_flight(const std::string& tenant) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = tenants_.find(tenant);
  return it == tenants_.end() ? 0 : it->second.in_flight;
}

size_t TenantLimiter::tracked_tenants() const {
  std::lock_guard<std::mutex> lock(mu_);
  return tenants_.size();
}

}  // namespace smolserve::auth
