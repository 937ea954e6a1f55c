// absl::Status <-> grpc::Status, one place for the mapping.
#ifndef SMOLSERVE_COMMON_GRPC_STATUS_UTIL_H_
#define SMOLSERVE_COMMON_GRPC_STATUS_UTIL_H_

#include <grpcpp/client_context.h>
#include <grpcpp/server_context.h>
#include <grpcpp/support/status.h>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace smolserve::grpc_util {

// Codes map 1:1; messages longer than 1024 bytes are truncated ("...TRUNCATED").
::grpc::Status ToGrpcStatus(const absl::Status& status);

// The reverse, for client code; `stage` prefixes the message ("vision: ...").
absl::Status FromGrpcStatus(const ::grpc::Status& status, absl::string_view stage = "");

// The trailing metadata that carries a refusal's retry hint (common/status/retry_after.h)
// between the stages: decimal milliseconds.
inline constexpr char kRetryAfterTrailer[] = "retry-after-ms";

// Adds `status`'s retry hint, if any, as trailing metadata of the call. Call before Finish.
void AddRetryAfterTrailer(const absl::Status& status, ::grpc::ServerContextBase* context);

// FromGrpcStatus, plus the retry hint from the call's trailing metadata.
absl::Status FromGrpcCall(const ::grpc::Status& status, const ::grpc::ClientContext& context,
                          absl::string_view stage = "");

}  // namespace smolserve::grpc_util

#endif  // SMOLSERVE_COMMON_GRPC_STATUS_UTIL_H_
