// A server-streaming reactor that other threads feed: Push() queues a message, Finish()
// ends the stream after the queued messages are written. Writes go out one at a time as
// gRPC requires. The shared ServerStream outlives the reactor, so a producer may keep
// pushing after the client has gone (pushes are then dropped) and learns of it through
// cancelled().
#ifndef SMOLSERVE_COMMON_GRPC_SERVER_STREAM_H_
#define SMOLSERVE_COMMON_GRPC_SERVER_STREAM_H_

#include <atomic>
#include <deque>
#include <memory>
#include <mutex>

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
      std::lock_guard<std::mutex> lock(stream_->mu_);
      stream_->writing_ = false;
      if (!ok) {
        stream_->cancelled_ = true;
        stream_->pending_.clear();
      } else {
        stream_->pending_.pop_front();
      }
      stream_->MaybeWriteLocked();
    }
    void OnCancel() override {
      std::lock_guard<std::mutex> lock(stream_->mu_);
      stream_->cancelled_ = true;
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
  ::grpc::Status status_;
};

}  // namespace smolserve::grpc_util

#endif  // SMOLSERVE_COMMON_GRPC_SERVER_STREAM_H_
