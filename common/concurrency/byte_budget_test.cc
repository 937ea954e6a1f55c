#include "common/concurrency/byte_budget.h"

#include <atomic>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace smolserve {
namespace {

TEST(ByteBudget, RefusesWhatDoesNotFitAndReturnsBytesOnRelease) {
  ByteBudget budget(100);
  auto a = budget.TryReserve(60);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(budget.TryReserve(41), nullptr);
  auto b = budget.TryReserve(40);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(budget.in_use(), 100);
  a.reset();
  EXPECT_EQ(budget.in_use(), 40);
  ByteBudget::Reservation moved = std::move(*b);
  EXPECT_EQ(budget.in_use(), 40);
  moved.Release();
  moved.Release();
  EXPECT_EQ(budget.in_use(), 0);
}

TEST(ByteBudget, UnboundedCountsButNeverRefuses) {
  ByteBudget budget(0);
  auto a = budget.TryReserve(int64_t{1} << 50);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(budget.in_use(), int64_t{1} << 50);
}

TEST(ByteBudget, NeverOverTheBoundUnderContention) {
  ByteBudget budget(1000);
  std::atomic<int64_t> peak{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 2000; ++i) {
        auto r = budget.TryReserve(300);
        if (r == nullptr) continue;
        int64_t now = budget.in_use();
        int64_t p = peak.load();
        while (now > p && !peak.compare_exchange_weak(p, now)) {
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_LE(peak.load(), 1000);
  EXPECT_EQ(budget.in_use(), 0);
}

}  // namespace
}  // namespace smolserve
