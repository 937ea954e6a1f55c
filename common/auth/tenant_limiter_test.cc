#include "common/auth/tenant_limiter.h"

#include <atomic>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace smolserve::auth {
namespace {

// A fake clock the test advances by hand.
struct FakeClock {
  absl::Time now = absl::FromUnixSeconds(1000000);
  std::function<absl::Time()> fn() {
    return [this] { return now; };
  }
};

TEST(RetryAfterTest, RoundTrip) {
  absl::Status s = WithRetryAfter(absl::UnavailableError("busy"), 250);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(s.message(), "busy");
  EXPECT_EQ(RetryAfterMs(s), 250);
  EXPECT_EQ(RetryAfterMs(WithRetryAfter(s, 7)), 7);  // replaces
  EXPECT_EQ(RetryAfterMs(WithRetryAfter(s, -5)), 0);
  EXPECT_EQ(RetryAfterMs(absl::UnavailableError("busy")), std::nullopt);
  EXPECT_TRUE(WithRetryAfter(absl::OkStatus(), 10).ok());
  EXPECT_EQ(RetryAfterMs(absl::OkStatus()), std::nullopt);
  absl::Status garbage = absl::UnavailableError("x");
  garbage.SetPayload(kRetryAfterPayload, absl::Cord("soon"));
  EXPECT_EQ(RetryAfterMs(garbage), std::nullopt);
}

TEST(TenantLimiterTest, UnlimitedByDefault) {
  TenantLimiter limiter(TenantLimits{});
  std::vector<TenantLimiter::Permit> permits;
  for (int i = 0; i < 1000; ++i) {
    absl::StatusOr<TenantLimiter::Permit> p = limiter.Admit("acme");
    ASSERT_TRUE(p.ok()) << p.status();
    permits.push_back(*std::move(p));
  }
  EXPECT_EQ(limiter.in_flight("acme"), 1000);
  permits.clear();
  EXPECT_EQ(limiter.in_flight("acme"), 0);
  EXPECT_EQ(limiter.in_flight("never-seen"), 0);
}

TEST(TenantLimiterTest, ConcurrencyLimitReleasedByDestructionAndMove) {
  TenantLimits limits;
  limits.max_concurrent = 2;
  TenantLimiter limiter(limits);
  std::optional<TenantLimiter::Permit> first;
  {
    absl::StatusOr<TenantLimiter::Permit> a = limiter.Admit("acme");
    ASSERT_TRUE(a.ok());
    first.emplace(*std::move(a));
  }
  EXPECT_EQ(limiter.in_flight("acme"), 1);  // the moved-from Permit released nothing
  {
    absl::StatusOr<TenantLimiter::Permit> b = limiter.Admit("acme");
    ASSERT_TRUE(b.ok());
    EXPECT_EQ(limiter.in_flight("acme"), 2);

    absl::StatusOr<TenantLimiter::Permit> c = limiter.Admit("acme");
    ASSERT_FALSE(c.ok());
    EXPECT_EQ(c.status().code(), absl::StatusCode::kResourceExhausted);
    EXPECT_EQ(c.status().message(), "tenant 'acme' has 2 requests in flight (limit 2)");
    EXPECT_EQ(RetryAfterMs(c.status()), 1000);
  }  // b destroyed
  EXPECT_EQ(limiter.in_flight("acme"), 1);

  // Move assignment releases the target's own slot and takes the source's.
  absl::StatusOr<TenantLimiter::Permit> d = limiter.Admit("acme");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(limiter.in_flight("acme"), 2);
  *first = *std::move(d);
  EXPECT_TRUE(first->held());
  EXPECT_FALSE(d->held());
  EXPECT_EQ(limiter.in_flight("acme"), 1);

  // Move construction transfers without releasing.
  TenantLimiter::Permit moved(std::move(*first));
  EXPECT_FALSE(first->held());
  EXPECT_EQ(limiter.in_flight("acme"), 1);
  first.reset();
  EXPECT_EQ(limiter.in_flight("acme"), 1);

  // Explicit release is idempotent.
  moved.Release();
  moved.Release();
  EXPECT_FALSE(moved.held());
  EXPECT_EQ(limiter.in_flight("acme"), 0);

  TenantLimiter::Permit empty;
  EXPECT_FALSE(empty.held());
}

TEST(TenantLimiterTest, RateLimitRefillsWithTheClock) {
  FakeClock clock;
  TenantLimits limits;
  limits.requests_per_minute = 60;  // one token per second
  TenantLimiter limiter(limits, clock.fn());
  for (int i = 0; i < 60; ++i) {
    ASSERT_TRUE(limiter.Admit("acme").ok()) << i;  // the bucket starts full
  }
  absl::StatusOr<TenantLimiter::Permit> refused = limiter.Admit("acme");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(refused.status().message(), "tenant 'acme' is over 60 requests per minute");
  ASSERT_TRUE(RetryAfterMs(refused.status()).has_value());
  EXPECT_NEAR(*RetryAfterMs(refused.status()), 1000, 1);

  clock.now += absl::Milliseconds(400);
  refused = limiter.Admit("acme");
  ASSERT_FALSE(refused.ok());
  EXPECT_NEAR(*RetryAfterMs(refused.status()), 600, 1);

  clock.now += absl::Milliseconds(600);  // one token
  EXPECT_TRUE(limiter.Admit("acme").ok());
  EXPECT_FALSE(limiter.Admit("acme").ok());

  // Refused requests took no token: 2.5 s later exactly two are admitted, then 500 ms to wait.
  clock.now += absl::Milliseconds(2500);
  EXPECT_TRUE(limiter.Admit("acme").ok());
  EXPECT_TRUE(limiter.Admit("acme").ok());
  refused = limiter.Admit("acme");
  ASSERT_FALSE(refused.ok());
  EXPECT_NEAR(*RetryAfterMs(refused.status()), 500, 1);

  // The bucket never holds more than its capacity.
  clock.now += absl::Hours(1);
  for (int i = 0; i < 60; ++i) ASSERT_TRUE(limiter.Admit("acme").ok()) << i;
  EXPECT_FALSE(limiter.Admit("acme").ok());

  // A clock that goes backwards refills nothing (and breaks nothing).
  clock.now -= absl::Seconds(30);
  EXPECT_FALSE(limiter.Admit("acme").ok());
}

TEST(TenantLimiterTest, RetryAfterForSlowRates) {
  FakeClock clock;
  TenantLimits limits;
  limits.requests_per_minute = 7;  // a token every 60/7 s = 8571.43 ms
  TenantLimiter limiter(limits, clock.fn());
  for (int i = 0; i < 7; ++i) ASSERT_TRUE(limiter.Admit("t").ok());
  absl::StatusOr<TenantLimiter::Permit> refused = limiter.Admit("t");
  ASSERT_FALSE(refused.ok());
  EXPECT_NEAR(*RetryAfterMs(refused.status()), 8571.43, 1);
  clock.now += absl::Milliseconds(*RetryAfterMs(refused.status()));
  EXPECT_TRUE(limiter.Admit("t").ok());  // the hint is enough
}

TEST(TenantLimiterTest, ConcurrencyIsCheckedBeforeRateAndTakesNoToken) {
  FakeClock clock;
  TenantLimits limits;
  limits.max_concurrent = 1;
  limits.requests_per_minute = 2;
  TenantLimiter limiter(limits, clock.fn());
  absl::StatusOr<TenantLimiter::Permit> held = limiter.Admit("acme");
  ASSERT_TRUE(held.ok());
  for (int i = 0; i < 5; ++i) {
    absl::StatusOr<TenantLimiter::Permit> r = limiter.Admit("acme");
    ASSERT_FALSE(r.ok());
    EXPECT_TRUE(absl::StrContains(r.status().message(), "in flight")) << r.status();
  }
  held->Release();
  EXPECT_TRUE(limiter.Admit("acme").ok());  // the second token is still there
  absl::StatusOr<TenantLimiter::Permit> r = limiter.Admit("acme");
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(absl::StrContains(r.status().message(), "2 requests per minute")) << r.status();
  EXPECT_NEAR(*RetryAfterMs(r.status()), 30000, 1);
}

TEST(TenantLimiterTest, TenantsAreIndependent) {
  FakeClock clock;
  TenantLimits limits;
  limits.max_concurrent = 1;
  limits.requests_per_minute = 3;
  TenantLimiter limiter(limits, clock.fn());
  absl::StatusOr<TenantLimiter::Permit> a = limiter.Admit("a");
  ASSERT_TRUE(a.ok());
  EXPECT_FALSE(limiter.Admit("a").ok());
  absl::StatusOr<TenantLimiter::Permit> b = limiter.Admit("b");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(limiter.in_flight("a"), 1);
  EXPECT_EQ(limiter.in_flight("b"), 1);
  a->Release();
  b->Release();
  // Drain a's bucket; b keeps its tokens.
  EXPECT_TRUE(limiter.Admit("a").ok());
  EXPECT_TRUE(limiter.Admit("a").ok());
  EXPECT_FALSE(limiter.Admit("a").ok());
  EXPECT_TRUE(limiter.Admit("b").ok());
  EXPECT_TRUE(limiter.Admit("b").ok());
  EXPECT_FALSE(limiter.Admit("b").ok());
  EXPECT_TRUE(limiter.Admit("c").ok());
}

TEST(TenantLimiterTest, OddTenantNamesAreEscapedAndTruncatedInMessages) {
  TenantLimits limits;
  limits.max_concurrent = 1;
  TenantLimiter limiter(limits);
  const std::string name = std::string("x'\n\x01") + std::string(200, 'y');
  absl::StatusOr<TenantLimiter::Permit> held = limiter.Admit(name);
  ASSERT_TRUE(held.ok());
  absl::StatusOr<TenantLimiter::Permit> r = limiter.Admit(name);
  ASSERT_FALSE(r.ok());
  EXPECT_FALSE(absl::StrContains(r.status().message(), "\n"));
  EXPECT_LT(r.status().message().size(), 150u) << r.status();
}

TEST(TenantLimiterTest, ManyTenantNamesStayBounded) {
  TenantLimiter limiter(TenantLimits{});  // default bound 4096
  for (int i = 0; i < 20000; ++i) {
    ASSERT_TRUE(limiter.Admit(absl::StrCat("tenant-", i)).ok());
    ASSERT_LE(limiter.tracked_tenants(), 4096u) << i;
  }
}

TEST(TenantLimiterTest, ManyTenantNamesStayBoundedWithDrainedBuckets) {
  FakeClock clock;  // never advances: no bucket ever refills
  TenantLimits limits;
  limits.requests_per_minute = 10;
  limits.max_tracked_tenants = 100;
  TenantLimiter limiter(limits, clock.fn());
  for (int i = 0; i < 5000; ++i) {
    ASSERT_TRUE(limiter.Admit(absl::StrCat("tenant-", i)).ok());
    ASSERT_LE(limiter.tracked_tenants(), 100u) << i;
  }
}

TEST(TenantLimiterTest, IdleFullBucketsAreDroppedFirstAndBusyTenantsKept) {
  FakeClock clock;
  TenantLimits limits;
  limits.requests_per_minute = 60;
  limits.max_concurrent = 1;
  limits.max_tracked_tenants = 8;
  TenantLimiter limiter(limits, clock.fn());
  // "busy" holds a slot; "drained" used up its bucket.
  absl::StatusOr<TenantLimiter::Permit> busy = limiter.Admit("busy");
  ASSERT_TRUE(busy.ok());
  for (int i = 0; i < 60; ++i) ASSERT_TRUE(limiter.Admit("drained").ok());
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(limiter.Admit(absl::StrCat("once-", i)).ok());
  EXPECT_EQ(limiter.tracked_tenants(), 8u);
  // Nothing refilled: the "once-*" buckets are at 59/60, so the sweep falls back to dropping
  // every idle tenant; "busy" stays (its Permit points at it) and still counts.
  ASSERT_TRUE(limiter.Admit("new-1").ok());
  EXPECT_EQ(limiter.tracked_tenants(), 2u);  // busy, new-1
  EXPECT_EQ(limiter.in_flight("busy"), 1);
  EXPECT_FALSE(limiter.Admit("busy").ok());

  // With time for every bucket to refill, the first pass alone frees enough.
  clock.now += absl::Seconds(61);
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(limiter.Admit(absl::StrCat("again-", i)).ok());
  EXPECT_EQ(limiter.tracked_tenants(), 8u);
  ASSERT_TRUE(limiter.Admit("new-2").ok());
  EXPECT_EQ(limiter.tracked_tenants(), 2u);  // busy, new-2
  busy->Release();
  EXPECT_EQ(limiter.in_flight("busy"), 0);
}

TEST(TenantLimiterTest, StressNeverExceedsMaxConcurrent) {
  constexpr int kThreads = 8;
  constexpr int kAdmitsPerThread = 1000;
  constexpr int kMaxConcurrent = 3;
  TenantLimits limits;
  limits.max_concurrent = kMaxConcurrent;
  TenantLimiter limiter(limits);
  std::atomic<int> current{0};
  std::atomic<int> max_seen{0};
  std::atomic<int> admitted{0};
  std::atomic<int> refused{0};
  std::atomic<int> other_tenant_admitted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kAdmitsPerThread; ++i) {
        absl::StatusOr<TenantLimiter::Permit> p = limiter.Admit("shared");
        if (!p.ok()) {
          EXPECT_EQ(p.status().code(), absl::StatusCode::kResourceExhausted);
          ++refused;
          continue;
        }
        ++admitted;
        const int now = ++current;
        int prev = max_seen.load();
        while (now > prev && !max_seen.compare_exchange_weak(prev, now)) {
        }
        if (i % 7 == t % 7) std::this_thread::yield();
        if (i % 50 == 0 && limiter.Admit(absl::StrCat("own-", t)).ok()) ++other_tenant_admitted;
        --current;  // before the slot is released
      }
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_LE(max_seen.load(), kMaxConcurrent);
  EXPECT_GE(max_seen.load(), 1);
  EXPECT_EQ(admitted.load() + refused.load(), kThreads * kAdmitsPerThread);
  EXPECT_GT(admitted.load(), 0);
  EXPECT_EQ(limiter.in_flight("shared"), 0);
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(limiter.in_flight(absl::StrCat("own-", t)), 0);
}

}  // namespace
}  // namespace smolserve::auth
