// Video decoding from memory with FFmpeg, reproducing what transformers 4.54 gets from PyAV:
// container metadata as PyAV reports it, frames in decoder output order, RGB conversion as
// `VideoFrame.to_ndarray(format="rgb24")` (libswscale, SWS_BILINEAR, no colourspace/range
// override, i.e. swscale's defaults: BT.601 matrix, range from the pixel format).
//
// No more than one full-resolution RGB frame is alive at a time, and only the selected frames
// are converted. Pass 1 decodes every frame without converting it, to count the decodable
// frames (the reference samples indices into the decoded frames, whose number can differ from
// the header's nb_frames, e.g. 68 decodable of 444 in tests/golden/media/tree.avi). While
// decoding, it keeps references to the decoded (YUV) frames at the indices the selector picks
// for the header's frame count (a few frames, at most 256 MiB, else nothing is kept). If the
// decoded count gives the same selection, those frames are converted and no second pass runs;
// otherwise pass 2 re-decodes from the same in-memory bytes, converts the selected frames and
// stops after the last one. Holding every decoded frame instead would cost up to
// max_video_decoded_frames frames of memory; always decoding twice costs a second decode of
// the whole video (about 0.1 s for the 270-frame 720x528 fixture).
//
// Damaged input is an error, never a partial result: a packet the demuxer flags as corrupt
// (e.g. cut short by truncation, in any stream), a demuxer read error, a decoder error or a
// frame the decoder flags as corrupt gives INVALID_ARGUMENT. A file cut exactly on a packet
// boundary is indistinguishable from a shorter valid file and decodes as such.
#ifndef SMOLSERVE_SERVICES_PREPROCESS_CORE_VIDEO_VIDEO_DECODE_H_
#define SMOLSERVE_SERVICES_PREPROCESS_CORE_VIDEO_VIDEO_DECODE_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "services/preprocess/core/image/image.h"
#include "services/preprocess/core/limits.h"

namespace smolserve::preprocess {

// Container metadata with PyAV/transformers semantics (VideoMetadata in video_utils.py).
struct VideoMetadata {
  // AVStream.nb_frames (PyAV `stream.frames`); the decoded frame count when the header has none.
  int64_t total_num_frames = 0;
  // av_q2d(AVStream.avg_frame_rate) (PyAV `stream.average_rate`); falls back to r_frame_rate,
  // then to decoded frames / container duration.
  double fps = 0.0;
  // The frame rate as the rational FFmpeg reports (0/0 when fps is derived).
  int64_t fps_num = 0;
  int64_t fps_den = 0;
  // total_num_frames / fps. PyAV's average_rate is a Fraction, so transformers'
  // total / average_rate is the exact rational total * den / num rounded once to float64
  // (444 frames at 1000000/66667 fps give 29.600148, not 444 / 14.999925000374999).
  double duration = 0.0;
  // Frame size from the stream header.
  int width = 0;
  int height = 0;
  std::string container;  // demuxer name, e.g. "avi"
  std::string codec;      // decoder name, e.g. "mpeg4"
  bool total_from_header = true;  // false: total_num_frames is the decoded count
  bool fps_from_header = true;    // false: fps derived from the container duration
};

// Chooses the decoded-frame indices to convert (sorted, unique, each in [0, decoded_count)).
// Must be a pure function of its arguments: DecodeVideo may first call it with the header's
// frame count as decoded_frame_count, to predict the selection, and then with the real count.
using FrameSelector = std::function<absl::StatusOr<std::vector<int64_t>>(
    const VideoMetadata& metadata, int64_t decoded_frame_count)>;

// Receives each selected frame as RGB (PixelMode::kRGB), in index order. A non-OK status
// aborts decoding and is returned.
using FrameConsumer = std::function<absl::Status(int64_t frame_index, const Image& rgb)>;

struct VideoDecodeResult {
  VideoMetadata metadata;
  int64_t decoded_frame_count = 0;
  // width * height of every frame decoded, over both passes (what counts against
  // limits.max_decoded_pixels_per_request).
  int64_t decoded_pixels = 0;
  std::vector<int64_t> frame_indices;  // what the selector returned
};

// Opens the container and reads the header only (no frame is decoded). Checks
// limits.max_encoded_bytes, max_video_frame_pixels, max_video_duration_s and
// max_video_decoded_frames against the header (RESOURCE_EXHAUSTED). metadata.total_num_frames
// is 0 and duration is the container's when the header has no frame count.
absl::StatusOr<VideoMetadata> ProbeVideo(absl::string_view encoded, const MediaLimits& limits);

// Decodes the first video stream: counts the decodable frames, asks `select` which to keep,
// converts those to RGB and passes them to `consume`. Errors: INVALID_ARGUMENT for bytes that
// are not a video, have no decodable video frame, or are damaged; RESOURCE_EXHAUSTED for a
// limit (checked from the header before decoding, and again while decoding, the decoded-pixel
// budget included); whatever limits.interrupt returns (checked every few frames).
absl::StatusOr<VideoDecodeResult> DecodeVideo(absl::string_view encoded, const MediaLimits& limits,
                                              const FrameSelector& select,
                                              const FrameConsumer& consume);

// Convenience: returns the selected frames in memory.
struct DecodedVideo {
  VideoDecodeResult info;
  std::vector<Image> frames;  // one per info.frame_indices entry
};
absl::StatusOr<DecodedVideo> DecodeVideoFrames(absl::string_view encoded,
                                               const MediaLimits& limits,
                                               const FrameSelector& select);

}  // namespace smolserve::preprocess

#endif  // SMOLSERVE_SERVICES_PREPROCESS_CORE_VIDEO_VIDEO_DECODE_H_
