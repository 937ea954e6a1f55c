#include "services/preprocess/core/video/video_processor.h"

#include <algorithm>
#include <cmath>
#include <memory>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status/status_macros.h"
#include "services/preprocess/core/video/antialias_resize.h"

namespace smolserve::preprocess {
namespace {

constexpr int kMaxImageSize = 4096;  // MAX_IMAGE_SIZE in video_processing_smolvlm.py

}  // namespace

std::pair<int, int> VideoResizeOutputSize(int height, int width, int longest_edge) {
  const int side = std::min(kMaxImageSize, longest_edge);
  const double aspect_ratio = static_cast<double>(width) / height;
  int h = height;
  int w = width;
  if (width >= height) {
    w = side;
    h = static_cast<int>(static_cast<double>(w) / aspect_ratio);
    if (h % 2 != 0) h += 1;
  } else {
    h = side;
    w = static_cast<int>(static_cast<double>(h) * aspect_ratio);
    if (w % 2 != 0) w += 1;
  }
  return {std::max(h, 1), std::max(w, 1)};
}

namespace {

// ProcessVideoFrame with buffers kept across the frames of a video.
class FrameProcessor {
 public:
  FrameProcessor(int longest_edge, int tile) : longest_edge_(longest_edge), tile_(tile) {}

  absl::StatusOr<Image> Process(const Image& frame) {
    if (longest_edge_ < 1 || tile_ < 1) {
      return absl::InvalidArgumentError(absl::StrCat("longest_edge (", longest_edge_,
                                                     ") and max_image_size (", tile_,
                                                     ") must be >= 1"));
    }
    if (frame.height < 1 || frame.width < 1 ||
        frame.pixels.size() != size_t(frame.height) * frame.width * frame.channels()) {
      return absl::InvalidArgumentError("empty or malformed video frame");
    }
    // convert_to_rgb.
    const Image* src = &frame;
    switch (frame.mode) {
      case PixelMode::kRGB:
      case PixelMode::kP:
        break;
      case PixelMode::kL: {
        rgb_ = MakeImage(frame.height, frame.width, PixelMode::kRGB);
        for (size_t i = 0; i < frame.pixels.size(); ++i) {
          rgb_.pixels[3 * i] = rgb_.pixels[3 * i + 1] = rgb_.pixels[3 * i + 2] = frame.pixels[i];
        }
        src = &rgb_;
        break;
      }
      case PixelMode::kRGBA: {
        rgb_ = MakeImage(frame.height, frame.width, PixelMode::kRGB);
        const size_t n = static_cast<size_t>(frame.height) * frame.width;
        for (size_t i = 0; i < n; ++i) {
          if (frame.pixels[4 * i + 3] != 255) {
            return absl::UnimplementedError(
                "video frames with transparency are not supported (the reference composites "
                "them in float)");
          }
          for (int c = 0; c < 3; ++c) rgb_.pixels[3 * i + c] = frame.pixels[4 * i + c];
        }
        src = &rgb_;
        break;
      }
    }
    const auto [h1, w1] = VideoResizeOutputSize(src->height, src->width, longest_edge_);
    const size_t mid_bytes = size_t(h1) * w1 * 3;
    if (mid_bytes > mid_size_) {
      mid_.reset(new uint8_t[mid_bytes]);  // fully written by the first resize
      mid_size_ = mid_bytes;
    }
    RETURN_IF_ERROR(resizer_.Resize(src->pixels.data(), src->height, src->width, 3, h1, w1,
                                    mid_.get()));
    Image out = MakeImage(tile_, tile_, PixelMode::kRGB);
    RETURN_IF_ERROR(resizer_.Resize(mid_.get(), h1, w1, 3, tile_, tile_, out.pixels.data()));
    return out;
  }

 private:
  int longest_edge_;
  int tile_;
  BicubicAntialiasResizer resizer_;
  Image rgb_;
  std::unique_ptr<uint8_t[]> mid_;
  size_t mid_size_ = 0;
};

}  // namespace

absl::StatusOr<Image> ProcessVideoFrame(const Image& frame, int longest_edge, int tile) {
  FrameProcessor processor(longest_edge, tile);
  return processor.Process(frame);
}

absl::StatusOr<ProcessedVideo> ProcessVideo(absl::string_view encoded, const VideoOptions& options,
                                            const MediaLimits& limits) {
  const int requested = options.sampling.effective_max_frames();
  if (requested > limits.max_video_sampled_frames) {
    return absl::ResourceExhaustedError(absl::StrCat("requested ", requested,
                                                     " frames per video, limit is ",
                                                     limits.max_video_sampled_frames));
  }
  if (options.longest_edge < 1 || options.max_image_size < 1 ||
      options.max_image_size > kMaxImageSize) {
    return absl::InvalidArgumentError(absl::StrCat("invalid frame sizes: longest_edge ",
                                                   options.longest_edge, ", max_image_size ",
                                                   options.max_image_size));
  }
  ProcessedVideo out;
  FrameSelector select = [&options](const VideoMetadata& m,
                                    int64_t decoded) -> absl::StatusOr<std::vector<int64_t>> {
    return SampleFrameIndices(decoded, m.fps, m.duration, options.sampling);
  };
  FrameProcessor processor(options.longest_edge, options.max_image_size);
  FrameConsumer consume = [&](int64_t, const Image& rgb) -> absl::Status {
    ASSIGN_OR_RETURN(Image frame, processor.Process(rgb));
    out.frames.push_back(std::move(frame));
    return absl::OkStatus();
  };
  ASSIGN_OR_RETURN(VideoDecodeResult decoded, DecodeVideo(encoded, limits, select, consume));
  out.metadata = decoded.metadata;
  out.decoded_frame_count = decoded.decoded_frame_count;
  out.decoded_pixels = decoded.decoded_pixels;
  out.sampled_frame_indices = std::move(decoded.frame_indices);
  out.duration_int = static_cast<int64_t>(std::trunc(out.metadata.duration));
  out.timestamps.reserve(out.sampled_frame_indices.size());
  for (int64_t index : out.sampled_frame_indices) {
    ASSIGN_OR_RETURN(FrameTimestamp ts, TimestampForFrame(index, out.metadata.fps));
    out.timestamps.push_back(ts);
  }
  return out;
}

void NormalizeVideoFrames(const ProcessedVideo& video, const NormalizeParams& params, float* out) {
  for (size_t i = 0; i < video.frames.size(); ++i) {
    const Image& f = video.frames[i];
    NormalizeToCHW(f, NormalizeFormula::kVideo, params,
                   out + i * size_t{3} * f.height * f.width, f.height, f.width);
  }
}

}  // namespace smolserve::preprocess
