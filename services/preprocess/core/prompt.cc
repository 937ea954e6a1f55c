#include "services/preprocess/core/prompt.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace smolserve::preprocess {
namespace {

void AppendImageTokens(std::string* out, int image_seq_len) {
  out->reserve(out->size() + kImagePlaceholder.size() * image_seq_len);
  for (int i = 0; i < image_seq_len; ++i) out->append(kImagePlaceholder.data(), kImagePlaceholder.size());
}

}  // namespace

std::string SingleImagePromptTokens(int image_seq_len) {
  std::string out = absl::StrCat(kFakeTokenAroundImage, kGlobalImageToken);
  AppendImageTokens(&out, image_seq_len);
  absl::StrAppend(&out, kFakeTokenAroundImage);
  return out;
}

std::string ImagePromptTokens(int rows, int cols, int image_seq_len) {
  if (rows == 0 && cols == 0) return SingleImagePromptTokens(image_seq_len);
  std::string out;
  for (int r = 1; r <= rows; ++r) {
    for (int c = 1; c <= cols; ++c) {
      absl::StrAppend(&out, kFakeTokenAroundImage, "<row_", r, "_col_", c, ">");
      AppendImageTokens(&out, image_seq_len);
    }
    out += "\n";
  }
  absl::StrAppend(&out, "\n", SingleImagePromptTokens(image_seq_len));
  return out;
}

absl::StatusOr<std::string> ExpandPlaceholders(absl::string_view prompt,
                                               const std::vector<std::string>& images,
                                               const std::vector<std::string>& videos) {
  size_t n_images = 0, n_videos = 0;
  std::string out;
  size_t pos = 0;
  while (pos < prompt.size()) {
    const size_t i = prompt.find(kImagePlaceholder, pos);
    const size_t v = prompt.find(kVideoPlaceholder, pos);
    const size_t next = std::min(i, v);
    if (next == absl::string_view::npos) break;
    out.append(prompt.data() + pos, next - pos);
    if (next == i) {
      if (n_images < images.size()) out += images[n_images];
      ++n_images;
      pos = next + kImagePlaceholder.size();
    } else {
      if (n_videos < videos.size()) out += videos[n_videos];
      ++n_videos;
      pos = next + kVideoPlaceholder.size();
    }
  }
  if (pos < prompt.size()) out.append(prompt.data() + pos, prompt.size() - pos);
  if (n_images != images.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the prompt has ", n_images, " <image> placeholders but ", images.size(),
                     " images were given"));
  }
  if (n_videos != videos.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the prompt has ", n_videos, " <video> placeholders but ", videos.size(),
                     " videos were given"));
  }
  return out;
}

}  // namespace smolserve::preprocess
