// `smolvlm chat`: a streaming client of the front API.
#ifndef SMOLSERVE_TOOLS_SMOLVLM_CHAT_CLIENT_H_
#define SMOLSERVE_TOOLS_SMOLVLM_CHAT_CLIENT_H_

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "proto/smolserve/v1/front.grpc.pb.h"

namespace smolserve::cli {

struct ChatOutcome {
  v1::ChatResponse::ChatResult result;
  int deltas = 0;  // streamed messages received before the result
};

// Sends `request` and calls `on_delta` for every streamed delta. `deadline_s` <= 0: none.
// `api_key` (may be empty) goes as "authorization: Bearer <key>".
absl::StatusOr<ChatOutcome> RunChat(
    const std::string& target, const v1::ChatRequest& request, double deadline_s,
    const std::function<void(const v1::ChatResponse::Delta&)>& on_delta,
    const std::string& api_key = "");

// A text table of the per-stage timings.
std::string TimingTable(const v1::StageTimings& t);

}  // namespace smolserve::cli

#endif  // SMOLSERVE_TOOLS_SMOLVLM_CHAT_CLIENT_H_
