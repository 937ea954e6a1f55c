#include "services/preprocess/core/video/video_decode.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <numeric>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status/status_macros.h"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavformat/avio.h>
#include <libavutil/avutil.h>
#include <libavutil/error.h>
#include <libavutil/imgutils.h>
#include <libavutil/mem.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>
}

namespace smolserve::preprocess {
namespace {

constexpr int kIoBufferSize = 1 << 16;
// Most memory spent on decoded-frame references kept during pass 1 (see DecodeVideo).
constexpr double kSpeculativeBytes = 256.0 * (1 << 20);

std::string AvErrorString(int err) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {0};
  av_strerror(err, buf, sizeof(buf));
  return buf;
}

// Maps an FFmpeg error code met while handling request bytes to a status.
absl::Status AvErrorToStatus(int err, absl::string_view what) {
  const std::string msg = absl::StrCat(what, ": ", AvErrorString(err), " (", err, ")");
  if (err == AVERROR(ENOMEM)) return absl::ResourceExhaustedError(msg);
  if (err == AVERROR_PATCHWELCOME || err == AVERROR(ENOSYS) || err == AVERROR_DECODER_NOT_FOUND ||
      err == AVERROR_DEMUXER_NOT_FOUND) {
    return absl::InvalidArgumentError(absl::StrCat(msg, " (unsupported media)"));
  }
  return absl::InvalidArgumentError(msg);
}

// ---- In-memory AVIOContext --------------------------------------------------------------

struct MemoryReader {
  const uint8_t* data = nullptr;
  int64_t size = 0;
  int64_t pos = 0;
};

int ReadPacket(void* opaque, uint8_t* buf, int buf_size) {
  auto* r = static_cast<MemoryReader*>(opaque);
  if (r->pos >= r->size) return AVERROR_EOF;
  const int64_t n = std::min<int64_t>(buf_size, r->size - r->pos);
  std::memcpy(buf, r->data + r->pos, static_cast<size_t>(n));
  r->pos += n;
  return static_cast<int>(n);
}

int64_t Seek(void* opaque, int64_t offset, int whence) {
  auto* r = static_cast<MemoryReader*>(opaque);
  if (whence & AVSEEK_SIZE) return r->size;
  int64_t base;
  switch (whence & ~AVSEEK_FORCE) {
    case SEEK_SET: base = 0; break;
    case SEEK_CUR: base = r->pos; break;
    case SEEK_END: base = r->size; break;
    default: return AVERROR(EINVAL);
  }
  if ((offset > 0 && base > std::numeric_limits<int64_t>::max() - offset)) return AVERROR(EINVAL);
  const int64_t target = base + offset;
  if (target < 0 || target > r->size) return AVERROR(EINVAL);
  r->pos = target;
  return target;
}

// Demuxers that reference other resources (playlists, concat lists, image sequences) may ask
// to open URLs; request bytes must never reach the filesystem or network.
int DenyIoOpen(AVFormatContext*, AVIOContext**, const char* url, int, AVDictionary**) {
  (void)url;
  return AVERROR(EPERM);
}

struct FormatDeleter {
  void operator()(AVFormatContext* ctx) const { avformat_close_input(&ctx); }
};
struct IoDeleter {
  void operator()(AVIOContext* io) const {
    if (io != nullptr) av_freep(&io->buffer);
    avio_context_free(&io);
  }
};
struct CodecDeleter {
  void operator()(AVCodecContext* ctx) const { avcodec_free_context(&ctx); }
};
struct PacketDeleter {
  void operator()(AVPacket* p) const { av_packet_free(&p); }
};
struct FrameDeleter {
  void operator()(AVFrame* f) const { av_frame_free(&f); }
};
struct SwsDeleter {
  void operator()(SwsContext* s) const { sws_freeContext(s); }
};

// One opened container + video decoder over the request bytes.
class Demuxer {
 public:
  static absl::StatusOr<std::unique_ptr<Demuxer>> Open(absl::string_view encoded,
                                                       const MediaLimits& limits);

  AVStream* stream() const { return fmt_->streams[stream_index_]; }
  AVFormatContext* format() const { return fmt_.get(); }
  const VideoMetadata& header() const { return header_; }
  int64_t decoded_pixels() const { return decoded_pixels_; }
  // Seconds from the container/stream header when nb_frames/fps are unavailable; < 0 if none.
  double container_duration() const { return container_duration_; }

  // Decodes frames in output order. `on_frame(index, frame)` returns false to stop early.
  absl::Status DecodeAll(const std::function<absl::StatusOr<bool>(int64_t, const AVFrame*)>& on_frame);

 private:
  Demuxer() = default;
  absl::Status ReceiveFrames(const std::function<absl::StatusOr<bool>(int64_t, const AVFrame*)>& on_frame,
                             bool* stop);

  MemoryReader reader_;
  std::unique_ptr<AVIOContext, IoDeleter> io_;
  std::unique_ptr<AVFormatContext, FormatDeleter> fmt_;
  std::unique_ptr<AVCodecContext, CodecDeleter> codec_;
  std::unique_ptr<AVFrame, FrameDeleter> frame_;
  int stream_index_ = -1;
  int64_t frames_out_ = 0;
  int first_width_ = 0;
  int first_height_ = 0;
  MediaLimits limits_;
  int64_t decoded_pixels_ = 0;  // width * height of every frame decoded, both passes
  VideoMetadata header_;
  double container_duration_ = -1.0;
};

// float(Fraction(total) / Fraction(num, den)) in Python: the exact quotient rounded once.
double RationalDuration(int64_t total, int64_t num, int64_t den) {
  uint64_t p = static_cast<uint64_t>(total);
  uint64_t q = static_cast<uint64_t>(num);
  uint64_t d = static_cast<uint64_t>(den);
  // total / (num / den) = total * den / num; reduce before multiplying.
  const uint64_t g1 = std::gcd(p, q);
  p /= g1;
  q /= g1;
  const uint64_t g2 = std::gcd(d, q);
  d /= g2;
  q /= g2;
  constexpr uint64_t kExact = uint64_t{1} << 53;
  if (p != 0 && d > kExact / p) {
    // Too large for one exact double division; long double is more than close enough.
    return static_cast<double>(static_cast<long double>(p) * d / q);
  }
  p *= d;
  if (p <= kExact && q <= kExact) return static_cast<double>(p) / static_cast<double>(q);
  return static_cast<double>(static_cast<long double>(p) / q);
}

bool IsStillImageDemuxer(absl::string_view name) {
  return name == "image2" || absl::EndsWith(name, "_pipe");
}

absl::StatusOr<std::unique_ptr<Demuxer>> Demuxer::Open(absl::string_view encoded,
                                                       const MediaLimits& limits) {
  if (encoded.empty()) return absl::InvalidArgumentError("video is empty (0 bytes)");
  if (static_cast<int64_t>(encoded.size()) > limits.max_encoded_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat("video is ", encoded.size(),
                                                     " bytes, limit is ",
                                                     limits.max_encoded_bytes));
  }
  std::unique_ptr<Demuxer> d(new Demuxer());
  d->limits_ = limits;
  d->reader_.data = reinterpret_cast<const uint8_t*>(encoded.data());
  d->reader_.size = static_cast<int64_t>(encoded.size());

  auto* buffer = static_cast<unsigned char*>(av_malloc(kIoBufferSize));
  if (buffer == nullptr) return absl::ResourceExhaustedError("out of memory (AVIO buffer)");
  AVIOContext* io = avio_alloc_context(buffer, kIoBufferSize, /*write_flag=*/0, &d->reader_,
                                       &ReadPacket, nullptr, &Seek);
  if (io == nullptr) {
    av_free(buffer);
    return absl::ResourceExhaustedError("out of memory (AVIOContext)");
  }
  d->io_.reset(io);

  AVFormatContext* fmt = avformat_alloc_context();
  if (fmt == nullptr) return absl::ResourceExhaustedError("out of memory (AVFormatContext)");
  fmt->pb = io;
  fmt->flags |= AVFMT_FLAG_CUSTOM_IO;
  fmt->io_open = &DenyIoOpen;
  AVDictionary* opts = nullptr;
  av_dict_set(&opts, "protocol_whitelist", "none", 0);
  int err = avformat_open_input(&fmt, nullptr, nullptr, &opts);
  av_dict_free(&opts);
  if (err < 0) {
    // avformat_open_input frees the context on failure.
    return AvErrorToStatus(err, "not a readable video container");
  }
  d->fmt_.reset(fmt);
  err = avformat_find_stream_info(fmt, nullptr);
  if (err < 0) return AvErrorToStatus(err, "cannot read the video stream information");

  const std::string container = fmt->iformat != nullptr ? fmt->iformat->name : "";
  if (IsStillImageDemuxer(container)) {
    return absl::InvalidArgumentError(
        absl::StrCat("input is a still image (", container, "), not a video"));
  }
  // PyAV's streams.video[0]: the first video stream (cover art is not a video).
  for (unsigned i = 0; i < fmt->nb_streams; ++i) {
    const AVStream* st = fmt->streams[i];
    if (st->codecpar->codec_type == AVMEDIA_TYPE_VIDEO &&
        !(st->disposition & AV_DISPOSITION_ATTACHED_PIC)) {
      d->stream_index_ = static_cast<int>(i);
      break;
    }
  }
  if (d->stream_index_ < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("no video stream in the input (container ", container, ")"));
  }
  AVStream* st = fmt->streams[d->stream_index_];
  const AVCodecParameters* par = st->codecpar;

  // Header metadata, PyAV semantics.
  VideoMetadata& h = d->header_;
  h.container = container;
  h.width = par->width;
  h.height = par->height;
  h.total_num_frames = st->nb_frames > 0 ? st->nb_frames : 0;
  h.total_from_header = h.total_num_frames > 0;
  AVRational rate = {0, 0};
  if (st->avg_frame_rate.num > 0 && st->avg_frame_rate.den > 0) {
    rate = st->avg_frame_rate;
  } else if (st->r_frame_rate.num > 0 && st->r_frame_rate.den > 0) {
    rate = st->r_frame_rate;
  }
  if (rate.num > 0) {
    h.fps = av_q2d(rate);
    h.fps_num = rate.num;
    h.fps_den = rate.den;
  }
  h.fps_from_header = h.fps > 0;
  if (h.total_num_frames > 0 && h.fps > 0) {
    h.duration = RationalDuration(h.total_num_frames, h.fps_num, h.fps_den);
  }
  if (fmt->duration != AV_NOPTS_VALUE && fmt->duration > 0) {
    d->container_duration_ = static_cast<double>(fmt->duration) / AV_TIME_BASE;
  } else if (st->duration != AV_NOPTS_VALUE && st->duration > 0 && st->time_base.den > 0) {
    d->container_duration_ = static_cast<double>(st->duration) * av_q2d(st->time_base);
  }
  if (h.duration <= 0 && d->container_duration_ > 0) h.duration = d->container_duration_;

  // Limits from the header, before any decoding.
  if (h.width < 0 || h.height < 0) return absl::InvalidArgumentError("negative frame size");
  if (static_cast<int64_t>(h.width) * h.height > limits.max_video_frame_pixels) {
    return absl::ResourceExhaustedError(absl::StrCat("video frame ", h.width, "x", h.height,
                                                     " exceeds ", limits.max_video_frame_pixels,
                                                     " pixels"));
  }
  if (!std::isfinite(h.duration) || h.duration > limits.max_video_duration_s) {
    return absl::ResourceExhaustedError(absl::StrCat("video duration ", h.duration,
                                                     " s exceeds the limit of ",
                                                     limits.max_video_duration_s, " s"));
  }
  if (h.total_num_frames > limits.max_video_decoded_frames) {
    return absl::ResourceExhaustedError(absl::StrCat("video has ", h.total_num_frames,
                                                     " frames, limit is ",
                                                     limits.max_video_decoded_frames));
  }

  const AVCodec* codec = avcodec_find_decoder(par->codec_id);
  if (codec == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("unsupported video codec ", avcodec_get_name(par->codec_id)));
  }
  h.codec = codec->name;
  AVCodecContext* cc = avcodec_alloc_context3(codec);
  if (cc == nullptr) return absl::ResourceExhaustedError("out of memory (AVCodecContext)");
  d->codec_.reset(cc);
  err = avcodec_parameters_to_context(cc, par);
  if (err < 0) return AvErrorToStatus(err, "invalid video codec parameters");
  cc->pkt_timebase = st->time_base;
  cc->thread_count = 1;
  cc->max_pixels = std::max<int64_t>(1, limits.max_video_frame_pixels);
  err = avcodec_open2(cc, codec, nullptr);
  if (err < 0) return AvErrorToStatus(err, "cannot open the video decoder");
  d->frame_.reset(av_frame_alloc());
  if (d->frame_ == nullptr) return absl::ResourceExhaustedError("out of memory (AVFrame)");
  return d;
}

absl::Status Demuxer::ReceiveFrames(
    const std::function<absl::StatusOr<bool>(int64_t, const AVFrame*)>& on_frame, bool* stop) {
  while (true) {
    const int err = avcodec_receive_frame(codec_.get(), frame_.get());
    if (err == AVERROR(EAGAIN) || err == AVERROR_EOF) return absl::OkStatus();
    if (err < 0) {
      return AvErrorToStatus(err, absl::StrCat("decoding video frame ", frames_out_));
    }
    const AVFrame* f = frame_.get();
    if ((f->flags & AV_FRAME_FLAG_CORRUPT) || f->decode_error_flags != 0) {
      av_frame_unref(frame_.get());
      return absl::InvalidArgumentError(
          absl::StrCat("video frame ", frames_out_, " is damaged (decoder reported errors)"));
    }
    if (f->width <= 0 || f->height <= 0) {
      av_frame_unref(frame_.get());
      return absl::InvalidArgumentError(absl::StrCat("video frame ", frames_out_, " is empty"));
    }
    if (static_cast<int64_t>(f->width) * f->height > limits_.max_video_frame_pixels) {
      const std::string msg =
          absl::StrCat("video frame ", f->width, "x", f->height, " exceeds ",
                       limits_.max_video_frame_pixels, " pixels");
      av_frame_unref(frame_.get());
      return absl::ResourceExhaustedError(msg);
    }
    if (frames_out_ == 0) {
      first_width_ = f->width;
      first_height_ = f->height;
    } else if (f->width != first_width_ || f->height != first_height_) {
      const std::string msg = absl::StrCat("video frame size changes from ", first_width_, "x",
                                           first_height_, " to ", f->width, "x", f->height,
                                           " at frame ", frames_out_);
      av_frame_unref(frame_.get());
      return absl::InvalidArgumentError(msg);
    }
    decoded_pixels_ += static_cast<int64_t>(f->width) * f->height;
    if (decoded_pixels_ > limits_.max_decoded_pixels_per_request) {
      av_frame_unref(frame_.get());
      return absl::ResourceExhaustedError(absl::StrCat(
          "decoding the video would go over the request's budget of ",
          limits_.max_decoded_pixels_per_request, " decoded pixels (", frames_out_, " frames of ",
          first_width_, "x", first_height_, " so far)"));
    }
    if (limits_.interrupt && (frames_out_ & 7) == 0) {
      if (absl::Status s = limits_.interrupt(); !s.ok()) {
        av_frame_unref(frame_.get());
        return s;
      }
    }
    if (frames_out_ >= limits_.max_video_decoded_frames) {
      av_frame_unref(frame_.get());
      return absl::ResourceExhaustedError(absl::StrCat(
          "video has more than ", limits_.max_video_decoded_frames, " decodable frames"));
    }
    absl::StatusOr<bool> keep_going = on_frame(frames_out_, f);
    av_frame_unref(frame_.get());
    ++frames_out_;
    if (!keep_going.ok()) return keep_going.status();
    if (!*keep_going) {
      *stop = true;
      return absl::OkStatus();
    }
  }
}

absl::Status Demuxer::DecodeAll(
    const std::function<absl::StatusOr<bool>(int64_t, const AVFrame*)>& on_frame) {
  std::unique_ptr<AVPacket, PacketDeleter> pkt(av_packet_alloc());
  if (pkt == nullptr) return absl::ResourceExhaustedError("out of memory (AVPacket)");
  bool stop = false;
  int64_t packet_no = 0;
  int err;
  while ((err = av_read_frame(fmt_.get(), pkt.get())) >= 0) {
    const bool corrupt = (pkt->flags & AV_PKT_FLAG_CORRUPT) != 0;
    const int sidx = pkt->stream_index;
    if (corrupt) {
      av_packet_unref(pkt.get());
      return absl::InvalidArgumentError(absl::StrCat(
          "video file is damaged or truncated: corrupt packet in stream ", sidx));
    }
    if (sidx == stream_index_) {
      int send = avcodec_send_packet(codec_.get(), pkt.get());
      if (send == AVERROR(EAGAIN)) {
        RETURN_IF_ERROR(ReceiveFrames(on_frame, &stop));
        if (!stop) send = avcodec_send_packet(codec_.get(), pkt.get());
      }
      av_packet_unref(pkt.get());
      if (stop) return absl::OkStatus();
      if (send < 0) {
        return AvErrorToStatus(send, absl::StrCat("decoding video packet ", packet_no));
      }
      ++packet_no;
      RETURN_IF_ERROR(ReceiveFrames(on_frame, &stop));
      if (stop) return absl::OkStatus();
    } else {
      av_packet_unref(pkt.get());
    }
  }
  if (err != AVERROR_EOF) return AvErrorToStatus(err, "reading the video container");
  if (fmt_->pb != nullptr && fmt_->pb->error < 0) {
    return AvErrorToStatus(fmt_->pb->error, "reading the video container");
  }
  // Flush the decoder (delayed frames).
  err = avcodec_send_packet(codec_.get(), nullptr);
  if (err < 0 && err != AVERROR_EOF) return AvErrorToStatus(err, "flushing the video decoder");
  return ReceiveFrames(on_frame, &stop);
}

// VideoFrame.to_ndarray(format="rgb24") in PyAV 14: an rgb24 frame is returned as is; any
// other format goes through sws_scale with SWS_BILINEAR into a 16-byte aligned buffer.
absl::Status FrameToRgb(const AVFrame* f, std::unique_ptr<SwsContext, SwsDeleter>* sws,
                        Image* out) {
  *out = MakeImage(f->height, f->width, PixelMode::kRGB);
  const size_t row_bytes = static_cast<size_t>(f->width) * 3;
  if (f->format == AV_PIX_FMT_RGB24) {
    for (int y = 0; y < f->height; ++y) {
      std::memcpy(out->row(y), f->data[0] + static_cast<ptrdiff_t>(y) * f->linesize[0], row_bytes);
    }
    return absl::OkStatus();
  }
  const auto src_fmt = static_cast<AVPixelFormat>(f->format);
  SwsContext* ctx = sws_getCachedContext(sws->release(), f->width, f->height, src_fmt, f->width,
                                         f->height, AV_PIX_FMT_RGB24, SWS_BILINEAR, nullptr,
                                         nullptr, nullptr);
  sws->reset(ctx);
  if (ctx == nullptr) {
    const char* name = av_get_pix_fmt_name(src_fmt);
    return absl::InvalidArgumentError(absl::StrCat("cannot convert pixel format ",
                                                   name ? name : "unknown", " to RGB"));
  }
  uint8_t* dst_data[4] = {nullptr};
  int dst_linesize[4] = {0};
  int err = av_image_alloc(dst_data, dst_linesize, f->width, f->height, AV_PIX_FMT_RGB24, 16);
  if (err < 0) return AvErrorToStatus(err, "allocating an RGB frame");
  const int rows = sws_scale(ctx, f->data, f->linesize, 0, f->height, dst_data, dst_linesize);
  if (rows != f->height) {
    av_freep(&dst_data[0]);
    return absl::InvalidArgumentError("RGB conversion of a video frame failed");
  }
  for (int y = 0; y < f->height; ++y) {
    std::memcpy(out->row(y), dst_data[0] + static_cast<ptrdiff_t>(y) * dst_linesize[0],
                row_bytes);
  }
  av_freep(&dst_data[0]);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<VideoMetadata> ProbeVideo(absl::string_view encoded, const MediaLimits& limits) {
  ASSIGN_OR_RETURN(std::unique_ptr<Demuxer> d, Demuxer::Open(encoded, limits));
  return d->header();
}

absl::StatusOr<VideoDecodeResult> DecodeVideo(absl::string_view encoded, const MediaLimits& limits,
                                              const FrameSelector& select,
                                              const FrameConsumer& consume) {
  VideoDecodeResult result;
  // Pass 1: count the decodable frames without converting them. When the header has a frame
  // count, the selection is predicted from it (the usual case: decoded == header count) and
  // references to those decoded frames are kept, so that pass 2 is not needed when the
  // prediction holds.
  double container_duration = -1.0;
  std::vector<std::pair<int64_t, std::unique_ptr<AVFrame, FrameDeleter>>> kept;
  {
    ASSIGN_OR_RETURN(std::unique_ptr<Demuxer> d, Demuxer::Open(encoded, limits));
    result.metadata = d->header();
    container_duration = d->container_duration();
    std::vector<int64_t> predicted;
    const VideoMetadata& h = result.metadata;
    if (h.total_num_frames > 0 && h.fps > 0) {
      absl::StatusOr<std::vector<int64_t>> guess = select(h, h.total_num_frames);
      const double frame_bytes = 4.0 * std::max(h.width, 1) * std::max(h.height, 1);
      if (guess.ok() && frame_bytes * static_cast<double>(guess->size()) <= kSpeculativeBytes) {
        predicted = *std::move(guess);
      }
    }
    size_t next_predicted = 0;
    int64_t count = 0;
    RETURN_IF_ERROR(d->DecodeAll([&](int64_t index, const AVFrame* f) -> absl::StatusOr<bool> {
      ++count;
      while (next_predicted < predicted.size() && predicted[next_predicted] < index) {
        ++next_predicted;
      }
      if (next_predicted < predicted.size() && predicted[next_predicted] == index) {
        std::unique_ptr<AVFrame, FrameDeleter> ref(av_frame_clone(f));
        if (ref == nullptr) return absl::ResourceExhaustedError("out of memory (frame ref)");
        kept.emplace_back(index, std::move(ref));
      }
      return true;
    }));
    result.decoded_frame_count = count;
    result.decoded_pixels = d->decoded_pixels();
  }
  if (result.decoded_frame_count == 0) {
    return absl::InvalidArgumentError("the video stream has no decodable frame");
  }

  // Fallbacks for headers without a frame count or frame rate.
  VideoMetadata& m = result.metadata;
  if (m.total_num_frames <= 0) {
    m.total_num_frames = result.decoded_frame_count;
    m.total_from_header = false;
  }
  if (m.fps <= 0) {
    if (container_duration > 0) {
      m.fps = static_cast<double>(result.decoded_frame_count) / container_duration;
      m.fps_from_header = false;
    } else {
      return absl::InvalidArgumentError("the video has no frame rate and no duration");
    }
  }
  m.duration = m.fps_num > 0 ? RationalDuration(m.total_num_frames, m.fps_num, m.fps_den)
                             : static_cast<double>(m.total_num_frames) / m.fps;
  if (!std::isfinite(m.duration) || m.duration > limits.max_video_duration_s) {
    return absl::ResourceExhaustedError(absl::StrCat("video duration ", m.duration,
                                                     " s exceeds the limit of ",
                                                     limits.max_video_duration_s, " s"));
  }

  ASSIGN_OR_RETURN(result.frame_indices, select(m, result.decoded_frame_count));
  const std::vector<int64_t>& wanted = result.frame_indices;
  for (size_t i = 0; i < wanted.size(); ++i) {
    if (wanted[i] < 0 || wanted[i] >= result.decoded_frame_count ||
        (i > 0 && wanted[i] <= wanted[i - 1])) {
      return absl::InternalError("frame selector returned invalid indices");
    }
  }
  if (wanted.empty()) return result;

  // Prediction held: convert the kept frames.
  bool all_kept = true;
  {
    size_t k = 0;
    for (int64_t index : wanted) {
      while (k < kept.size() && kept[k].first < index) ++k;
      if (k == kept.size() || kept[k].first != index) {
        all_kept = false;
        break;
      }
    }
  }
  std::unique_ptr<SwsContext, SwsDeleter> sws;
  Image rgb;
  if (all_kept) {
    size_t k = 0;
    for (int64_t index : wanted) {
      while (kept[k].first < index) kept[k++].second.reset();
      RETURN_IF_ERROR(
          Annotate(FrameToRgb(kept[k].second.get(), &sws, &rgb), absl::StrCat("video frame ", index)));
      kept[k++].second.reset();
      RETURN_IF_ERROR(consume(index, rgb));
    }
    return result;
  }
  kept.clear();

  // Pass 2: decode again, convert the selected frames, stop after the last one. It draws on
  // what pass 1 left of the decoded-pixel budget.
  MediaLimits pass2 = limits;
  pass2.max_decoded_pixels_per_request -= result.decoded_pixels;
  ASSIGN_OR_RETURN(std::unique_ptr<Demuxer> d, Demuxer::Open(encoded, pass2));
  size_t next = 0;
  RETURN_IF_ERROR(d->DecodeAll([&](int64_t index, const AVFrame* f) -> absl::StatusOr<bool> {
    if (index != wanted[next]) return true;
    RETURN_IF_ERROR(Annotate(FrameToRgb(f, &sws, &rgb), absl::StrCat("video frame ", index)));
    RETURN_IF_ERROR(consume(index, rgb));
    ++next;
    return next < wanted.size();
  }));
  if (next != wanted.size()) {
    return absl::InternalError(absl::StrCat("second decoding pass produced fewer frames than the ",
                                            result.decoded_frame_count, " counted"));
  }
  result.decoded_pixels += d->decoded_pixels();
  return result;
}

absl::StatusOr<DecodedVideo> DecodeVideoFrames(absl::string_view encoded,
                                               const MediaLimits& limits,
                                               const FrameSelector& select) {
  DecodedVideo out;
  ASSIGN_OR_RETURN(out.info, DecodeVideo(encoded, limits, select,
                                         [&out](int64_t, const Image& rgb) -> absl::Status {
                                           out.frames.push_back(rgb);
                                           return absl::OkStatus();
                                         }));
  return out;
}

}  // namespace smolserve::preprocess
