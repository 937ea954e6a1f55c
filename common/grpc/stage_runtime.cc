#include "common/grpc/stage_runtime.h"

#include <cstdio>
#include <fstream>

#include "absl/strings/str_cat.h"

namespace smolserve::grpc_util {

absl::StatusOr<std::unique_ptr<StageRuntime>> StageRuntime::Create(const StageRuntimeOptions& options) {
  auto rt = std::unique_ptr<StageRuntime>(new StageRuntime());
  rt->options_ = options;
  auto ms = metrics::MetricsServer::Start(absl::StrCat(options.server.host, ":", options.metrics_port));
  if (!ms.ok()) return ms.status();
  rt->metrics_server_ = *std::move(ms);
  rt->stage_metrics_ = std::make_unique<metrics::StageMetrics>(options.stage, rt->metrics_server_->registry());
  return rt;
}

absl::Status StageRuntime::Serve(const std::vector<::grpc::Service*>& services) {
  auto server = ServerRunner::Start(options_.server, services);
  if (!server.ok()) return server.status();
  server_ = *std::move(server);
  std::fprintf(stderr, "{\"stage\":\"%s\",\"event\":\"listening\",\"port\":%d,\"metrics_port\":%d}\n",
               options_.name.c_str(), server_->port(), metrics_server_->port());
  if (!options_.port_file.empty()) {
    // The metrics port first: readers wait for the main port file.
    std::ofstream(options_.port_file + ".metrics") << metrics_server_->port() << "\n";
    std::ofstream(options_.port_file) << server_->port() << "\n";
  }
  return absl::OkStatus();
}

void StageRuntime::SetServing(double load_ms) {
  server_->SetServing(true);
  std::fprintf(stderr, "{\"stage\":\"%s\",\"event\":\"serving\",\"load_ms\":%.0f}\n",
               options_.name.c_str(), load_ms);
}

void StageRuntime::Wait(const std::function<void()>& on_stop) {
  server_->WaitForShutdownSignal(on_stop);
}

int ExitWithError(const absl::Status& status, int exit_code) {
  std::fprintf(stderr, "error: %s\n", status.ToString().c_str());
  return exit_code;
}

}  // namespace smolserve::grpc_util
