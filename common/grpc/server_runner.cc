#include "common/grpc/server_runner.h"

#include <csignal>
#include <cstdio>
#include <atomic>
#include <mutex>
#include <condition_variable>

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>

#include "absl/strings/str_cat.h"

namespace smolserve::grpc_util {
namespace {

std::mutex g_mu;
std::condition_variable g_cv;
std::atomic<bool> g_stop{false};

void OnSignal(int) {
  // Only async-signal-safe work here: set the flag; a watcher thread does the rest.
  g_stop = true;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ServerRunner>> ServerRunner::Start(
    const ServerOptions& options, const std::vector<::grpc::Service*>& services) {
  ::grpc::EnableDefaultHealthCheckService(true);
  ::grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  auto runner = std::unique_ptr<ServerRunner>(new ServerRunner());
  runner->options_ = options;
  ::grpc::ServerBuilder builder;
  const std::string address = absl::StrCat(options.host, ":", options.port);
  builder.AddListeningPort(address, ::grpc::InsecureServerCredentials(), &runner->port_);
  builder.SetMaxReceiveMessageSize(options.max_message_bytes);
  builder.SetMaxSendMessageSize(options.max_message_bytes);
  for (auto* s : services) builder.RegisterService(s);
  runner->server_ = builder.BuildAndStart();
  if (runner->server_ == nullptr || runner->port_ == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", address));
  }
  runner->SetServing(false);
  return runner;
}

void ServerRunner::SetServing(bool serving) {
  if (auto* health = server_->GetHealthCheckService()) health->SetServingStatus(serving);
}

void ServerRunner::WaitForShutdownSignal(const std::function<void()>& on_stop) {
  std::signal(SIGTERM, OnSignal);
  std::signal(SIGINT, OnSignal);
  while (!g_stop) {
    std::unique_lock<std::mutex> lock(g_mu);
    g_cv.wait_for(lock, std::chrono::milliseconds(100));
  }
  SetServing(false);
  std::fprintf(stderr, "{\"event\":\"shutdown\",\"grace_ms\":%lld}\n",
               static_cast<long long>(options_.shutdown_grace.count()));
  // Stop accepting, let calls in flight finish up to the grace period, then cancel the rest.
  server_->Shutdown(std::chrono::system_clock::now() + options_.shutdown_grace);
  if (on_stop) on_stop();
  server_->Wait();
}

std::shared_ptr<::grpc::Channel> MakeChannel(const std::string& target, int max_message_bytes) {
  ::grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(max_message_bytes);
  args.SetMaxSendMessageSize(max_message_bytes);
  args.SetLoadBalancingPolicyName("round_robin");
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  return ::grpc::CreateCustomChannel(target, ::grpc::InsecureChannelCredentials(), args);
}

}  // namespace smolserve::grpc_util
