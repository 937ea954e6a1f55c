// Explicit, configurable limits on request media, checked before expensive work.
#ifndef SMOLSERVE_SERVICES_PREPROCESS_CORE_LIMITS_H_
#define SMOLSERVE_SERVICES_PREPROCESS_CORE_LIMITS_H_

#include <cstdint>
#include <functional>

#include "absl/status/status.h"

namespace smolserve::preprocess {

struct MediaLimits {
  // Largest encoded media item (image or video file) accepted, in bytes.
  int64_t max_encoded_bytes = 64ll << 20;
  // Largest decoded image (width * height), checked from the header before decoding.
  int64_t max_image_pixels = 40'000'000;
  // Largest single image side, in pixels.
  int64_t max_image_side = 16384;
  // Images per request (all conversations of a batch together).
  int max_images_per_request = 16;
  // Videos per request.
  int max_videos_per_request = 4;
  // Longest accepted video duration, seconds (from the container header).
  double max_video_duration_s = 600.0;
  // Most frames decoded from one video (the sampler picks from these).
  int64_t max_video_decoded_frames = 20000;
  // Largest video frame (width * height).
  int64_t max_video_frame_pixels = 8'294'400;  // 3840 x 2160
  // Frames sampled from one video (caps the request's num_frames / max_frames).
  int max_video_sampled_frames = 64;
  // Prompt length after placeholder expansion, tokens per conversation.
  int max_prompt_tokens = 8192;
  // Pixels decoded for one request, every image and every decoded video frame together
  // (width * height each; video decoding counts every frame it decodes, sampled or not):
  // bounds the CPU a request can cost. Checked from headers and while decoding.
  int64_t max_decoded_pixels_per_request = 2'000'000'000;
  // Tiles and frames of one request (bounds the pixel tensors it allocates).
  int max_tiles_per_request = 256;
  // Caps on what a request may ask of the processor: the tile side (max_image_size; 0: the
  // model's own) and the resize target (size.longest_edge).
  int max_tile_side = 0;
  int max_longest_edge = 4096;
  double max_video_fps = 30;

  // Per request, set by the preprocessor on its own copy: checked inside the decode loops;
  // a non-OK status (the request's deadline passed, its client went away) stops decoding.
  std::function<absl::Status()> interrupt;
};

}  // namespace smolserve::preprocess

#endif  // SMOLSERVE_SERVICES_PREPROCESS_CORE_LIMITS_H_
