// Explicit, configurable limits on request media, checked before expensive work.
#ifndef SMOLSERVE_SERVICES_PREPROCESS_CORE_LIMITS_H_
#define SMOLSERVE_SERVICES_PREPROCESS_CORE_LIMITS_H_

#include <cstdint>

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
};

}  // namespace smolserve::preprocess

#endif  // SMOLSERVE_SERVICES_PREPROCESS_CORE_LIMITS_H_
