// Video bytes as a client sends them -> the preprocessor's video path: ProcessVideo (DecodeVideo
// from memory through the custom AVIO reader, frame sampling, per-frame RGB conversion and
// resizing) with small output sizes, and ProbeVideo. FFmpeg itself is not instrumented for
// coverage; the AVIO callbacks, the two-pass logic and the frame handling are.
// Invariants: refusals are client errors; sampled indices are sorted, unique and below the
// decoded count, one processed frame and one timestamp per index, every frame T x T RGB.
#include <cstddef>
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "services/preprocess/core/video/video_decode.h"
#include "services/preprocess/core/video/video_processor.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" {
#include <libavutil/log.h>
}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  av_log_set_level(AV_LOG_QUIET);  // FFmpeg's warnings about damaged input are expected here
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace smolserve::preprocess;
  const absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  MediaLimits limits;  // the service's defaults, with smaller frames and counts for speed
  limits.max_video_frame_pixels = 1 << 20;
  limits.max_video_decoded_frames = 2000;
  absl::StatusOr<VideoMetadata> probed = ProbeVideo(bytes, limits);
  if (!probed.ok()) {
    FUZZ_CHECK(smolserve::fuzz::IsClientError(probed.status()), probed.status().ToString());
  }
  VideoOptions options;
  options.sampling.max_frames = 4;
  options.longest_edge = 32;
  options.max_image_size = 16;
  absl::StatusOr<ProcessedVideo> video = ProcessVideo(bytes, options, limits);
  if (!video.ok()) {
    FUZZ_CHECK(smolserve::fuzz::IsClientError(video.status()), video.status().ToString());
    return 0;
  }
  const auto& idx = video->sampled_frame_indices;
  FUZZ_CHECK(!idx.empty() && idx.size() <= 4, absl::StrCat(idx.size(), " sampled frames"));
  for (size_t i = 0; i < idx.size(); ++i) {
    FUZZ_CHECK(idx[i] >= 0 && idx[i] < video->decoded_frame_count, "index range");
    FUZZ_CHECK(i == 0 || idx[i] > idx[i - 1], "indices sorted and unique");
  }
  FUZZ_CHECK(video->frames.size() == idx.size() && video->timestamps.size() == idx.size(),
             "one frame and one timestamp per index");
  for (const Image& f : video->frames) {
    FUZZ_CHECK(f.height == 16 && f.width == 16 && f.mode == PixelMode::kRGB &&
                   f.pixels.size() == 16u * 16u * 3u,
               "processed frame geometry");
  }
  FUZZ_CHECK(video->metadata.fps > 0 && video->metadata.total_num_frames > 0, "metadata");
  return 0;
}
