#include "services/preprocess/server/chat_convert.h"

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
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

absl::StatusOr<v1::ChatRequest> ToChatRequest(const PrepareRequest& request,
                                              const MediaAccess& access) {
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
  if (!request.generation_json.empty()) {
    auto g = GenerationParamsFromJson(request.generation_json);
    if (!g.ok()) return g.status();
    *out.mutable_generation() = *g;
  }
  return out;
}

absl::StatusOr<v1::GenerationParams> GenerationParamsFromJson(absl::string_view text) {
  using nlohmann::json;
  json j = json::parse(text.begin(), text.end(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError("\"generation\" must be a JSON object");
  }
  v1::GenerationParams g;
  try {
    for (auto it = j.begin(); it != j.end(); ++it) {
      const std::string& k = it.key();
      const json& v = it.value();
      auto bad = [&](const char* what) {
        return absl::InvalidArgumentError(absl::StrCat("generation.", k, ": ", what));
      };
      if (k == "max_new_tokens") {
        if (!v.is_number_integer() || v.get<int64_t>() < 1) return bad("must be a positive integer");
        g.set_max_new_tokens(static_cast<uint32_t>(v.get<int64_t>()));
      } else if (k == "temperature") {
        if (!v.is_number() || v.get<double>() < 0) return bad("must be a number >= 0");
        g.set_temperature(v.get<float>());
      } else if (k == "top_p") {
        if (!v.is_number()) return bad("must be a number");
        g.set_top_p(v.get<float>());
      } else if (k == "top_k") {
        if (!v.is_number_integer() || v.get<int64_t>() < 0) return bad("must be an integer >= 0");
        g.set_top_k(static_cast<uint32_t>(v.get<int64_t>()));
      } else if (k == "repetition_penalty") {
        if (!v.is_number()) return bad("must be a number");
        g.set_repetition_penalty(v.get<float>());
      } else if (k == "seed") {
        if (!v.is_number_integer()) return bad("must be an integer");
        g.set_seed(v.get<uint64_t>());
      } else if (k == "ignore_eos") {
        if (!v.is_boolean()) return bad("must be true or false");
        g.set_ignore_eos(v.get<bool>());
      } else if (k == "greedy") {
        if (!v.is_boolean()) return bad("must be true or false");
        if (v.get<bool>()) g.set_temperature(0);
      } else if (k == "stop") {
        if (v.is_string()) {
          g.add_stop(v.get<std::string>());
        } else if (v.is_array()) {
          for (const auto& s : v) {
            if (!s.is_string()) return bad("must be a string or a list of strings");
            g.add_stop(s.get<std::string>());
          }
        } else {
          return bad("must be a string or a list of strings");
        }
      } else {
        return absl::InvalidArgumentError(absl::StrCat("generation: unknown key \"", k, "\""));
      }
    }
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("generation: ", e.what()));
  }
  return g;
}

}  // namespace smolserve::preprocess
