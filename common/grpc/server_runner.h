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

// PEM files for TLS. Server: cert + key serve TLS; with client_ca, clients must present a
// certificate signed by it (mutual TLS; a plain or unsigned client is refused). Channel: ca
// verifies the server; cert + key are presented as the client certificate.
struct TlsFiles {
  std::string cert;
  std::string key;
  std::string ca;
  bool enabled() const { return !cert.empty() || !key.empty() || !ca.empty(); }
};

struct ServerOptions {
  std::string host = "0.0.0.0";
  int port = 0;                              // 0: any free port
  int max_message_bytes = 256 << 20;         // image embeddings of a long video are MBs
  std::chrono::milliseconds shutdown_grace{30000};
  TlsFiles tls;                              // tls.ca: require client certificates
  bool reflection = false;                   // gRPC server reflection (opt-in)
  // A second, plaintext port serving only grpc.health.v1 (for probes that cannot do TLS or
  // client certificates); -1: none, 0: any free port.
  int health_port = -1;
};

class ServerRunner {
 public:
  // Builds and starts the server with `services` (not owned). Health is NOT_SERVING.
  static absl::StatusOr<std::unique_ptr<ServerRunner>> Start(
      const ServerOptions& options, const std::vector<::grpc::Service*>& services);

  int port() const { return port_; }
  int health_port() const { return health_port_; }
  // Flips the overall health status and every registered service's.
  void SetServing(bool serving);
  // Blocks until SIGTERM/SIGINT, then stops accepting new calls and waits up
  // to the grace period for calls in flight. `on_stop` runs first (e.g. drain executors).
  void WaitForShutdownSignal(const std::function<void()>& on_stop = {});

 private:
  std::unique_ptr<::grpc::Server> server_;
  std::unique_ptr<::grpc::Server> health_server_;
  ServerOptions options_;
  std::vector<std::string> service_names_;
  int port_ = 0;
  int health_port_ = -1;
};

struct ChannelOptions {
  int max_message_bytes = 256 << 20;
  TlsFiles tls;  // empty: plaintext
  // Retry policy of the stages' idempotent calls: a Vision.Encode, or a Decoder.Generate that
  // has not sent its first token yet, that fails with UNAVAILABLE (a replica killed, restarted
  // or still loading) is tried once more, on the next replica of the round robin.
  bool retries = true;
};

// Client channel arguments matching the servers' message limits, round-robin balancing
// across every address a target resolves to, reconnect backoff bounded at one second so that
// a restarted replica is used again quickly, and keepalive pings so that a peer that stopped
// answering (a hung or partitioned replica) is noticed within about 20 seconds.
// INVALID_ARGUMENT / NOT_FOUND when a TLS file cannot be read.
absl::StatusOr<std::shared_ptr<::grpc::Channel>> MakeChannel(const std::string& target,
                                                             const ChannelOptions& options);
std::shared_ptr<::grpc::Channel> MakeChannel(const std::string& target,
                                             int max_message_bytes = 256 << 20);

// Reads a whole (PEM) file; NOT_FOUND / PERMISSION_DENIED naming it.
absl::StatusOr<std::string> ReadPemFile(const std::string& path);

}  // namespace smolserve::grpc_util

#endif  // SMOLSERVE_COMMON_GRPC_SERVER_RUNNER_H_
