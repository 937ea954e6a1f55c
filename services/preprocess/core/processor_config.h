// The model folder's processor settings (preprocessor_config.json + processor_config.json).
#ifndef SMOLSERVE_SERVICES_PREPROCESS_CORE_PROCESSOR_CONFIG_H_
#define SMOLSERVE_SERVICES_PREPROCESS_CORE_PROCESSOR_CONFIG_H_

#include <array>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace smolserve::preprocess {

struct ProcessorConfig {
  int image_seq_len = 64;          // <image> tokens per tile (processor_config.json)
  bool do_resize = true;
  int longest_edge = 2048;         // size.longest_edge (L)
  int max_image_size = 512;        // max_image_size.longest_edge (T, the tile edge)
  bool do_image_splitting = true;
  int resample = 1;                // PIL resample id (1 = LANCZOS)
  bool do_rescale = true;
  double rescale_factor = 0.00392156862745098;
  bool do_normalize = true;
  std::array<float, 3> image_mean = {0.5f, 0.5f, 0.5f};
  std::array<float, 3> image_std = {0.5f, 0.5f, 0.5f};
  // video_sampling
  double video_fps = 1.0;
  int video_max_frames = 64;
  int video_size = 512;            // video_sampling.video_size.longest_edge (overridden by size)
};

// Parses the two files' contents (either may be empty = defaults). Unknown keys are
// ignored; wrong types or impossible values are INVALID_ARGUMENT naming the key.
absl::StatusOr<ProcessorConfig> ParseProcessorConfig(absl::string_view preprocessor_json,
                                                     absl::string_view processor_json);

// Reads dir/preprocessor_config.json (required) and dir/processor_config.json (optional).
absl::StatusOr<ProcessorConfig> LoadProcessorConfig(const std::string& model_dir);

}  // namespace smolserve::preprocess

#endif  // SMOLSERVE_SERVICES_PREPROCESS_CORE_PROCESSOR_CONFIG_H_
