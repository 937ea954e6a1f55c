// Per-tenant admission limits for the front: a cap on requests in flight and a token-bucket
// request rate, both per tenant (the tenant comes from ApiKeys). Admit either hands out a
// Permit, which holds one concurrency slot until it is destroyed, or refuses with
// RESOURCE_EXHAUSTED carrying a retry hint (RetryAfterMs) the edges turn into a Retry-After
// header / gRPC trailer.
//
// Rate: a bucket per tenant of capacity requests_per_minute, full when the tenant is first
// seen, refilled continuously at requests_per_minute / 60 tokens per second; each admitted
// request takes one token. A request refused for concurrency takes no token; a request refused
// for rate takes no slot.
//
// Memory: bounded whatever tenant strings arrive. When a new tenant would take the table past
// max_tracked_tenants, idle tenants (nothing in flight) whose bucket has refilled completely
// are dropped, which loses nothing; if that frees less than a quarter of the table, all idle
// tenants are dropped (their partly drained buckets are forgotten and start full again, erring
// towards admission; with tenants from a keys file of fewer than max_tracked_tenants names this
// never happens). Tenants with requests in flight are never dropped, so the table holds at most
// max(max_tracked_tenants, tenants with a live Permit + 1) entries.
//
// Threads: every method may be called from any thread; one mutex guards all state (the
// clock is called with it held, so a clock must not call back into the limiter). Permits may
// be destroyed on any thread, but must not outlive their limiter.
#ifndef SMOLSERVE_COMMON_AUTH_TENANT_LIMITER_H_
#define SMOLSERVE_COMMON_AUTH_TENANT_LIMITER_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/status/retry_after.h"
#include "absl/time/time.h"

namespace smolserve::auth {

// The retry hint of a refusal: common/status/retry_after.h (WithRetryAfter, RetryAfterMs).
using ::smolserve::RetryAfterMs;
using ::smolserve::WithRetryAfter;

struct TenantLimits {
  int max_concurrent = 0;       // requests in flight per tenant; <= 0: unlimited
  // Token bucket: capacity = requests_per_minute, refilled continuously at rpm/60 per second;
  // <= 0: unlimited.
  int requests_per_minute = 0;
  // Bound on the per-tenant table (see the file comment); values < 1 are taken as 1.
  int max_tracked_tenants = 4096;
};

class TenantLimiter {
 private:
  struct TenantState;

 public:
  // `clock` returns the current time; only differences between its readings matter, and it
  // should not go backwards (a reading earlier than the last one refills nothing). Empty: a
  // monotonic clock (std::chrono::steady_clock mapped onto absl::Time). Tests inject a fake.
  explicit TenantLimiter(TenantLimits limits, std::function<absl::Time()> clock = {});
  ~TenantLimiter();
  TenantLimiter(const TenantLimiter&) = delete;
  TenantLimiter& operator=(const TenantLimiter&) = delete;

  // One admitted request's concurrency slot, released when the Permit is destroyed, assigned
  // over, or Release()d. Movable (the moved-from Permit holds nothing), not copyable. A
  // default-constructed Permit holds nothing.
  class Permit {
   public:
    Permit() = default;
    ~Permit() { Release(); }
    Permit(Permit&& other) noexcept;
    Permit& operator=(Permit&& other) noexcept;
    Permit(const Permit&) = delete;
    Permit& operator=(const Permit&) = delete;

    // Gives the slot back now; idempotent.
    void Release();
    bool held() const { return limiter_ != nullptr; }

   private:
    friend class TenantLimiter;
    Permit(TenantLimiter* limiter, TenantState* state) : limiter_(limiter), state_(state) {}
    TenantLimiter* limiter_ = nullptr;
    TenantState* state_ = nullptr;  // stable: a tenant with a live Permit is never dropped
  };

  // Admits one request of `tenant`, or RESOURCE_EXHAUSTED with the retry hint set:
  //   "tenant 'x' has 16 requests in flight (limit 16)"  retry_after_ms = 1000
  //   "tenant 'x' is over 60 requests per minute"        retry_after_ms = time until one
  //                                                      token is available (ceil, >= 1)
  // The concurrency limit is checked first. Any string is accepted as a tenant name (shown
  // C-escaped, at most 64 characters, in messages).
  absl::StatusOr<Permit> Admit(const std::string& tenant);

  // Requests of `tenant` currently in flight (0 for an unknown tenant). For metrics and tests.
  int in_flight(const std::string& tenant) const;
  // Entries in the per-tenant table. For tests of the memory bound.
  size_t tracked_tenants() const;

  const TenantLimits& limits() const { return limits_; }

 private:
  struct TenantState {
    int in_flight = 0;
    double tokens = 0;  // when requests_per_minute > 0
    absl::Time refilled_at;
  };

  void RefillLocked(TenantState& state, absl::Time now) const;
  void SweepLocked(absl::Time now);
  void ReleaseSlot(TenantState* state);

  const TenantLimits limits_;
  const std::function<absl::Time()> clock_;
  mutable std::mutex mu_;
  // std::unordered_map: node-based, so TenantState addresses survive rehashing.
  std::unordered_map<std::string, TenantState> tenants_;
};

}  // namespace smolserve::auth

#endif  // SMOLSERVE_COMMON_AUTH_TENANT_LIMITER_H_
