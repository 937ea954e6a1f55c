#include "common/concurrency/cancellation.h"

#include <utility>

namespace smolserve {

CancellationToken::Registration::Registration(Registration&& other) noexcept
    : token_(std::exchange(other.token_, nullptr)), id_(other.id_) {}

CancellationToken::Registration& CancellationToken::Registration::operator=(
    Registration&& other) noexcept {
  if (this != &other) {
    if (token_ != nullptr) token_->Unregister(id_);
    token_ = std::exchange(other.token_, nullptr);
    id_ = other.id_;
  }
  return *this;
}

CancellationToken::Registration::~Registration() {
  if (token_ != nullptr) token_->Unregister(id_);
}

void CancellationToken::Cancel() {
  std::lock_guard<std::mutex> lock(mu_);
  if (cancelled_.exchange(true, std::memory_order_acq_rel)) return;
  for (auto& [id, fn] : callbacks_) fn();
  callbacks_.clear();
}

CancellationToken::Registration CancellationToken::OnCancel(std::function<void()> fn) {
  std::lock_guard<std::mutex> lock(mu_);
  if (cancelled_.load(std::memory_order_acquire)) {
    fn();
    return Registration();
  }
  const uint64_t id = next_id_++;
  callbacks_.emplace(id, std::move(fn));
  return Registration(this, id);
}

void CancellationToken::Unregister(uint64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  callbacks_.erase(id);
}

}  // namespace smolserve
