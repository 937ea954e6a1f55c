#include "tests/golden/golden_case.h"

#include <fstream>
#include <sstream>
#include <stdexcept>

namespace smolserve::golden {

std::vector<std::string> ConversationCases() {
  return {"single_image",      "two_images",     "text_only",       "video_default_sampling",
          "video_vfr_8_frames", "no_splitting",  "longest_edge_1024", "odd_size_image",
          "greyscale_image",   "rgba_image",     "pil_modes_direct_call", "batch_mixed"};
}

nlohmann::json ReadCase(const std::string& name) {
  std::ifstream f(std::string(kGoldenDir) + "cases/" + name + "/case.json");
  std::stringstream ss;
  ss << f.rdbuf();
  return nlohmann::json::parse(ss.str());
}

preprocess::PrepareRequest CaseRequest(const nlohmann::json& c) {
  nlohmann::json req;
  if (c["processor_call"] == "processor_call") {
    req["conversations"] = c["messages"];
    req["processor"]["image_mode"] = "keep";  // PIL images handed to the processor
  } else {
    req["messages"] = c["messages"];
  }
  const auto& over = c["image_processor_overrides"];
  if (over.contains("do_image_splitting")) req["processor"]["do_image_splitting"] = over["do_image_splitting"];
  const auto& kw = c["processor_kwargs"];
  if (kw.contains("size")) req["processor"]["size"] = kw["size"];
  if (kw.contains("num_frames")) req["processor"]["video"]["num_frames"] = kw["num_frames"];
  auto parsed = preprocess::ParsePrepareRequest(req.dump());
  if (!parsed.ok()) throw std::runtime_error(std::string(parsed.status().message()));
  return *parsed;
}

}  // namespace smolserve::golden
