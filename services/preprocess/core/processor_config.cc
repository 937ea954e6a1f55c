#include "services/preprocess/core/processor_config.h"

#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace smolserve::preprocess {
namespace {

using nlohmann::json;

absl::StatusOr<json> ParseObject(absl::string_view text, const char* what) {
  if (text.empty()) return json::object();
  json j = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(what, " is not a JSON object"));
  }
  return j;
}

absl::Status Positive(int v, const char* key) {
  if (v <= 0) return absl::InvalidArgumentError(absl::StrCat(key, " must be > 0"));
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadFile(const std::string& path, bool required) {
  std::ifstream f(path);
  if (!f) {
    if (required) return absl::NotFoundError(absl::StrCat("cannot read '", path, "'"));
    return std::string();
  }
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace

absl::StatusOr<ProcessorConfig> ParseProcessorConfig(absl::string_view preprocessor_json,
                                                     absl::string_view processor_json) {
  auto pre = ParseObject(preprocessor_json, "preprocessor_config.json");
  if (!pre.ok()) return pre.status();
  auto proc = ParseObject(processor_json, "processor_config.json");
  if (!proc.ok()) return proc.status();
  ProcessorConfig c;
  try {
    const json& p = *pre;
    if (p.contains("do_resize")) c.do_resize = p["do_resize"].get<bool>();
    if (p.contains("size")) c.longest_edge = p["size"].at("longest_edge").get<int>();
    if (p.contains("max_image_size")) c.max_image_size = p["max_image_size"].at("longest_edge").get<int>();
    if (p.contains("do_image_splitting")) c.do_image_splitting = p["do_image_splitting"].get<bool>();
    if (p.contains("resample")) c.resample = p["resample"].get<int>();
    if (p.contains("do_rescale")) c.do_rescale = p["do_rescale"].get<bool>();
    if (p.contains("rescale_factor")) c.rescale_factor = p["rescale_factor"].get<double>();
    if (p.contains("do_normalize")) c.do_normalize = p["do_normalize"].get<bool>();
    for (const char* key : {"image_mean", "image_std"}) {
      if (!p.contains(key)) continue;
      auto v = p[key].get<std::vector<float>>();
      if (v.size() != 3) return absl::InvalidArgumentError(absl::StrCat(key, " must have 3 values"));
      auto& dst = std::string(key) == "image_mean" ? c.image_mean : c.image_std;
      for (int i = 0; i < 3; ++i) dst[i] = v[i];
    }
    if (p.contains("video_sampling")) {
      const json& v = p["video_sampling"];
      if (v.contains("fps")) c.video_fps = v["fps"].get<double>();
      if (v.contains("max_frames")) c.video_max_frames = v["max_frames"].get<int>();
      if (v.contains("video_size")) c.video_size = v["video_size"].at("longest_edge").get<int>();
    }
    if (proc->contains("image_seq_len")) c.image_seq_len = (*proc)["image_seq_len"].get<int>();
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("processor configuration: ", e.what()));
  }
  for (auto [v, key] : {std::pair{c.longest_edge, "size.longest_edge"},
                        std::pair{c.max_image_size, "max_image_size.longest_edge"},
                        std::pair{c.image_seq_len, "image_seq_len"},
                        std::pair{c.video_max_frames, "video_sampling.max_frames"}}) {
    if (auto s = Positive(v, key); !s.ok()) return s;
  }
  if (!(c.video_fps > 0)) return absl::InvalidArgumentError("video_sampling.fps must be > 0");
  for (float s : c.image_std) {
    if (s == 0) return absl::InvalidArgumentError("image_std must not be 0");
  }
  if (!c.do_rescale || !c.do_normalize) {
    return absl::UnimplementedError("do_rescale / do_normalize = false are not supported");
  }
  return c;
}

absl::StatusOr<ProcessorConfig> LoadProcessorConfig(const std::string& model_dir) {
  auto pre = ReadFile(model_dir + "/preprocessor_config.json", /*required=*/true);
  if (!pre.ok()) return pre.status();
  auto proc = ReadFile(model_dir + "/processor_config.json", /*required=*/false);
  if (!proc.ok()) return proc.status();
  return ParseProcessorConfig(*pre, *proc);
}

}  // namespace smolserve::preprocess
