// The stages' RPCs take their requests as raw bytes and parse them here, so that a request
// that is not a valid message is answered INVALID_ARGUMENT with a clear message (gRPC's own
// handling answers UNIMPLEMENTED with an empty one), and serialise their answers likewise.
#ifndef SMOLSERVE_COMMON_GRPC_RAW_PROTO_H_
#define SMOLSERVE_COMMON_GRPC_RAW_PROTO_H_

#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/proto_buffer_reader.h>
#include <grpcpp/support/proto_buffer_writer.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace smolserve::grpc_util {

// INVALID_ARGUMENT "<what>: the request is not a valid <message type>" when `buffer` does not
// parse as T.
template <typename T>
absl::Status ParseRequest(const ::grpc::ByteBuffer& buffer, T* out, absl::string_view what) {
  ::grpc::ByteBuffer copy(buffer);  // shares the slices
  ::grpc::ProtoBufferReader reader(&copy);
  if (!out->ParseFromZeroCopyStream(&reader)) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": the request is not a valid ",
                                                   T::descriptor()->full_name(), " message"));
  }
  return absl::OkStatus();
}

template <typename T>
::grpc::ByteBuffer Serialize(const T& message) {
  ::grpc::ByteBuffer buffer;
  ::grpc::ProtoBufferWriter writer(&buffer, ::grpc::kProtoBufferWriterMaxBufferLength,
                                   static_cast<int>(message.ByteSizeLong()));
  message.SerializeToZeroCopyStream(&writer);
  return buffer;
}

}  // namespace smolserve::grpc_util

#endif  // SMOLSERVE_COMMON_GRPC_RAW_PROTO_H_
