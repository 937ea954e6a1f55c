// Shared start-up and shutdown of a stage's gRPC server: listening address (port 0 picks
// a free port), health service (NOT_SERVING until the stage says it is ready), server
// reflection, message size limits, and graceful shutdown on SIGTERM/SIGINT.
#ifndef SMOLSERVE_COMMON_GRPC_SERVER_RUNNER_H_
#define SMOLSERVE_COMMON_GRPC_SERVER_RUNNER_H_

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"

namespace smolserve::grpc_util {

struct ServerOptions {
  std::string host = "0.0.0.0";
  int port = 0;                              // 0: any free port
  int max_message_bytes = 256 << 20;         // image embeddings of a long video are MBs
  std::chrono::milliseconds shutdown_grace{30000};
};

class ServerRunner {
 public:
  // Builds and starts the server with `services` (not owned). Health is NOT_SERVING.
  static absl::StatusOr<std::unique_ptr<ServerRunner>> Start(
      const ServerOptions& options, const std::vector<::grpc::Service*>& services);

  int port() const { return port_; }
  // Flips the overall health status and every registered service's.
  void SetServing(bool serving);
  // Blocks until SIGTERM/SIGINT, then stops accepting new calls and waits up
  // to the grace period for calls in flight. `on_stop` runs first (e.g. drain executors).
  void WaitForShutdownSignal(const std::function<void()>& on_stop = {});

 private:
  std::unique_ptr<::grpc::Server> server_;
  ServerOptions options_;
  std::vector<std::string> service_names_;
  int port_ = 0;
};

// Client channel arguments matching the servers' message limits, round-robin balancing
// across every address a target resolves to, and keepalive-free reconnect backoff bounded
// at one second so that a restarted replica is used again quickly.
std::shared_ptr<::grpc::Channel> MakeChannel(const std::string& target,
                                             int max_message_bytes = 256 << 20);

}  // namespace smolserve::grpc_util

#endif  // SMOLSERVE_COMMON_GRPC_SERVER_RUNNER_H_
