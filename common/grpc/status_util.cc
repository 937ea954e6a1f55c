#include "common/grpc/status_util.h"

#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/status/retry_after.h"

namespace smolserve::grpc_util {

namespace {
constexpr size_t kMaxMessage = 1024;
}  // namespace

::grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return ::grpc::Status::OK;
  std::string message(status.message());
  if (message.size() > kMaxMessage) message = message.substr(0, kMaxMessage) + "...TRUNCATED";
  return ::grpc::Status(static_cast<::grpc::StatusCode>(status.code()), message);
}

absl::Status FromGrpcStatus(const ::grpc::Status& status, absl::string_view stage) {
  if (status.ok()) return absl::OkStatus();
  const std::string message =
      stage.empty() ? status.error_message() : absl::StrCat(stage, ": ", status.error_message());
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), message);
}

void AddRetryAfterTrailer(const absl::Status& status, ::grpc::ServerContextBase* context) {
  if (std::optional<int64_t> ms = RetryAfterMs(status)) {
    context->AddTrailingMetadata(kRetryAfterTrailer, absl::StrCat(*ms));
  }
}

absl::Status FromGrpcCall(const ::grpc::Status& status, const ::grpc::ClientContext& context,
                          absl::string_view stage) {
  absl::Status out = FromGrpcStatus(status, stage);
  if (out.ok()) return out;
  const auto& trailers = context.GetServerTrailingMetadata();
  auto it = trailers.find(kRetryAfterTrailer);
  int64_t ms = 0;
  if (it != trailers.end() &&
      absl::SimpleAtoi(absl::string_view(it->second.data(), it->second.size()), &ms) && ms >= 0) {
    out = WithRetryAfter(std::move(out), ms);
  }
  return out;
}

}  // namespace smolserve::grpc_util
