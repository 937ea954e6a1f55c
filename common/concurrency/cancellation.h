// A flag one party raises and others watch, with callbacks. The transport that received a
// request raises it when the client goes away (or its deadline passes); the work done for the
// request registers callbacks that abort what they are blocked on (an outgoing RPC, a media
// download, a generation in the decoder).
//
// Threads: every method may be called from any thread. Callbacks run on the thread that calls
// Cancel() (or, when already cancelled, on the thread that registers), under the token's
// lock: they must be short and must not register or unregister on the same token.
// Destroying a Registration waits for a callback of it that is running.
#ifndef SMOLSERVE_COMMON_CONCURRENCY_CANCELLATION_H_
#define SMOLSERVE_COMMON_CONCURRENCY_CANCELLATION_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>

namespace smolserve {

class CancellationToken {
 public:
  CancellationToken() = default;
  CancellationToken(const CancellationToken&) = delete;
  CancellationToken& operator=(const CancellationToken&) = delete;

  // Unregisters its callback when destroyed. Must not outlive the token.
  class Registration {
   public:
    Registration() = default;
    Registration(Registration&& other) noexcept;
    Registration& operator=(Registration&& other) noexcept;
    ~Registration();

   private:
    friend class CancellationToken;
    Registration(CancellationToken* token, uint64_t id) : token_(token), id_(id) {}
    CancellationToken* token_ = nullptr;
    uint64_t id_ = 0;
  };

  // Raises the flag and runs every registered callback once. Later calls do nothing.
  void Cancel();
  bool cancelled() const { return cancelled_.load(std::memory_order_acquire); }

  // Runs `fn` at Cancel(), or at once when the token is already cancelled.
  [[nodiscard]] Registration OnCancel(std::function<void()> fn);

 private:
  void Unregister(uint64_t id);

  std::atomic<bool> cancelled_{false};
  std::mutex mu_;
  uint64_t next_id_ = 1;                              // guarded by mu_
  std::map<uint64_t, std::function<void()>> callbacks_;  // guarded by mu_
};

}  // namespace smolserve

#endif  // SMOLSERVE_COMMON_CONCURRENCY_CANCELLATION_H_
