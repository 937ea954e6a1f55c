#include "common/grpc/status_util.h"

#include <string>

#include "absl/strings/str_cat.h"

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

}  // namespace smolserve::grpc_util
