// Frame sampling for SmolVLM2 video input, bit-compatible with transformers'
// SmolVLMVideoProcessor.sample_frames (reference §2.3) and the timestamps used in the prompt.
#ifndef SMOLSERVE_SERVICES_PREPROCESS_CORE_VIDEO_VIDEO_SAMPLER_H_
#define SMOLSERVE_SERVICES_PREPROCESS_CORE_VIDEO_VIDEO_SAMPLER_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"

namespace smolserve::preprocess {

struct SamplingOptions {
  // Target frames per second (video_sampling.fps).
  double fps = 1.0;
  // Most frames to sample (video_sampling.max_frames).
  int max_frames = 64;
  // When set, replaces max_frames as the maximum (the processor's `num_frames` argument).
  std::optional<int> num_frames;
  // Seconds skipped at both ends of long videos. 0 on the transformers 4.54 chat-template path
  // the fixtures were produced with (the method's own default is 1).
  double skip_secs = 0.0;

  int effective_max_frames() const { return num_frames.has_value() ? *num_frames : max_frames; }
};

// Returns sorted, unique frame indices into the `num_decoded_frames` decoded frames.
//   estimated = round_half_even(fps * duration); desired = max(1, min(estimated, max));
//   window [0, N-1], narrowed by skip_secs * video_fps at both ends only when
//   duration - 2 * skip_secs > max * fps; numpy.linspace(start, end, desired) (float64, last
//   element exactly `end`) truncated to int; numpy.unique.
// `video_fps` and `duration` are the container-header values (VideoMetadata), while the
// indices address decoded frames, as in the reference.
// INVALID_ARGUMENT for num_decoded_frames < 1, non-finite inputs, fps <= 0 or max < 1.
absl::StatusOr<std::vector<int64_t>> SampleFrameIndices(int64_t num_decoded_frames,
                                                        double video_fps, double duration,
                                                        const SamplingOptions& options);

// numpy.linspace(start, stop, num) in float64 (endpoint=True), before the int cast.
std::vector<double> NumpyLinspace(double start, double stop, int64_t num);

// Python's round() of a float: round half to even. Requires a finite value.
double PythonRound(double x);

// [minutes, seconds] of a frame for the prompt: t = index / video_fps, int(t // 60),
// int(t % 60) with Python float floor-division / modulo semantics.
struct FrameTimestamp {
  int64_t minutes = 0;
  int64_t seconds = 0;
  bool operator==(const FrameTimestamp& o) const {
    return minutes == o.minutes && seconds == o.seconds;
  }
};
absl::StatusOr<FrameTimestamp> TimestampForFrame(int64_t frame_index, double video_fps);

}  // namespace smolserve::preprocess

#endif  // SMOLSERVE_SERVICES_PREPROCESS_CORE_VIDEO_VIDEO_SAMPLER_H_
