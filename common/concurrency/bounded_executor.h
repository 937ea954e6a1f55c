// A fixed pool of worker threads fed by a bounded FIFO queue. Handlers on gRPC threads
// submit work and return at once; a full queue is refused (the caller answers
// RESOURCE_EXHAUSTED) instead of growing without bound.
#ifndef SMOLSERVE_COMMON_CONCURRENCY_BOUNDED_EXECUTOR_H_
#define SMOLSERVE_COMMON_CONCURRENCY_BOUNDED_EXECUTOR_H_

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace smolserve {

class BoundedExecutor {
 public:
  // `max_queue` tasks may wait beyond the `num_threads` running ones. `thread_init` runs
  // once on each worker before any task (e.g. LibTorch thread settings).
  BoundedExecutor(int num_threads, int max_queue, std::function<void()> thread_init = {});
  ~BoundedExecutor();  // Shutdown() then join
  BoundedExecutor(const BoundedExecutor&) = delete;
  BoundedExecutor& operator=(const BoundedExecutor&) = delete;

  // False when the queue is full or the executor is shutting down.
  bool TrySubmit(std::function<void()> task);

  // Stops accepting work; queued tasks still run. Blocks until all are done.
  void Shutdown();

  int queued() const;
  int running() const;
  int max_queue() const { return max_queue_; }

 private:
  void Worker();

  const int max_queue_;
  std::function<void()> thread_init_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  int running_ = 0;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace smolserve

#endif  // SMOLSERVE_COMMON_CONCURRENCY_BOUNDED_EXECUTOR_H_
