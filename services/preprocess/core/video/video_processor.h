// SmolVLM2 video preprocessing (reference §2): decode, sample frames, resize every sampled
// frame to T x T as transformers' SmolVLMVideoProcessor does, and the metadata the prompt
// needs (timestamps, duration).
#ifndef SMOLSERVE_SERVICES_PREPROCESS_CORE_VIDEO_VIDEO_PROCESSOR_H_
#define SMOLSERVE_SERVICES_PREPROCESS_CORE_VIDEO_VIDEO_PROCESSOR_H_

#include <cstdint>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "services/preprocess/core/image/image.h"
#include "services/preprocess/core/image/normalize.h"
#include "services/preprocess/core/limits.h"
#include "services/preprocess/core/video/video_decode.h"
#include "services/preprocess/core/video/video_sampler.h"

namespace smolserve::preprocess {

struct VideoOptions {
  SamplingOptions sampling;
  // size.longest_edge of the processor config (2048 for 256M/500M, 1536 for 2.2B): frames are
  // first resized so that their longest edge has this length (even upscaling).
  int longest_edge = 2048;
  // max_image_size.longest_edge (T): every frame ends as a T x T square.
  int max_image_size = 512;
};

struct ProcessedVideo {
  VideoMetadata metadata;              // header metadata (after fallbacks)
  int64_t decoded_frame_count = 0;     // frames the decoder produced
  int64_t decoded_pixels = 0;          // width * height of every frame decoded (both passes)
  std::vector<int64_t> sampled_frame_indices;  // into the decoded frames
  std::vector<FrameTimestamp> timestamps;      // one per sampled frame
  int64_t duration_int = 0;            // int(metadata.duration)
  std::vector<Image> frames;           // RGB, max_image_size x max_image_size, uint8
};

// Output size of the first resize (the video variant of step A): the longest side becomes
// min(4096, longest_edge), the other int(...)-truncated from the float64 aspect ratio and
// bumped to the next even number if odd; both at least 1. Returns {height, width}.
std::pair<int, int> VideoResizeOutputSize(int height, int width, int longest_edge);

// Per-frame processing before normalisation: convert_to_rgb, resize to the longest edge,
// resize to tile x tile, both with torch's uint8 antialiased bicubic (antialias_resize.h).
// kL is replicated to RGB; kRGBA with any alpha < 255 is UNIMPLEMENTED (the reference
// composites it in float, which video decoding never produces).
absl::StatusOr<Image> ProcessVideoFrame(const Image& frame, int longest_edge, int tile);

// Decodes `encoded`, samples frames (SampleFrameIndices with header fps/duration and the
// decoded frame count) and processes each sampled frame as it is decoded.
// Errors: INVALID_ARGUMENT for bad or damaged input and bad options, RESOURCE_EXHAUSTED for
// limits (including a requested frame count above limits.max_video_sampled_frames).
absl::StatusOr<ProcessedVideo> ProcessVideo(absl::string_view encoded, const VideoOptions& options,
                                            const MediaLimits& limits);

// pixel_values of one video, [frames.size(), 3, T, T] float32, formula kVideo
// ((float(u8) - 127.5f) / 127.5f for mean = std = 0.5). `out` must hold frames * 3 * T * T.
void NormalizeVideoFrames(const ProcessedVideo& video, const NormalizeParams& params, float* out);

}  // namespace smolserve::preprocess

#endif  // SMOLSERVE_SERVICES_PREPROCESS_CORE_VIDEO_VIDEO_PROCESSOR_H_
