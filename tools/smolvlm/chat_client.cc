#include "tools/smolvlm/chat_client.h"

#include <chrono>

#include "absl/strings/str_format.h"
#include "common/grpc/server_runner.h"
#include "common/grpc/status_util.h"

namespace smolserve::cli {

absl::StatusOr<ChatOutcome> RunChat(
    const std::string& target, const v1::ChatRequest& request, double deadline_s,
    const std::function<void(const v1::ChatResponse::Delta&)>& on_delta,
    const std::string& api_key) {
  auto stub = v1::Front::NewStub(grpc_util::MakeChannel(target));
  ::grpc::ClientContext ctx;
  if (!api_key.empty()) ctx.AddMetadata("authorization", "Bearer " + api_key);
  if (deadline_s > 0) {
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::milliseconds(static_cast<int64_t>(deadline_s * 1000)));
  }
  auto reader = stub->Chat(&ctx, request);
  v1::ChatResponse msg;
  ChatOutcome out;
  bool got_result = false;
  while (reader->Read(&msg)) {
    if (msg.has_delta()) {
      ++out.deltas;
      if (on_delta) on_delta(msg.delta());
    } else if (msg.has_result()) {
      out.result = msg.result();
      got_result = true;
    }
  }
  auto status = grpc_util::FromGrpcStatus(reader->Finish());
  if (!status.ok()) return status;
  if (!got_result) return absl::InternalError("the stream ended without a result");
  return out;
}

std::string TimingTable(const v1::StageTimings& t) {
  std::string s;
  s += absl::StrFormat("  %-22s %10.1f ms\n", "preprocess", t.preprocess_ms());
  s += absl::StrFormat("  %-22s %10.1f ms\n", "vision", t.vision_ms());
  s += absl::StrFormat("  %-22s %10.1f ms\n", "decoder prefill", t.prefill_ms());
  s += absl::StrFormat("  %-22s %10.1f ms\n", "decoder decode", t.decode_ms());
  s += absl::StrFormat("  %-22s %10.1f ms\n", "time to first token", t.time_to_first_token_ms());
  s += absl::StrFormat("  %-22s %10.1f ms\n", "total", t.total_ms());
  s += absl::StrFormat("  %-22s %10llu bytes\n", "embeddings received",
                       static_cast<unsigned long long>(t.embedding_bytes()));
  return s;
}

}  // namespace smolserve::cli
