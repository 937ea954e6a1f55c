#include "common/grpc/stage_runtime.h"

#include <cstdio>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "common/runtime/malloc_tuning.h"
#include "nlohmann/json.hpp"

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
  const nlohmann::json line = {{"stage", options_.name},
                               {"event", "listening"},
                               {"port", server_->port()},
                               {"metrics_port", metrics_server_->port()},
                               {"tls", options_.server.tls.enabled()},
                               {"allocator", AllocatorName()}};
  std::fprintf(stderr, "%s\n", line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  if (!options_.port_file.empty() && server_->health_port() > 0) {
    std::ofstream(options_.port_file + ".health") << server_->health_port() << "\n";
  }
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

void StageRuntime::SetHealth(bool serving, const std::string& why) {
  server_->SetServing(serving);
  nlohmann::ordered_json line = {{"stage", options_.name},
                                 {"event", serving ? "serving" : "not_serving"},
                                 {"why", why}};
  std::fprintf(stderr, "%s\n", line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
}

void StageRuntime::Wait(const std::function<void()>& on_stop) {
  server_->WaitForShutdownSignal(on_stop);
}

int ExitWithError(const absl::Status& status, int exit_code) {
  std::fprintf(stderr, "error: %s\n", status.ToString().c_str());
  return exit_code;
}

}  // namespace smolserve::grpc_util
