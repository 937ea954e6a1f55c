// A request file / JSON request body -> ParseChatRequest (what the CLI and the services'
// JSON paths call), then what the pipeline does with it before any media is read:
// ValidateGenerationParams and the media descriptions of error messages.
// Invariants: every refusal is INVALID_ARGUMENT; an accepted request has at least one
// conversation, every message a role and at least one item, every media item exactly one
// source (or an id alone).
#include <cstddef>
#include <cstdint>

#include "common/generation/generation_params.h"
#include "services/preprocess/core/media_source.h"
#include "services/preprocess/core/request.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace smolserve::preprocess;
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<ChatRequest> request = ParseChatRequest(text);
  if (!request.ok()) {
    FUZZ_CHECK(request.status().code() == absl::StatusCode::kInvalidArgument,
               request.status().ToString());
    return 0;
  }
  const PrepareRequest& prepare = request->prepare;
  FUZZ_CHECK(!prepare.conversations.empty(), "no conversation");
  FUZZ_CHECK(prepare.batched || prepare.conversations.size() == 1, "batched");
  for (const Conversation& conv : prepare.conversations) {
    FUZZ_CHECK(!conv.empty(), "empty conversation");
    for (const Message& m : conv) {
      FUZZ_CHECK(!m.role.empty() && !m.content.empty(), "message without role or content");
      for (const ContentItem& item : m.content) {
        if (item.type == ContentItem::Type::kText) continue;
        FUZZ_CHECK(item.source.kind != MediaSource::Kind::kNone || !item.source.id.empty(),
                   "media item without source or id");
        FUZZ_CHECK(!DescribeMediaSource(item.source).empty(), "description");
      }
    }
  }
  const absl::Status valid = smolserve::ValidateGenerationParams(request->generation, {});
  FUZZ_CHECK(valid.ok() || valid.code() == absl::StatusCode::kInvalidArgument, valid.ToString());
  // The same text through the prepare-only entry point agrees.
  absl::StatusOr<PrepareRequest> again = ParsePrepareRequest(text);
  FUZZ_CHECK(again.ok() && again->conversations.size() == prepare.conversations.size(),
             "ParsePrepareRequest disagrees with ParseChatRequest");
  return 0;
}
