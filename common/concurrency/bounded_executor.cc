#include "common/concurrency/bounded_executor.h"

namespace smolserve {

BoundedExecutor::BoundedExecutor(int num_threads, int max_queue, std::function<void()> thread_init)
    : max_queue_(max_queue), thread_init_(std::move(thread_init)) {
  for (int i = 0; i < num_threads; ++i) threads_.emplace_back([this] { Worker(); });
}

BoundedExecutor::~BoundedExecutor() { Shutdown(); }

bool BoundedExecutor::TrySubmit(std::function<void()> task) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return false;
    // Idle workers take tasks at once, so only work beyond them counts against the queue.
    const int idle = static_cast<int>(threads_.size()) - running_ - static_cast<int>(queue_.size());
    if (idle <= 0 && static_cast<int>(queue_.size()) >= max_queue_) return false;
    queue_.push_back(std::move(task));
  }
  cv_.notify_one();
  return true;
}

void BoundedExecutor::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ && threads_.empty()) return;
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  std::lock_guard<std::mutex> lock(mu_);
  threads_.clear();
}

int BoundedExecutor::queued() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(queue_.size());
}

int BoundedExecutor::running() const {
  std::lock_guard<std::mutex> lock(mu_);
  return running_;
}

void BoundedExecutor::Worker() {
  if (thread_init_) thread_init_();
  for (;;) {
    std::function<void()> task;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping and drained
      task = std::move(queue_.front());
      queue_.pop_front();
      ++running_;
    }
    task();
    std::lock_guard<std::mutex> lock(mu_);
    --running_;
  }
}

}  // namespace smolserve
