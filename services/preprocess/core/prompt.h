// Placeholder expansion: "<image>" / "<video>" in a rendered chat prompt become the
// model's image-token layout (reference §3.3, §2.6).
#ifndef SMOLSERVE_SERVICES_PREPROCESS_CORE_PROMPT_H_
#define SMOLSERVE_SERVICES_PREPROCESS_CORE_PROMPT_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace smolserve::preprocess {

inline constexpr absl::string_view kImagePlaceholder = "<image>";
inline constexpr absl::string_view kVideoPlaceholder = "<video>";
inline constexpr absl::string_view kFakeTokenAroundImage = "<fake_token_around_image>";
inline constexpr absl::string_view kGlobalImageToken = "<global-img>";

// Tokens for one image: a grid of rows x cols tiles followed by the global image, or the
// single-image block when rows == cols == 0 (also used for every video frame).
std::string ImagePromptTokens(int rows, int cols, int image_seq_len);

// The single-image block: <fake><global-img><image>*S<fake>.
std::string SingleImagePromptTokens(int image_seq_len);

// Replaces the placeholders of `prompt` in order of appearance. `images[k]` is the text
// for the k-th "<image>", `videos[k]` for the k-th "<video>". The counts must match
// exactly (INVALID_ARGUMENT otherwise, naming both counts).
absl::StatusOr<std::string> ExpandPlaceholders(absl::string_view prompt,
                                               const std::vector<std::string>& images,
                                               const std::vector<std::string>& videos);

}  // namespace smolserve::preprocess

#endif  // SMOLSERVE_SERVICES_PREPROCESS_CORE_PROMPT_H_
