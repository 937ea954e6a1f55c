// A process-wide bound on bytes held for requests (the front's decoded media and pixel
// tensors): each request reserves what it is about to allocate and gives it back when done,
// so the sum over all requests in flight stays under the bound. A reservation that does not
// fit is refused at once (the caller sheds the request) rather than waited for.
//
// Threads: TryReserve may be called from any thread; a Reservation may be released on any.
#ifndef SMOLSERVE_COMMON_CONCURRENCY_BYTE_BUDGET_H_
#define SMOLSERVE_COMMON_CONCURRENCY_BYTE_BUDGET_H_

#include <atomic>
#include <cstdint>
#include <memory>

namespace smolserve {

class ByteBudget {
 public:
  // max_bytes <= 0: unbounded (every reservation fits; still counted).
  explicit ByteBudget(int64_t max_bytes) : max_bytes_(max_bytes) {}
  ByteBudget(const ByteBudget&) = delete;
  ByteBudget& operator=(const ByteBudget&) = delete;

  // Returns the bytes to the budget when destroyed. Movable.
  class Reservation {
   public:
    Reservation() = default;
    Reservation(Reservation&& o) noexcept : budget_(o.budget_), bytes_(o.bytes_) { o.budget_ = nullptr; }
    Reservation& operator=(Reservation&& o) noexcept;
    ~Reservation() { Release(); }
    void Release();
    int64_t bytes() const { return budget_ != nullptr ? bytes_ : 0; }

   private:
    friend class ByteBudget;
    Reservation(ByteBudget* budget, int64_t bytes) : budget_(budget), bytes_(bytes) {}
    ByteBudget* budget_ = nullptr;
    int64_t bytes_ = 0;
  };

  // A reservation of `bytes`, or nullptr when it would take the total over the bound. The
  // budget must outlive its reservations.
  std::unique_ptr<Reservation> TryReserve(int64_t bytes);

  int64_t in_use() const { return in_use_.load(); }
  int64_t max_bytes() const { return max_bytes_; }

 private:
  const int64_t max_bytes_;
  std::atomic<int64_t> in_use_{0};
};

}  // namespace smolserve

#endif  // SMOLSERVE_COMMON_CONCURRENCY_BYTE_BUDGET_H_
