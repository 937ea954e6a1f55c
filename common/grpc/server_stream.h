// A server-streaming reactor that other threads feed: Push() queues a message, Finish()
// ends the stream after the queued messages are written. Writes go out one at a time as
// gRPC requires. The shared ServerStream outlives the reactor, so a producer may keep
// pushing after the client has gone (pushes are then dropped) and learns of it through
// cancelled().
#ifndef SMOLSERVE_COMMON_GRPC_SERVER_STREAM_H_
#define SMOLSERVE_COMMON_GRPC_SERVER_STREAM_H_

#include <atomic>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <utility>

#include <grpcpp/grpcpp.h>

namespace smolserve::grpc_util {

template <typename Msg>
class ServerStream : public std::enable_shared_from_this<ServerStream<Msg>> {
 public:
  // Creates the reactor to return from the handler and the stream producers use.
  static std::pair<::grpc::ServerWriteReactor<Msg>*, std::shared_ptr<ServerStream>> Create() {
    auto stream = std::shared_ptr<ServerStream>(new ServerStream());
    auto* reactor = new Reactor(stream);
    stream->reactor_ = reactor;
    return {reactor, stream};
  }

  // True once the client cancelled, disconnected or a write failed.
  bool cancelled() const { return cancelled_.load(); }

  // Runs `fn` once when the stream becomes cancelled (at once if it already is), on the thread
  // that notices it; `fn` must be short and must not call back into the stream. One callback.
  void OnCancel(std::function<void()> fn) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!cancelled_) {
        on_cancel_ = std::move(fn);
        return;
      }
    }
    fn();
  }

  void Push(Msg msg) {
    std::lock_guard<std::mutex> lock(mu_);
    if (reactor_ == nullptr || finishing_ || cancelled_) return;
    pending_.push_back(std::move(msg));
    MaybeWriteLocked();
  }

  void Finish(const ::grpc::Status& status) {
    std::lock_guard<std::mutex> lock(mu_);
    if (finishing_) return;
    finishing_ = true;
    status_ = status;
    if (cancelled_) pending_.clear();
    MaybeWriteLocked();
  }

 private:
  class Reactor : public ::grpc::ServerWriteReactor<Msg> {
   public:
    explicit Reactor(std::shared_ptr<ServerStream> stream) : stream_(std::move(stream)) {}
    void OnWriteDone(bool ok) override {
      std::function<void()> notify;
      {
        std::lock_guard<std::mutex> lock(stream_->mu_);
        stream_->writing_ = false;
        if (!ok) {
          notify = stream_->MarkCancelledLocked();
          stream_->pending_.clear();
        } else {
          stream_->pending_.pop_front();
        }
        stream_->MaybeWriteLocked();
      }
      if (notify) notify();
    }
    void OnCancel() override {
      std::function<void()> notify;
      {
        std::lock_guard<std::mutex> lock(stream_->mu_);
        notify = stream_->MarkCancelledLocked();
      }
      if (notify) notify();
    }
    void OnDone() override {
      {
        std::lock_guard<std::mutex> lock(stream_->mu_);
        stream_->reactor_ = nullptr;
      }
      delete this;
    }

   private:
    std::shared_ptr<ServerStream> stream_;
  };

  ServerStream() = default;

  // Sets the flag; returns the cancel callback to run (outside the lock), once.
  std::function<void()> MarkCancelledLocked() {
    cancelled_ = true;
    return std::exchange(on_cancel_, nullptr);
  }

  void MaybeWriteLocked() {
    if (reactor_ == nullptr || writing_ || finished_) return;
    if (!pending_.empty() && !cancelled_) {
      writing_ = true;
      reactor_->StartWrite(&pending_.front());
    } else if (finishing_) {
      finished_ = true;
      reactor_->Finish(cancelled_ && status_.ok()
                           ? ::grpc::Status(::grpc::StatusCode::CANCELLED, "cancelled")
                           : status_);
    }
  }

  std::mutex mu_;
  Reactor* reactor_ = nullptr;
  std::deque<Msg> pending_;  // front() is being written while writing_
  bool writing_ = false;
  bool finishing_ = false;
  bool finished_ = false;
  std::atomic<bool> cancelled_{false};
  std::function<void()> on_cancel_;  // guarded by mu_
  ::grpc::Status status_;
};

}  // namespace smolserve::grpc_util

#endif  // SMOLSERVE_COMMON_GRPC_SERVER_STREAM_H_
