#include "services/preprocess/server/downstream_health.h"

#include <grpcpp/generic/generic_stub.h>

#include "absl/strings/str_cat.h"

namespace smolserve::preprocess {

std::string CheckHealth(const std::shared_ptr<::grpc::Channel>& channel, absl::Duration timeout) {
  // The request is an empty HealthCheckRequest; the answer's field 1 (status) is SERVING = 1,
  // encoded 0x08 0x01 (NOT_SERVING = 2: 0x08 0x02).
  ::grpc::GenericStub stub(channel);
  ::grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  ::grpc::Slice empty("", 0);
  ::grpc::ByteBuffer request(&empty, 1), response;
  ::grpc::CompletionQueue cq;
  auto call = stub.PrepareUnaryCall(&ctx, "/grpc.health.v1.Health/Check", request, &cq);
  call->StartCall();
  ::grpc::Status status;
  call->Finish(&response, &status, reinterpret_cast<void*>(1));
  void* tag = nullptr;
  bool ok = false;
  cq.Next(&tag, &ok);
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  if (!status.ok()) return absl::StrCat("unreachable (", status.error_message().substr(0, 80), ")");
  std::vector<::grpc::Slice> slices;
  if (!response.Dump(&slices).ok()) return "unreadable answer";
  std::string bytes;
  for (const auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return bytes == std::string("\x08\x01", 2) ? "SERVING" : "NOT_SERVING";
}

DownstreamHealth::DownstreamHealth(std::vector<Stage> stages, absl::Duration interval,
                                   std::function<void(bool, const std::string&)> on_change)
    : stages_(std::move(stages)), interval_(interval), on_change_(std::move(on_change)) {
  thread_ = std::thread([this] { Loop(); });
}

DownstreamHealth::~DownstreamHealth() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::string DownstreamHealth::Describe() const {
  std::lock_guard<std::mutex> lock(mu_);
  return description_;
}

bool DownstreamHealth::CheckAll() {
  bool all = true;
  std::string description;
  for (const auto& [name, channel] : stages_) {
    const std::string state = CheckHealth(channel, std::min(interval_, absl::Seconds(2)));
    all = all && state == "SERVING";
    absl::StrAppend(&description, description.empty() ? "" : ", ", name, ": ", state);
  }
  std::lock_guard<std::mutex> lock(mu_);
  description_ = std::move(description);
  return all;
}

void DownstreamHealth::Loop() {
  bool first = true;
  while (true) {
    const bool now = CheckAll();
    if (first || now != ready_.load()) {
      ready_.store(now);
      if (on_change_) on_change_(now, Describe());
    }
    first = false;
    std::unique_lock<std::mutex> lock(mu_);
    if (cv_.wait_for(lock, absl::ToChronoNanoseconds(interval_), [this] { return stop_; })) return;
  }
}

}  // namespace smolserve::preprocess
