#include "tools/smolvlm/dump.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "common/safetensors/torch_tensors.h"

namespace smolserve::cli {

using preprocess::MediaInfo;
using preprocess::PreparedBatch;

nlohmann::ordered_json PreparedToJson(const PreparedBatch& batch) {
  nlohmann::ordered_json j;
  j["prompt_template"] = batch.prompt_template;
  j["prompt_expanded"] = batch.prompt_expanded;
  j["input_ids"] = batch.input_ids;
  j["attention_mask"] = batch.attention_mask;
  j["image_seq_len"] = batch.image_seq_len;
  nlohmann::ordered_json media = nlohmann::ordered_json::array();
  nlohmann::ordered_json videos = nlohmann::ordered_json::array();
  for (const MediaInfo& m : batch.media) {
    nlohmann::ordered_json item;
    item["kind"] = m.kind == MediaInfo::Kind::kImage ? "image" : "video";
    item["conversation"] = m.conversation;
    item["first_tile"] = m.first_tile;
    item["num_tiles"] = m.num_tiles;
    item["source_hw"] = {m.source_height, m.source_width};
    if (m.kind == MediaInfo::Kind::kImage) {
      item["rows"] = m.rows;
      item["cols"] = m.cols;
    } else {
      item["sampled_frame_indices"] = m.sampled_frame_indices;
      nlohmann::ordered_json ts = nlohmann::ordered_json::array();
      for (const auto& [mm, ss] : m.timestamps) ts.push_back({mm, ss});
      item["timestamps"] = ts;
      item["duration_int"] = m.duration_int;
      item["fps"] = m.fps;
      item["total_num_frames"] = m.total_num_frames;
      item["decoded_frames"] = m.decoded_frames;
      videos.push_back(item);
    }
    media.push_back(item);
  }
  j["media"] = media;
  j["video"] = videos;
  if (batch.pixels.defined()) {
    j["pixel_values_shape"] = batch.pixel_values().sizes().vec();
  }
  return j;
}

absl::Status AddPreparedTensors(const PreparedBatch& batch, safetensors::Writer& writer) {
  if (!batch.pixels.defined()) return absl::OkStatus();
  if (auto s = safetensors::AddTensor(writer, "pixel_values", batch.pixel_values()); !s.ok()) return s;
  return safetensors::AddTensor(writer, "pixel_attention_mask", batch.pixel_attention_mask);
}

absl::Status WriteDump(const std::string& dir, const nlohmann::ordered_json& outputs,
                       const safetensors::Writer& tensors) {
  std::string partial;
  for (size_t i = 0; i <= dir.size(); ++i) {
    if (i == dir.size() || (dir[i] == '/' && i > 0)) {
      partial = dir.substr(0, i);
      if (mkdir(partial.c_str(), 0755) != 0 && errno != EEXIST) {
        return absl::PermissionDeniedError(
            absl::StrCat("cannot create '", partial, "': ", std::strerror(errno)));
      }
    }
  }
  std::ofstream f(dir + "/outputs.json", std::ios::trunc);
  if (!f) return absl::PermissionDeniedError(absl::StrCat("cannot write ", dir, "/outputs.json"));
  f << outputs.dump(1) << "\n";
  if (!f) return absl::InternalError("short write of outputs.json");
  return tensors.WriteFile(dir + "/tensors.safetensors");
}

}  // namespace smolserve::cli
