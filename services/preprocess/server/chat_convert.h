// Wire <-> core conversions of the front API.
#ifndef SMOLSERVE_SERVICES_PREPROCESS_SERVER_CHAT_CONVERT_H_
#define SMOLSERVE_SERVICES_PREPROCESS_SERVER_CHAT_CONVERT_H_

#include "absl/status/statusor.h"
#include "proto/smolserve/v1/front.pb.h"
#include "services/preprocess/core/chat_pipeline.h"
#include "services/preprocess/core/media_source.h"
#include "services/preprocess/core/request.h"

namespace smolserve::preprocess {

// v1::ChatRequest -> the pipeline's ChatRequest. Media bytes are moved in as
// MediaSource::kBytes; paths and URLs are kept for MediaAccess to judge; a media id is kept,
// and an id without a source becomes MediaSource::kNone. INVALID_ARGUMENT for structural
// problems; generation values are checked by the pipeline.
absl::StatusOr<PrepareRequest> ToPrepareRequest(const v1::ChatRequest& request);
absl::StatusOr<ChatRequest> ChatRequestFromProto(const v1::ChatRequest& request);

// A request read from JSON -> v1::ChatRequest, reading every local media item into bytes with
// `access` (the client side of `smolvlm chat`); media ids are passed on, and an item with only
// an id is sent without data.
absl::StatusOr<v1::ChatRequest> ChatRequestToProto(const ChatRequest& request,
                                                   const MediaAccess& access);

// The pipeline's result -> the final message of Front.Chat.
void ChatResultToProto(const ChatResult& result, v1::ChatResponse::ChatResult* out);

}  // namespace smolserve::preprocess

#endif  // SMOLSERVE_SERVICES_PREPROCESS_SERVER_CHAT_CONVERT_H_
