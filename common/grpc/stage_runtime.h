// What every stage's main() does around its service: the /metrics endpoint and the
// stage's metric families, the gRPC server (health, reflection, limits), the port files
// tests and scripts read, one JSON log line per lifecycle event, and graceful shutdown.
#ifndef SMOLSERVE_COMMON_GRPC_STAGE_RUNTIME_H_
#define SMOLSERVE_COMMON_GRPC_STAGE_RUNTIME_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/grpc/server_runner.h"
#include "common/metrics/stage_metrics.h"

namespace smolserve::grpc_util {

struct StageRuntimeOptions {
  std::string name;            // "preprocess", "vision", "decoder"
  metrics::Stage stage = metrics::Stage::kPreprocess;
  ServerOptions server;
  int metrics_port = 0;        // 0: any free port
  std::string port_file;       // when set: the gRPC port, and the metrics port in port_file.metrics
};

class StageRuntime {
 public:
  // Starts the metrics endpoint and builds the stage's metric families.
  static absl::StatusOr<std::unique_ptr<StageRuntime>> Create(const StageRuntimeOptions& options);

  metrics::StageMetrics& metrics() { return *stage_metrics_; }

  // Starts the gRPC server with `services` (NOT_SERVING) and writes the port files.
  absl::Status Serve(const std::vector<::grpc::Service*>& services);
  // Marks the stage SERVING (after its model is loaded).
  void SetServing(double load_ms);
  // Flips the health status later (the front follows its downstream stages), logging changes.
  void SetHealth(bool serving, const std::string& why);
  ServerRunner& server() { return *server_; }
  // Blocks until SIGTERM/SIGINT, then shuts down gracefully (`on_stop` drains the service).
  void Wait(const std::function<void()>& on_stop);

 private:
  StageRuntimeOptions options_;
  std::unique_ptr<metrics::MetricsServer> metrics_server_;
  std::unique_ptr<metrics::StageMetrics> stage_metrics_;
  std::unique_ptr<ServerRunner> server_;
};

// Prints "error: <status>" to stderr and returns `exit_code` (for main()).
int ExitWithError(const absl::Status& status, int exit_code = 1);

}  // namespace smolserve::grpc_util

#endif  // SMOLSERVE_COMMON_GRPC_STAGE_RUNTIME_H_
