#include "services/preprocess/core/video/video_sampler.h"

#include <algorithm>
#include <cfenv>
#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace smolserve::preprocess {
namespace {

// Largest double that converts to int64 without overflow in the casts below.
constexpr double kInt64Bound = 9.2e18;

// Python int(x) for a finite float (truncation toward zero).
int64_t PyInt(double x) { return static_cast<int64_t>(std::trunc(x)); }

}  // namespace

double PythonRound(double x) {
  // nearbyint honours the current rounding mode; force round-half-even like Python.
  const int saved = std::fegetround();
  std::fesetround(FE_TONEAREST);
  const double r = std::nearbyint(x);
  std::fesetround(saved);
  return r;
}

std::vector<double> NumpyLinspace(double start, double stop, int64_t num) {
  std::vector<double> y;
  if (num <= 0) return y;
  y.resize(static_cast<size_t>(num));
  const int64_t div = num - 1;
  const double delta = stop - start;
  if (div > 0) {
    const double step = delta / static_cast<double>(div);
    if (step == 0) {
      for (int64_t i = 0; i < num; ++i) {
        y[i] = (static_cast<double>(i) / static_cast<double>(div)) * delta + start;
      }
    } else {
      for (int64_t i = 0; i < num; ++i) y[i] = static_cast<double>(i) * step + start;
    }
    y[num - 1] = stop;
  } else {
    // One sample: numpy computes i * delta with i = 0.
    y[0] = 0.0 * delta + start;
  }
  return y;
}

absl::StatusOr<std::vector<int64_t>> SampleFrameIndices(int64_t num_decoded_frames,
                                                        double video_fps, double duration,
                                                        const SamplingOptions& options) {
  if (num_decoded_frames < 1) {
    return absl::InvalidArgumentError("video has no decoded frames to sample from");
  }
  const int max_frames = options.effective_max_frames();
  if (max_frames < 1) {
    return absl::InvalidArgumentError(absl::StrCat("num_frames/max_frames must be >= 1, got ",
                                                   max_frames));
  }
  if (!std::isfinite(options.fps) || options.fps <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("sampling fps must be > 0, got ", options.fps));
  }
  if (!std::isfinite(options.skip_secs) || options.skip_secs < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("skip_secs must be finite and >= 0, got ", options.skip_secs));
  }
  if (!std::isfinite(video_fps) || !std::isfinite(duration)) {
    return absl::InvalidArgumentError("video fps/duration must be finite");
  }

  // Steps 1-2: estimated = int(round(fps * duration)); desired = min(estimated, max) >= 1.
  const double estimated = PythonRound(options.fps * duration);
  int64_t desired;
  if (!std::isfinite(estimated) || estimated >= static_cast<double>(max_frames)) {
    desired = max_frames;
  } else {
    desired = static_cast<int64_t>(estimated);  // exact: |estimated| < max_frames
  }
  if (desired < 1) desired = 1;

  // Steps 3-4: the window.
  const int64_t total = num_decoded_frames;
  int64_t start = 0;
  int64_t end = total - 1;
  if (options.skip_secs > 0 &&
      (duration - 2 * options.skip_secs) > static_cast<double>(max_frames) * options.fps) {
    const double s = options.skip_secs * video_fps;
    const double e = static_cast<double>(total) - options.skip_secs * video_fps;
    if (std::fabs(s) < kInt64Bound && std::fabs(e) < kInt64Bound) {
      start = PyInt(s);
      end = PyInt(e);
    }
  }
  start = std::max<int64_t>(0, start);
  end = std::min(end, total - 1);
  if (start >= end) {
    start = 0;
    end = total - 1;
  }

  // Step 5-6: linspace, int cast, unique.
  const std::vector<double> y =
      NumpyLinspace(static_cast<double>(start), static_cast<double>(end), desired);
  std::vector<int64_t> indices;
  indices.reserve(y.size());
  // numpy >= 2 floors before the integer cast; all values are >= 0 here, so this equals
  // truncation.
  for (double v : y) indices.push_back(static_cast<int64_t>(std::floor(v)));
  std::sort(indices.begin(), indices.end());
  indices.erase(std::unique(indices.begin(), indices.end()), indices.end());
  return indices;
}

absl::StatusOr<FrameTimestamp> TimestampForFrame(int64_t frame_index, double video_fps) {
  if (!std::isfinite(video_fps) || video_fps <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot compute a timestamp with video fps ", video_fps));
  }
  if (frame_index < 0) {
    return absl::InvalidArgumentError(absl::StrCat("negative frame index ", frame_index));
  }
  const double t = static_cast<double>(frame_index) / video_fps;
  if (!std::isfinite(t) || t >= kInt64Bound) {
    return absl::InvalidArgumentError("frame timestamp out of range");
  }
  // CPython float_divmod(t, 60.0).
  const double wx = 60.0;
  double mod = std::fmod(t, wx);
  double div = (t - mod) / wx;
  if (mod != 0) {
    if ((wx < 0) != (mod < 0)) {
      mod += wx;
      div -= 1.0;
    }
  } else {
    mod = std::copysign(0.0, wx);
  }
  double floordiv;
  if (div != 0) {
    floordiv = std::floor(div);
    if (div - floordiv > 0.5) floordiv += 1.0;
  } else {
    floordiv = std::copysign(0.0, t / wx);
  }
  FrameTimestamp ts;
  ts.minutes = PyInt(floordiv);
  ts.seconds = PyInt(mod);
  return ts;
}

}  // namespace smolserve::preprocess
