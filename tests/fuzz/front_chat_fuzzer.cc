// A Front.Chat request as gRPC hands it to the front (serialized smolserve.v1.ChatRequest) ->
// ChatRequestFromProto, then ChatPipeline::Validate with the request id, as FrontService does
// before any media is read, then the chat template on each accepted conversation.
// Invariants: refusals are client errors; an accepted request has one conversation per proto
// conversation, each message a role and content, media with a source or an id.
#include <cstddef>
#include <cstdint>

#include "proto/smolserve/v1/front.pb.h"
#include "services/preprocess/core/chat_pipeline.h"
#include "services/preprocess/core/chat_template.h"
#include "services/preprocess/server/chat_convert.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace smolserve::preprocess;
  smolserve::v1::ChatRequest proto;
  if (!proto.ParseFromArray(data, static_cast<int>(size))) return 0;  // refused by gRPC
  absl::StatusOr<ChatRequest> chat = ChatRequestFromProto(proto);
  if (!chat.ok()) {
    FUZZ_CHECK(smolserve::fuzz::IsClientError(chat.status()), chat.status().ToString());
    return 0;
  }
  FUZZ_CHECK(static_cast<int>(chat->prepare.conversations.size()) == proto.conversations_size(),
             "conversation count");
  for (const Conversation& conv : chat->prepare.conversations) {
    for (const Message& m : conv) {
      FUZZ_CHECK(!m.role.empty() && !m.content.empty(), "message without role or content");
      for (const ContentItem& item : m.content) {
        FUZZ_CHECK(item.type == ContentItem::Type::kText ||
                       item.source.kind != MediaSource::Kind::kNone || !item.source.id.empty(),
                   "media without source or id");
      }
    }
  }
  static const ChatPipeline* pipeline =
      new ChatPipeline(ChatPipelineOptions(), nullptr, nullptr, nullptr, nullptr, nullptr, nullptr);
  ChatContext ctx;
  ctx.call.request_id = proto.request_id();
  const absl::Status valid = pipeline->Validate(*chat, ctx);
  if (!valid.ok()) {
    FUZZ_CHECK(smolserve::fuzz::IsClientError(valid), valid.ToString());
    return 0;
  }
  for (const Conversation& conv : chat->prepare.conversations) {
    absl::StatusOr<std::string> prompt =
        RenderChatTemplate(ChatTemplateKind::kSmolVLMVideo, conv, true);
    FUZZ_CHECK(prompt.ok(), prompt.status().ToString());
  }
  return 0;
}
