#include "common/grpc/server_runner.h"

#include <csignal>
#include <cstdio>
#include <atomic>
#include <mutex>
#include <condition_variable>
#include <fstream>
#include <sstream>

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

absl::StatusOr<std::string> ReadPemFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return absl::NotFoundError(absl::StrCat("cannot read TLS file '", path, "'"));
  std::stringstream ss;
  ss << f.rdbuf();
  if (ss.str().find("-----BEGIN") == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("'", path, "' is not a PEM file"));
  }
  return ss.str();
}

namespace {

absl::StatusOr<std::shared_ptr<::grpc::ServerCredentials>> ServerCredentials(const TlsFiles& tls) {
  if (!tls.enabled()) return ::grpc::InsecureServerCredentials();
  if (tls.cert.empty() || tls.key.empty()) {
    return absl::InvalidArgumentError("TLS needs both a certificate and a key");
  }
  ::grpc::SslServerCredentialsOptions ssl;
  ::grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
  auto cert = ReadPemFile(tls.cert);
  if (!cert.ok()) return cert.status();
  auto key = ReadPemFile(tls.key);
  if (!key.ok()) return key.status();
  pair.cert_chain = *cert;
  pair.private_key = *key;
  ssl.pem_key_cert_pairs.push_back(std::move(pair));
  if (!tls.ca.empty()) {
    auto ca = ReadPemFile(tls.ca);
    if (!ca.ok()) return ca.status();
    ssl.pem_root_certs = *ca;
    ssl.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  return ::grpc::SslServerCredentials(ssl);
}

// Peers may ping every 10 s (the channels below ping every 20 s), also between calls.
void AllowKeepalive(::grpc::ServerBuilder& builder) {
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0);
}

}  // namespace

absl::StatusOr<std::unique_ptr<ServerRunner>> ServerRunner::Start(
    const ServerOptions& options, const std::vector<::grpc::Service*>& services) {
  ::grpc::EnableDefaultHealthCheckService(true);
  if (options.reflection) ::grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  auto runner = std::unique_ptr<ServerRunner>(new ServerRunner());
  runner->options_ = options;
  auto creds = ServerCredentials(options.tls);
  if (!creds.ok()) return creds.status();
  ::grpc::ServerBuilder builder;
  const std::string address = absl::StrCat(options.host, ":", options.port);
  builder.AddListeningPort(address, *creds, &runner->port_);
  builder.SetMaxReceiveMessageSize(options.max_message_bytes);
  builder.SetMaxSendMessageSize(options.max_message_bytes);
  AllowKeepalive(builder);
  for (auto* s : services) builder.RegisterService(s);
  runner->server_ = builder.BuildAndStart();
  if (runner->server_ == nullptr || runner->port_ == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", address));
  }
  if (options.health_port >= 0) {
    ::grpc::ServerBuilder health;
    const std::string health_address = absl::StrCat(options.host, ":", options.health_port);
    health.AddListeningPort(health_address, ::grpc::InsecureServerCredentials(),
                            &runner->health_port_);
    runner->health_server_ = health.BuildAndStart();
    if (runner->health_server_ == nullptr || runner->health_port_ == 0) {
      return absl::UnavailableError(absl::StrCat("cannot listen on ", health_address));
    }
  }
  runner->SetServing(false);
  return runner;
}

void ServerRunner::SetServing(bool serving) {
  for (::grpc::Server* s : {server_.get(), health_server_.get()}) {
    if (s == nullptr) continue;
    if (auto* health = s->GetHealthCheckService()) health->SetServingStatus(serving);
  }
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
  if (health_server_ != nullptr) health_server_->Shutdown();
}

absl::StatusOr<std::shared_ptr<::grpc::Channel>> MakeChannel(const std::string& target,
                                                             const ChannelOptions& options) {
  ::grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(options.max_message_bytes);
  args.SetMaxSendMessageSize(options.max_message_bytes);
  args.SetLoadBalancingPolicyName("round_robin");
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 20000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  if (options.retries) {
    // A streaming call commits (is no longer retried) once its first message arrives, which
    // for Generate is the first token: a generation is never run twice.
    args.SetServiceConfigJSON(R"({"methodConfig": [{
        "name": [{"service": "smolserve.v1.Vision", "method": "Encode"},
                 {"service": "smolserve.v1.Decoder", "method": "Generate"}],
        "retryPolicy": {"maxAttempts": 2, "initialBackoff": "0.05s", "maxBackoff": "0.5s",
                        "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}}]})");
    // The request is kept until the call commits so that it can be sent again (pixel tiles
    // are megabytes).
    args.SetInt(GRPC_ARG_PER_RPC_RETRY_BUFFER_SIZE, options.max_message_bytes);
  } else {
    args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);
  }
  if (!options.tls.enabled()) {
    return ::grpc::CreateCustomChannel(target, ::grpc::InsecureChannelCredentials(), args);
  }
  ::grpc::SslCredentialsOptions ssl;
  if (!options.tls.ca.empty()) {
    auto ca = ReadPemFile(options.tls.ca);
    if (!ca.ok()) return ca.status();
    ssl.pem_root_certs = *ca;
  }
  if (!options.tls.cert.empty() || !options.tls.key.empty()) {
    auto cert = ReadPemFile(options.tls.cert);
    if (!cert.ok()) return cert.status();
    auto key = ReadPemFile(options.tls.key);
    if (!key.ok()) return key.status();
    ssl.pem_cert_chain = *cert;
    ssl.pem_private_key = *key;
  }
  return ::grpc::CreateCustomChannel(target, ::grpc::SslCredentials(ssl), args);
}

std::shared_ptr<::grpc::Channel> MakeChannel(const std::string& target, int max_message_bytes) {
  ChannelOptions options;
  options.max_message_bytes = max_message_bytes;
  return *MakeChannel(target, options);
}

}  // namespace smolserve::grpc_util
