#include "common/concurrency/byte_budget.h"

#include <utility>

namespace smolserve {

ByteBudget::Reservation& ByteBudget::Reservation::operator=(Reservation&& o) noexcept {
  if (this != &o) {
    Release();
    budget_ = std::exchange(o.budget_, nullptr);
    bytes_ = o.bytes_;
  }
  return *this;
}

void ByteBudget::Reservation::Release() {
  if (budget_ == nullptr) return;
  budget_->in_use_.fetch_sub(bytes_);
  budget_ = nullptr;
}

std::unique_ptr<ByteBudget::Reservation> ByteBudget::TryReserve(int64_t bytes) {
  if (bytes < 0) bytes = 0;
  int64_t now = in_use_.load();
  do {
    if (max_bytes_ > 0 && now + bytes > max_bytes_) return nullptr;
  } while (!in_use_.compare_exchange_weak(now, now + bytes));
  return std::unique_ptr<Reservation>(new Reservation(this, bytes));
}

}  // namespace smolserve
