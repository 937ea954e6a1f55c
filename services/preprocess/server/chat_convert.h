// Wire <-> core conversions of the front API.
#ifndef SMOLSERVE_SERVICES_PREPROCESS_SERVER_CHAT_CONVERT_H_
#define SMOLSERVE_SERVICES_PREPROCESS_SERVER_CHAT_CONVERT_H_

#include "absl/status/statusor.h"
#include "proto/smolserve/v1/front.pb.h"
#include "services/preprocess/core/media_source.h"
#include "services/preprocess/core/request.h"

namespace smolserve::preprocess {

// ChatRequest -> PrepareRequest. Media bytes are moved in as MediaSource::kBytes; paths
// and URLs are kept for MediaAccess to judge; a media id is kept, and an id without a
// source becomes MediaSource::kNone. INVALID_ARGUMENT for structural problems.
absl::StatusOr<PrepareRequest> ToPrepareRequest(const v1::ChatRequest& request);

// PrepareRequest (already read from JSON) -> ChatRequest, reading every local media item
// into bytes with `access` (the client side of `smolvlm chat`); media ids are passed on,
// and an item with only an id is sent without data.
absl::StatusOr<v1::ChatRequest> ToChatRequest(const PrepareRequest& request,
                                              const MediaAccess& access);

// The request JSON's "generation" object -> GenerationParams: max_new_tokens, temperature,
// top_p, top_k, repetition_penalty, seed, ignore_eos, stop (string or list), greedy.
absl::StatusOr<v1::GenerationParams> GenerationParamsFromJson(absl::string_view json);

}  // namespace smolserve::preprocess

#endif  // SMOLSERVE_SERVICES_PREPROCESS_SERVER_CHAT_CONVERT_H_
