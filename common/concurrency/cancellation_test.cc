#include "common/concurrency/cancellation.h"

#include <atomic>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace smolserve {
namespace {

TEST(CancellationToken, RunsCallbacksOnceAtCancel) {
  CancellationToken token;
  int calls = 0;
  auto reg = token.OnCancel([&] { ++calls; });
  EXPECT_FALSE(token.cancelled());
  token.Cancel();
  token.Cancel();
  EXPECT_TRUE(token.cancelled());
  EXPECT_EQ(calls, 1);
}

TEST(CancellationToken, RegisteringAfterCancelRunsAtOnce) {
  CancellationToken token;
  token.Cancel();
  int calls = 0;
  auto reg = token.OnCancel([&] { ++calls; });
  EXPECT_EQ(calls, 1);
}

TEST(CancellationToken, DestroyedRegistrationIsNotCalled) {
  CancellationToken token;
  int calls = 0;
  { auto reg = token.OnCancel([&] { ++calls; }); }
  auto kept = token.OnCancel([&] { calls += 10; });
  token.Cancel();
  EXPECT_EQ(calls, 10);
}

TEST(CancellationToken, MovedRegistrationStaysRegistered) {
  CancellationToken token;
  int calls = 0;
  CancellationToken::Registration outer;
  {
    auto reg = token.OnCancel([&] { ++calls; });
    outer = std::move(reg);
  }
  token.Cancel();
  EXPECT_EQ(calls, 1);
}

TEST(CancellationToken, ConcurrentRegisterAndCancel) {
  for (int round = 0; round < 50; ++round) {
    CancellationToken token;
    std::atomic<int> calls{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&] {
        for (int i = 0; i < 100; ++i) {
          auto reg = token.OnCancel([&] { calls.fetch_add(1); });
          if (i % 2 == 0) continue;  // destroyed at once
          std::this_thread::yield();
        }
      });
    }
    token.Cancel();
    for (auto& t : threads) t.join();
    EXPECT_TRUE(token.cancelled());
    EXPECT_LE(calls.load(), 400);
  }
}

}  // namespace
}  // namespace smolserve
