// Prompt text for a SmolVLM2 video (reference §2.6): the intro, per-frame timestamps and
// image blocks, and the Python formatting helpers they rely on.
#ifndef SMOLSERVE_SERVICES_PREPROCESS_CORE_VIDEO_VIDEO_PROMPT_H_
#define SMOLSERVE_SERVICES_PREPROCESS_CORE_VIDEO_VIDEO_PROMPT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "services/preprocess/core/video/video_sampler.h"

namespace smolserve::preprocess {

// English cardinal exactly as Python num2words(n) (lang "en"): "zero", "eleven",
// "twenty-one", "sixty-four", "one hundred", "one hundred and one",
// "one thousand, one hundred", "minus five".
std::string NumberToWords(int64_t n);

// Python str(datetime.timedelta(seconds=n)): "0:00:07", "1:02:03", "1 day, 0:00:00",
// "2 days, 3:04:05", "-1 day, 23:59:59".
std::string FormatDuration(int64_t seconds);

// "MM:SS", each zero-padded to at least two digits (Python f"{m:02d}:{s:02d}").
std::string FormatTimestamp(int64_t minutes, int64_t seconds);


// The text that replaces one <video> placeholder:
//   "You are provided the following series of {NumberToWords(frame_count)} frames from a
//    {FormatDuration(duration_int)} [H:MM:SS] video.\n"
//   + for each timestamp: "\nFrame from MM:SS:" + image_block
//   + "\n\n"
// `frame_count` is the batch-padded frame count F (pixel_values.shape[1]); it is only used in
// the intro. INVALID_ARGUMENT if frame_count < timestamps.size() or timestamps is empty.
absl::StatusOr<std::string> BuildVideoPromptText(int64_t frame_count, int64_t duration_int,
                                                 const std::vector<FrameTimestamp>& timestamps,
                                                 absl::string_view image_block);

}  // namespace smolserve::preprocess

#endif  // SMOLSERVE_SERVICES_PREPROCESS_CORE_VIDEO_VIDEO_PROMPT_H_
