// absl::Status <-> grpc::Status, one place for the mapping.
#ifndef SMOLSERVE_COMMON_GRPC_STATUS_UTIL_H_
#define SMOLSERVE_COMMON_GRPC_STATUS_UTIL_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace smolserve::grpc_util {

// Codes map 1:1; messages longer than 1024 bytes are truncated ("...TRUNCATED").
::grpc::Status ToGrpcStatus(const absl::Status& status);

// The reverse, for client code; `stage` prefixes the message ("vision: ...").
absl::Status FromGrpcStatus(const ::grpc::Status& status, absl::string_view stage = "");

}  // namespace smolserve::grpc_util

#endif  // SMOLSERVE_COMMON_GRPC_STATUS_UTIL_H_
