#include "services/preprocess/server/chat_convert.h"

#include "absl/strings/str_cat.h"
#include "common/grpc/generation_proto.h"
#include "services/preprocess/core/media_source.h"

namespace smolserve::preprocess {
namespace {

absl::StatusOr<MediaSource> FromProto(const v1::Media& m, const std::string& where) {
  MediaSource s;
  s.mime_type = m.mime_type();
  s.id = m.id();
  switch (m.source_case()) {
    case v1::Media::kData:
      s.kind = MediaSource::Kind::kBytes;
      s.value = m.data();
      return s;
    case v1::Media::kPath:
      s.kind = MediaSource::Kind::kPath;
      s.value = m.path();
      return s;
    case v1::Media::kUrl:
      s.kind = MediaSource::Kind::kUrl;
      s.value = m.url();
      return s;
    default:
      if (!m.id().empty()) {
        s.kind = MediaSource::Kind::kNone;  // named by its id alone (media sent before)
        return s;
      }
      return absl::InvalidArgumentError(absl::StrCat(where, ": media has no data, path, url or id"));
  }
}

}  // namespace

absl::StatusOr<PrepareRequest> ToPrepareRequest(const v1::ChatRequest& request) {
  PrepareRequest out;
  if (request.conversations_size() == 0) {
    return absl::InvalidArgumentError("request has no conversation");
  }
  out.batched = request.conversations_size() > 1;
  for (int b = 0; b < request.conversations_size(); ++b) {
    const auto& conv = request.conversations(b);
    if (conv.messages_size() == 0) {
      return absl::InvalidArgumentError(absl::StrCat("conversations[", b, "] has no message"));
    }
    Conversation c;
    for (int m = 0; m < conv.messages_size(); ++m) {
      const auto& msg = conv.messages(m);
      const std::string where = absl::StrCat("conversations[", b, "].messages[", m, "]");
      if (msg.role().empty()) return absl::InvalidArgumentError(absl::StrCat(where, ": missing role"));
      if (msg.content_size() == 0) return absl::InvalidArgumentError(absl::StrCat(where, ": no content"));
      Message out_msg;
      out_msg.role = msg.role();
      for (int k = 0; k < msg.content_size(); ++k) {
        const auto& item = msg.content(k);
        const std::string iw = absl::StrCat(where, ".content[", k, "]");
        ContentItem ci;
        switch (item.item_case()) {
          case v1::Content::kText:
            ci.type = ContentItem::Type::kText;
            ci.text = item.text();
            break;
          case v1::Content::kImage: {
            ci.type = ContentItem::Type::kImage;
            auto s = FromProto(item.image(), iw);
            if (!s.ok()) return s.status();
            ci.source = *std::move(s);
            break;
          }
          case v1::Content::kVideo: {
            ci.type = ContentItem::Type::kVideo;
            auto s = FromProto(item.video(), iw);
            if (!s.ok()) return s.status();
            ci.source = *std::move(s);
            break;
          }
          default:
            return absl::InvalidArgumentError(absl::StrCat(iw, ": empty content item"));
        }
        out_msg.content.push_back(std::move(ci));
      }
      c.push_back(std::move(out_msg));
    }
    out.conversations.push_back(std::move(c));
  }
  const auto& p = request.processor();
  if (p.has_do_image_splitting()) out.processor.do_image_splitting = p.do_image_splitting();
  if (p.has_longest_edge()) out.processor.longest_edge = static_cast<int>(p.longest_edge());
  if (p.has_max_image_size()) out.processor.max_image_size = static_cast<int>(p.max_image_size());
  if (p.has_video_fps()) {
    if (!(p.video_fps() > 0)) return absl::InvalidArgumentError("processor.video_fps must be > 0");
    out.processor.video_fps = p.video_fps();
  }
  if (p.has_video_max_frames()) out.processor.video_max_frames = static_cast<int>(p.video_max_frames());
  if (p.has_video_num_frames()) out.processor.video_num_frames = static_cast<int>(p.video_num_frames());
  if (p.has_video_skip_secs()) out.processor.video_skip_secs = p.video_skip_secs();
  for (auto v : {p.has_longest_edge() ? p.longest_edge() : 1u, p.has_max_image_size() ? p.max_image_size() : 1u,
                 p.has_video_max_frames() ? p.video_max_frames() : 1u,
                 p.has_video_num_frames() ? p.video_num_frames() : 1u}) {
    if (v == 0 || v > (1u << 20)) return absl::InvalidArgumentError("processor option out of range");
  }
  return out;
}

absl::StatusOr<ChatRequest> ChatRequestFromProto(const v1::ChatRequest& request) {
  ChatRequest out;
  absl::StatusOr<PrepareRequest> prepare = ToPrepareRequest(request);
  if (!prepare.ok()) return prepare.status();
  out.prepare = *std::move(prepare);
  out.generation = grpc_util::GenerationFromProto(request.generation());
  return out;
}

absl::StatusOr<v1::ChatRequest> ChatRequestToProto(const ChatRequest& chat,
                                                   const MediaAccess& access) {
  const PrepareRequest& request = chat.prepare;
  v1::ChatRequest out;
  for (size_t b = 0; b < request.conversations.size(); ++b) {
    auto* conv = out.add_conversations();
    for (const Message& msg : request.conversations[b]) {
      auto* m = conv->add_messages();
      m->set_role(msg.role);
      int image_k = 0, video_k = 0;
      for (const ContentItem& item : msg.content) {
        auto* c = m->add_content();
        if (item.type == ContentItem::Type::kText) {
          c->set_text(item.text);
          continue;
        }
        const bool image = item.type == ContentItem::Type::kImage;
        v1::Media* media = image ? c->mutable_image() : c->mutable_video();
        media->set_id(item.source.id);
        if (item.source.kind == MediaSource::Kind::kNone) {
          (image ? image_k : video_k)++;
          continue;
        }
        auto bytes = ReadMediaBytes(item.source, access);
        if (!bytes.ok()) {
          return absl::Status(bytes.status().code(),
                              absl::StrCat(image ? "image " : "video ", image ? image_k : video_k,
                                           ": ", bytes.status().message()));
        }
        media->set_data(*std::move(bytes));
        media->set_mime_type(item.source.mime_type);
        (image ? image_k : video_k)++;
      }
    }
  }
  auto* p = out.mutable_processor();
  const ProcessorOverrides& o = request.processor;
  if (o.do_image_splitting) p->set_do_image_splitting(*o.do_image_splitting);
  if (o.longest_edge) p->set_longest_edge(*o.longest_edge);
  if (o.max_image_size) p->set_max_image_size(*o.max_image_size);
  if (o.video_fps) p->set_video_fps(static_cast<float>(*o.video_fps));
  if (o.video_max_frames) p->set_video_max_frames(*o.video_max_frames);
  if (o.video_num_frames) p->set_video_num_frames(*o.video_num_frames);
  if (o.video_skip_secs) p->set_video_skip_secs(static_cast<float>(*o.video_skip_secs));
  grpc_util::GenerationToProto(chat.generation, out.mutable_generation());
  return out;
}

void ChatResultToProto(const ChatResult& result, v1::ChatResponse::ChatResult* out) {
  for (const ChatChoice& c : result.choices) {
    v1::Choice* choice = out->add_choices();
    choice->set_index(static_cast<uint32_t>(c.index));
    choice->set_text(c.text);
    choice->mutable_token_ids()->Add(c.token_ids.begin(), c.token_ids.end());
    if (!c.status.ok()) {
      choice->set_error_code(static_cast<int32_t>(c.status.code()));
      choice->set_error_message(std::string(c.status.message()));
    } else {
      choice->set_finish_reason(grpc_util::FinishReasonToProto(c.finish_reason));
    }
    v1::Usage* u = choice->mutable_usage();
    u->set_prompt_tokens(static_cast<uint32_t>(c.usage.prompt_tokens));
    u->set_completion_tokens(static_cast<uint32_t>(c.usage.completion_tokens));
    u->set_image_tiles(static_cast<uint32_t>(c.usage.image_tiles));
    u->set_video_frames(static_cast<uint32_t>(c.usage.video_frames));
    u->set_cached_prompt_tokens(static_cast<uint32_t>(c.usage.cached_prompt_tokens));
  }
  const ChatTimings& t = result.timings;
  v1::StageTimings* timings = out->mutable_timings();
  timings->set_preprocess_ms(t.preprocess_ms);
  timings->set_vision_ms(t.vision_ms);
  timings->set_prefill_ms(t.prefill_ms);
  timings->set_decode_ms(t.decode_ms);
  timings->set_time_to_first_token_ms(t.time_to_first_token_ms);
  timings->set_total_ms(t.total_ms);
  timings->set_embedding_bytes(static_cast<uint64_t>(t.embedding_bytes));
  timings->set_cached_tiles(static_cast<uint32_t>(t.cached_tiles));
  timings->set_tiles(static_cast<uint32_t>(t.tiles));
  out->set_request_id(result.request_id);
  out->set_model_revision(result.model_revision);
}

}  // namespace smolserve::preprocess
