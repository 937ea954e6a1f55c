#include "services/preprocess/core/preprocessor.h"

#include <algorithm>
#include <cmath>
#include <chrono>
#include <cstring>

#include <ATen/ATen.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status/retry_after.h"
#include "common/status/status_macros.h"
#include "services/preprocess/core/image/image_decode.h"
#include "services/preprocess/core/image/image_processor.h"
#include "services/preprocess/core/image/normalize.h"
#include "services/preprocess/core/media_key.h"
#include "services/preprocess/core/prompt.h"
#include "services/preprocess/core/video/video_processor.h"
#include "services/preprocess/core/video/video_prompt.h"

namespace smolserve::preprocess {
namespace {

using Clock = std::chrono::steady_clock;

double MsSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// One processed media item, in prompt order, before batching.
struct MediaResult {
  MediaInfo info;
  std::vector<Image> arrays;  // RGB T x T tiles or frames
  NormalizeFormula formula = NormalizeFormula::kImage;
  std::vector<FrameTimestamp> timestamps;
};

bool HasVideo(const Conversation& conv) {
  for (const auto& m : conv)
    for (const auto& item : m.content)
      if (item.type == ContentItem::Type::kVideo) return true;
  return false;
}

// A looked-up MediaInfo must describe an item of the same kind that can be laid out.
absl::Status CheckCachedInfo(const MediaInfo& info, MediaInfo::Kind kind) {
  if (info.kind != kind) return absl::InternalError("cached media item is of another kind");
  if (kind == MediaInfo::Kind::kImage) {
    const int expected = info.rows == 0 && info.cols == 0 ? 1 : info.rows * info.cols + 1;
    if (info.rows < 0 || info.cols < 0 || info.num_tiles != expected) {
      return absl::InternalError("cached image has an inconsistent tile grid");
    }
  } else if (info.num_tiles < 1 || info.timestamps.size() != static_cast<size_t>(info.num_tiles)) {
    return absl::InternalError("cached video has inconsistent frames and timestamps");
  }
  return absl::OkStatus();
}

}  // namespace

int PreparedBatch::num_real_tiles() const {
  int n = 0;
  for (const auto& m : media) n += m.num_tiles;
  return n;
}

int PreparedBatch::num_cached_tiles() const {
  int n = 0;
  for (const auto& m : media)
    if (m.from_cache) n += m.num_tiles;
  return n;
}

int PreparedBatch::prompt_tokens(int b) const {
  int n = 0;
  for (int32_t m : attention_mask[b]) n += m;
  return n;
}

absl::StatusOr<std::unique_ptr<Preprocessor>> Preprocessor::Create(
    const PreprocessorOptions& options) {
  std::unique_ptr<Preprocessor> p(new Preprocessor());
  p->options_ = options;
  p->options_.media_access.max_bytes = options.limits.max_encoded_bytes;
  ASSIGN_OR_RETURN(p->config_, LoadProcessorConfig(options.model_dir));
  ASSIGN_OR_RETURN(p->tokenizer_, tokenizer::Tokenizer::FromModelDir(options.model_dir));
  auto tmpl = ReadChatTemplate(options.model_dir);
  if (tmpl.ok()) {
    p->model_template_ = *tmpl;
    // Refuse an unknown template up front rather than at the first request.
    RETURN_IF_ERROR(RecognizeChatTemplate(p->model_template_).status());
  } else if (tmpl.status().code() != absl::StatusCode::kNotFound) {
    return tmpl.status();
  }
  ASSIGN_OR_RETURN(p->model_identity_, ModelIdentity(options.model_dir));
  return p;
}

absl::StatusOr<PreparedBatch> Preprocessor::Prepare(const PrepareRequest& request) const {
  return Prepare(request, options_.media_access, MediaLookup());
}

namespace {

// What a request may ask of the processor, against the server's caps (the model's own tile
// size unless configured). INVALID_ARGUMENT naming the option.
absl::Status CheckRequestCaps(const ProcessorOverrides& o, const MediaLimits& l,
                              const ProcessorConfig& config) {
  const int tile_cap = l.max_tile_side > 0 ? l.max_tile_side : config.max_image_size;
  if (o.max_image_size && *o.max_image_size > tile_cap) {
    return absl::InvalidArgumentError(absl::StrCat("processor.max_image_size ", *o.max_image_size,
                                                   " is over this server's limit of ", tile_cap));
  }
  if (o.longest_edge && *o.longest_edge > l.max_longest_edge) {
    return absl::InvalidArgumentError(absl::StrCat("processor.size.longest_edge ", *o.longest_edge,
                                                   " is over this server's limit of ",
                                                   l.max_longest_edge));
  }
  if (o.video_fps && !(std::isfinite(*o.video_fps) && *o.video_fps > 0 &&
                       *o.video_fps <= l.max_video_fps)) {
    return absl::InvalidArgumentError(
        absl::StrCat("processor.video.fps must be in (0, ", l.max_video_fps, "]"));
  }
  if (o.video_skip_secs && !(std::isfinite(*o.video_skip_secs) && *o.video_skip_secs >= 0 &&
                             *o.video_skip_secs <= l.max_video_duration_s)) {
    return absl::InvalidArgumentError("processor.video.skip_secs must be a finite number >= 0");
  }
  for (const auto& [name, v] : {std::pair<const char*, std::optional<int>>{"max_frames", o.video_max_frames},
                                {"num_frames", o.video_num_frames}}) {
    if (v && (*v < 1 || *v > l.max_video_sampled_frames)) {
      return absl::InvalidArgumentError(absl::StrCat("processor.video.", name, " must be in [1, ",
                                                     l.max_video_sampled_frames, "]"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<PreparedBatch> Preprocessor::Prepare(const PrepareRequest& request,
                                                    const MediaAccess& access) const {
  return Prepare(request, access, MediaLookup());
}

absl::StatusOr<PreparedBatch> Preprocessor::Prepare(const PrepareRequest& request,
                                                    const MediaAccess& access_in,
                                                    const MediaLookup& lookup) const {
  const MediaLimits& limits = options_.limits;
  MediaAccess access = access_in;
  access.max_bytes = limits.max_encoded_bytes;
  const ProcessorOverrides& over = request.processor;
  if (request.conversations.empty()) return absl::InvalidArgumentError("no conversation");

  // Counts first: refuse oversized requests before touching any media.
  int n_images = 0, n_videos = 0;
  for (const auto& conv : request.conversations)
    for (const auto& m : conv)
      for (const auto& item : m.content) {
        n_images += item.type == ContentItem::Type::kImage;
        n_videos += item.type == ContentItem::Type::kVideo;
      }
  if (n_images > limits.max_images_per_request) {
    return absl::ResourceExhaustedError(absl::StrCat("request has ", n_images,
                                                     " images, over the limit of ",
                                                     limits.max_images_per_request));
  }
  if (n_videos > limits.max_videos_per_request) {
    return absl::ResourceExhaustedError(absl::StrCat("request has ", n_videos,
                                                     " videos, over the limit of ",
                                                     limits.max_videos_per_request));
  }

  ImageProcessorOptions image_options;
  image_options.do_resize = over.do_resize.value_or(config_.do_resize);
  image_options.longest_edge = over.longest_edge.value_or(config_.longest_edge);
  image_options.max_image_size = over.max_image_size.value_or(config_.max_image_size);
  image_options.do_image_splitting = over.do_image_splitting.value_or(config_.do_image_splitting);
  if (config_.resample != 1) {
    return absl::UnimplementedError(absl::StrCat("resample ", config_.resample,
                                                 " is not supported (only 1, LANCZOS)"));
  }
  RETURN_IF_ERROR(ValidateImageProcessorOptions(image_options));
  RETURN_IF_ERROR(CheckRequestCaps(over, limits, config_));
  VideoOptions video_options;
  video_options.sampling.fps = over.video_fps.value_or(config_.video_fps);
  video_options.sampling.max_frames = over.video_max_frames.value_or(config_.video_max_frames);
  video_options.sampling.num_frames = over.video_num_frames;
  video_options.sampling.skip_secs = over.video_skip_secs.value_or(0.0);
  // The reference's constructor replaces video_size with size when both are present.
  video_options.longest_edge = image_options.longest_edge;
  video_options.max_image_size = image_options.max_image_size;
  const bool keep_mode = over.keep_image_mode.value_or(false);
  const int S = config_.image_seq_len;
  const int T = image_options.max_image_size;

  // What shapes an item's preprocessing besides its bytes and the model files (media keys).
  std::string image_key_options, video_key_options;
  if (lookup) {
    image_key_options = KeyOptions()
                            .Add("do_resize", image_options.do_resize)
                            .Add("longest_edge", image_options.longest_edge)
                            .Add("max_image_size", image_options.max_image_size)
                            .Add("do_image_splitting", image_options.do_image_splitting)
                            .Add("resample", config_.resample)
                            .Add("keep_image_mode", keep_mode)
                            .Add("image_seq_len", S)
                            .bytes();
    video_key_options = KeyOptions()
                            .Add("fps", video_options.sampling.fps)
                            .Add("max_frames", video_options.sampling.max_frames)
                            .Add("num_frames", video_options.sampling.num_frames.value_or(-1))
                            .Add("skip_secs", video_options.sampling.skip_secs)
                            .Add("longest_edge", video_options.longest_edge)
                            .Add("max_image_size", video_options.max_image_size)
                            .Add("image_seq_len", S)
                            .bytes();
  }

  PreparedBatch batch;
  batch.image_seq_len = S;
  const int B = static_cast<int>(request.conversations.size());
  std::vector<std::vector<MediaResult>> media(B);
  // This request's decoding: the pixel budget it draws on, and when to stop (its deadline,
  // its client gone).
  MediaLimits budget = limits;
  budget.interrupt = [&access]() -> absl::Status {
    if (absl::Now() > access.deadline) return absl::DeadlineExceededError("deadline exceeded while decoding media");
    if (access.cancelled && access.cancelled()) return absl::CancelledError("cancelled");
    return absl::OkStatus();
  };
  int tiles = 0;

  // Decode and process every media item (or take what the lookup kept of it).
  int media_index = 0;
  for (int b = 0; b < B; ++b) {
    int image_k = 0, video_k = 0;
    for (const auto& msg : request.conversations[b]) {
      for (const auto& item : msg.content) {
        if (item.type == ContentItem::Type::kText) continue;
        const bool is_image = item.type == ContentItem::Type::kImage;
        const MediaInfo::Kind kind = is_image ? MediaInfo::Kind::kImage : MediaInfo::Kind::kVideo;
        const std::string what =
            absl::StrCat(B > 1 ? absl::StrCat("conversation ", b, ", ") : "",
                         is_image ? "image " : "video ", is_image ? image_k++ : video_k++, " (",
                         DescribeMediaSource(item.source), ")");
        const auto start = Clock::now();
        const bool has_source = item.source.kind != MediaSource::Kind::kNone;
        absl::StatusOr<std::string> bytes = std::string();
        if (has_source) {
          bytes = ReadMediaBytes(item.source, access);
          if (!bytes.ok()) return Annotate(bytes.status(), what);
        }
        MediaResult r;
        std::optional<MediaInfo> cached;
        MediaKeys keys;
        if (lookup) {
          const std::string& key_options = is_image ? image_key_options : video_key_options;
          if (has_source) keys.content = MediaContentKey(model_identity_, request.tenant, kind, key_options, *bytes);
          if (!item.source.id.empty()) {
            keys.id = MediaIdKey(model_identity_, request.tenant, kind, key_options, item.source.id);
          }
          cached = lookup(media_index, keys);
        }
        ++media_index;
        if (!cached && !has_source) {
          return absl::NotFoundError(absl::StrCat(what, ": media id '", item.source.id,
                                                  "' is not cached; send the media data"));
        }
        if (cached) {
          if (auto s = CheckCachedInfo(*cached, kind); !s.ok()) return Annotate(s, what);
          r.info = *std::move(cached);
          r.info.from_cache = true;
          r.info.first_tile = -1;
          for (const auto& [m, sec] : r.info.timestamps) r.timestamps.push_back({m, sec});
        } else if (is_image) {
          RETURN_IF_ERROR(Annotate(budget.interrupt(), what));
          ImageDecodeOptions decode_options;
          decode_options.convert_to_rgb = !keep_mode;
          decode_options.limits = limits;
          decode_options.limits.max_image_pixels =
              std::min(limits.max_image_pixels, budget.max_decoded_pixels_per_request);
          auto image = DecodeImage(*bytes, decode_options);
          if (!image.ok()) return Annotate(image.status(), what);
          budget.max_decoded_pixels_per_request -= static_cast<int64_t>(image->width) * image->height;
          auto processed = ProcessImage(*image, image_options);
          if (!processed.ok()) return Annotate(processed.status(), what);
          r.info.kind = MediaInfo::Kind::kImage;
          r.info.rows = processed->rows;
          r.info.cols = processed->cols;
          r.info.source_height = image->height;
          r.info.source_width = image->width;
          r.arrays = std::move(processed->tiles);
          r.formula = NormalizeFormula::kImage;
        } else {
          auto video = ProcessVideo(*bytes, video_options, budget);
          if (!video.ok()) return Annotate(video.status(), what);
          budget.max_decoded_pixels_per_request -= video->decoded_pixels;
          r.info.kind = MediaInfo::Kind::kVideo;
          r.info.source_height = video->metadata.height;
          r.info.source_width = video->metadata.width;
          r.info.sampled_frame_indices = video->sampled_frame_indices;
          for (const auto& t : video->timestamps) {
            r.info.timestamps.emplace_back(static_cast<int>(t.minutes), static_cast<int>(t.seconds));
          }
          r.timestamps = video->timestamps;
          r.info.duration_int = static_cast<int>(video->duration_int);
          r.info.fps = video->metadata.fps;
          r.info.total_num_frames = video->metadata.total_num_frames;
          r.info.decoded_frames = video->decoded_frame_count;
          r.arrays = std::move(video->frames);
          r.formula = NormalizeFormula::kVideo;
        }
        for (const Image& a : r.arrays) {
          if (a.height != T || a.width != T || a.mode != PixelMode::kRGB) {
            return absl::InternalError(absl::StrCat(what, ": processed array is ", a.height, "x",
                                                    a.width, ", expected ", T, "x", T, " RGB"));
          }
        }
        if (!r.info.from_cache) r.info.num_tiles = static_cast<int>(r.arrays.size());
        tiles += r.info.num_tiles;
        if (tiles > limits.max_tiles_per_request) {
          return absl::ResourceExhaustedError(absl::StrCat(
              what, ": the request has more than ", limits.max_tiles_per_request, " tiles and frames"));
        }
        r.info.conversation = b;
        r.info.keys = keys;
        r.info.decode_ms = MsSince(start);
        media[b].push_back(std::move(r));
      }
    }
  }

  // The reference's frame count in the video intro is the batch-padded one (the largest
  // number of arrays of any sample that holds a video).
  int padded_frames = 0;
  for (int b = 0; b < B; ++b) {
    int frames = 0;
    for (const auto& r : media[b])
      if (r.info.kind == MediaInfo::Kind::kVideo) frames += r.info.num_tiles;
    padded_frames = std::max(padded_frames, frames);
  }

  // Prompts and tokens.
  const std::string single_block = SingleImagePromptTokens(S);
  std::vector<std::vector<int32_t>> ids(B);
  for (int b = 0; b < B; ++b) {
    const Conversation& conv = request.conversations[b];
    ChatTemplateKind kind = ChatTemplateKind::kSmolVLMVideo;
    if (over.chat_template.value_or("auto") == "auto" && !HasVideo(conv) &&
        !model_template_.empty()) {
      ASSIGN_OR_RETURN(kind, RecognizeChatTemplate(model_template_));
    }
    ASSIGN_OR_RETURN(std::string rendered, RenderChatTemplate(kind, conv, true));
    std::vector<std::string> image_text, video_text;
    for (const auto& r : media[b]) {
      if (r.info.kind == MediaInfo::Kind::kImage) {
        image_text.push_back(ImagePromptTokens(r.info.rows, r.info.cols, S));
      } else {
        ASSIGN_OR_RETURN(std::string v, BuildVideoPromptText(padded_frames, r.info.duration_int,
                                                             r.timestamps, single_block));
        video_text.push_back(std::move(v));
      }
    }
    auto expanded = ExpandPlaceholders(rendered, image_text, video_text);
    if (!expanded.ok()) {
      return Annotate(expanded.status(), B > 1 ? absl::StrCat("conversation ", b) : "conversation");
    }
    ids[b] = tokenizer_->Encode(*expanded);
    if (static_cast<int>(ids[b].size()) > limits.max_prompt_tokens) {
      return absl::ResourceExhaustedError(absl::StrCat(
          B > 1 ? absl::StrCat("conversation ", b, ": ") : "", "prompt is ", ids[b].size(),
          " tokens, over the limit of ", limits.max_prompt_tokens));
    }
    batch.prompt_template.push_back(std::move(rendered));
    batch.prompt_expanded.push_back(*std::move(expanded));
  }

  // Left padding.
  size_t max_len = 0;
  for (const auto& row : ids) max_len = std::max(max_len, row.size());
  for (int b = 0; b < B; ++b) {
    const size_t pad = max_len - ids[b].size();
    std::vector<int32_t> row(pad, options_.pad_token_id);
    row.insert(row.end(), ids[b].begin(), ids[b].end());
    std::vector<int32_t> mask(pad, 0);
    mask.resize(max_len, 1);
    batch.input_ids.push_back(std::move(row));
    batch.attention_mask.push_back(std::move(mask));
  }

  // Pixel tensors (of the items that were decoded).
  int n_max = 0;
  for (int b = 0; b < B; ++b) {
    int n = 0;
    for (const auto& r : media[b]) n += static_cast<int>(r.arrays.size());
    n_max = std::max(n_max, n);
  }
  if (n_max > 0) {
    if (options_.media_budget != nullptr) {
      const int64_t bytes = static_cast<int64_t>(B) * n_max * (int64_t{T} * T * 4 + 1);
      std::unique_ptr<ByteBudget::Reservation> r = options_.media_budget->TryReserve(bytes);
      if (r == nullptr) {
        return WithRetryAfter(
            absl::ResourceExhaustedError(absl::StrCat(
                "the front is busy: its media memory is in use (", options_.media_budget->in_use() >> 20,
                " of ", options_.media_budget->max_bytes() >> 20, " MiB); retry shortly")),
            1000);
      }
      batch.media_reservation = std::move(r);
    }
    batch.pixels = at::zeros({B, n_max, 3, T, T}, at::kByte);
    batch.tile_formula = at::zeros({B, n_max}, at::kByte);
    batch.pixel_attention_mask = at::zeros({B, n_max, T, T}, at::kByte);
    batch.normalize.rescale_factor = config_.rescale_factor;
    batch.normalize.mean = config_.image_mean;
    batch.normalize.std = config_.image_std;
    uint8_t* px = batch.pixels.data_ptr<uint8_t>();
    uint8_t* formula = batch.tile_formula.data_ptr<uint8_t>();
    uint8_t* pm = batch.pixel_attention_mask.data_ptr<uint8_t>();
    const size_t plane = static_cast<size_t>(T) * T;
    for (int b = 0; b < B; ++b) {
      int slot = 0;
      for (auto& r : media[b]) {
        if (!r.info.from_cache) r.info.first_tile = slot;
        for (const Image& a : r.arrays) {
          const size_t index = static_cast<size_t>(b) * n_max + slot;
          ToCHW(a, px + index * 3 * plane, T, T);
          formula[index] = static_cast<uint8_t>(r.formula);
          std::memset(pm + index * plane, 1, plane);
          ++slot;
        }
      }
    }
  }
  for (int b = 0; b < B; ++b)
    for (auto& r : media[b]) batch.media.push_back(std::move(r.info));
  return batch;
}

at::Tensor PreparedBatch::pixel_values() const {
  if (!pixels.defined()) return at::Tensor();
  const auto sizes = pixels.sizes().vec();
  const int64_t n = sizes[0] * sizes[1];
  const at::Tensor flat = pixels.reshape({n, sizes[2], sizes[3], sizes[4]});
  const at::Tensor formulas = tile_formula.reshape({n}).contiguous();
  auto out = pixels::NormalizeTiles(
      flat, absl::MakeConstSpan(formulas.data_ptr<uint8_t>(), static_cast<size_t>(n)), normalize);
  if (!out.ok()) return at::Tensor();
  // Padding arrays are all-zero floats, as the reference pads.
  const at::Tensor real = pixel_attention_mask.reshape({n, -1}).amax(1).to(at::kBool);
  return at::where(real.view({n, 1, 1, 1}), *out, at::zeros({}, at::kFloat)).view(sizes);
}

}  // namespace smolserve::preprocess
