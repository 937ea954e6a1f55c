#include "common/concurrency/bounded_executor.h"

#include <atomic>
#include <future>

#include "gtest/gtest.h"

namespace smolserve {
namespace {

TEST(BoundedExecutor, RunsTasksAndRefusesBeyondTheQueue) {
  std::promise<void> release;
  std::shared_future<void> gate = release.get_future().share();
  std::atomic<int> done{0};
  std::atomic<int> inits{0};
  BoundedExecutor ex(/*num_threads=*/1, /*max_queue=*/2, [&] { ++inits; });
  std::promise<void> started;
  ASSERT_TRUE(ex.TrySubmit([&] { started.set_value(); gate.wait(); ++done; }));
  started.get_future().wait();  // the worker is busy now
  EXPECT_TRUE(ex.TrySubmit([&] { ++done; }));
  EXPECT_TRUE(ex.TrySubmit([&] { ++done; }));
  EXPECT_EQ(ex.queued(), 2);
  EXPECT_EQ(ex.running(), 1);
  EXPECT_FALSE(ex.TrySubmit([&] { ++done; }));  // full
  release.set_value();
  ex.Shutdown();
  EXPECT_EQ(done.load(), 3);
  EXPECT_EQ(inits.load(), 1);
  EXPECT_FALSE(ex.TrySubmit([] {}));  // shut down
}

TEST(BoundedExecutor, ZeroQueueStillUsesIdleWorkers) {
  BoundedExecutor ex(2, 0);
  std::atomic<int> done{0};
  std::promise<void> a, b;
  EXPECT_TRUE(ex.TrySubmit([&] { ++done; a.set_value(); }));
  a.get_future().wait();
  EXPECT_TRUE(ex.TrySubmit([&] { ++done; b.set_value(); }));
  b.get_future().wait();
  ex.Shutdown();
  EXPECT_EQ(done.load(), 2);
}

}  // namespace
}  // namespace smolserve
