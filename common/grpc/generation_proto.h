// GenerationParams / GenerationOutcome <-> their wire messages (proto/smolserve/v1/common.proto).
#ifndef SMOLSERVE_COMMON_GRPC_GENERATION_PROTO_H_
#define SMOLSERVE_COMMON_GRPC_GENERATION_PROTO_H_

#include "common/generation/generation_params.h"
#include "common/generation/generation_result.h"
#include "proto/smolserve/v1/common.pb.h"

namespace smolserve::grpc_util {

GenerationParams GenerationFromProto(const v1::GenerationParams& proto);
void GenerationToProto(const GenerationParams& params, v1::GenerationParams* out);

v1::FinishReason FinishReasonToProto(FinishReason reason);
// FINISH_REASON_UNSPECIFIED (not a finished generation) -> nullopt.
std::optional<FinishReason> FinishReasonFromProto(v1::FinishReason reason);

}  // namespace smolserve::grpc_util

#endif  // SMOLSERVE_COMMON_GRPC_GENERATION_PROTO_H_
