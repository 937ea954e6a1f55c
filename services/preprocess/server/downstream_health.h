// Whether the stages the front calls can serve: each stage's grpc.health.v1 is asked every
// `interval` over the front's own channel (same TLS, same balancing). The front's HTTP
// /health and its gRPC health follow it, so a front whose vision or decoder stage has no ready
// endpoint is not ready either.
#ifndef SMOLSERVE_SERVICES_PREPROCESS_SERVER_DOWNSTREAM_HEALTH_H_
#define SMOLSERVE_SERVICES_PREPROCESS_SERVER_DOWNSTREAM_HEALTH_H_

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/time/time.h"

namespace smolserve::preprocess {

class DownstreamHealth {
 public:
  using Stage = std::pair<std::string, std::shared_ptr<::grpc::Channel>>;  // name, channel
  // Starts the checking thread; `on_change` (may be empty) runs on it after the first check
  // and whenever readiness flips, with Describe()'s text.
  DownstreamHealth(std::vector<Stage> stages, absl::Duration interval,
                   std::function<void(bool ready, const std::string& why)> on_change);
  ~DownstreamHealth();

  bool ready() const { return ready_.load(); }
  // "vision: SERVING, decoder: NOT_SERVING (...)" as of the last check.
  std::string Describe() const;

 private:
  void Loop();
  bool CheckAll();

  std::vector<Stage> stages_;
  const absl::Duration interval_;
  std::function<void(bool, const std::string&)> on_change_;
  std::atomic<bool> ready_{false};
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::string description_;  // guarded by mu_
  std::thread thread_;
};

// One grpc.health.v1.Health/Check ("" service) on `channel`: "SERVING", "NOT_SERVING", or
// the call's error.
std::string CheckHealth(const std::shared_ptr<::grpc::Channel>& channel, absl::Duration timeout);

}  // namespace smolserve::preprocess

#endif  // SMOLSERVE_SERVICES_PREPROCESS_SERVER_DOWNSTREAM_HEALTH_H_
