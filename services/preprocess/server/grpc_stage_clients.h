// The chat pipeline's stage clients over gRPC (the front's view of the vision and decoder
// stages): the request's deadline and cancellation become the call's, and a stage's refusal
// keeps its code and retry hint.
#ifndef SMOLSERVE_SERVICES_PREPROCESS_SERVER_GRPC_STAGE_CLIENTS_H_
#define SMOLSERVE_SERVICES_PREPROCESS_SERVER_GRPC_STAGE_CLIENTS_H_

#include <memory>

#include <grpcpp/grpcpp.h>

#include "proto/smolserve/v1/decoder.grpc.pb.h"
#include "proto/smolserve/v1/vision.grpc.pb.h"
#include "services/preprocess/core/stage_clients.h"

namespace smolserve::preprocess {

class GrpcVisionClient final : public VisionClient {
 public:
  explicit GrpcVisionClient(std::shared_ptr<::grpc::Channel> channel);
  absl::StatusOr<EncodeOutcome> Encode(const EncodeTiles& tiles, const CallContext& ctx) override;

 private:
  std::unique_ptr<v1::Vision::Stub> stub_;
};

class GrpcDecoderClient final : public DecoderClient {
 public:
  explicit GrpcDecoderClient(std::shared_ptr<::grpc::Channel> channel);
  absl::StatusOr<GenerationOutcome> Generate(
      const GenerateCall& call, const CallContext& ctx,
      const std::function<void(const TokenDelta&)>& on_delta) override;

 private:
  std::unique_ptr<v1::Decoder::Stub> stub_;
};

}  // namespace smolserve::preprocess

#endif  // SMOLSERVE_SERVICES_PREPROCESS_SERVER_GRPC_STAGE_CLIENTS_H_
