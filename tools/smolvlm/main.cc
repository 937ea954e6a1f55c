// smolvlm: the command-line tool.
//   smolvlm prepare --model DIR --request REQ.json [--dump-dir OUT]
// (run, make-model, bench-local and chat are added by their subsystems.)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "services/preprocess/core/preprocessor.h"
#include "tools/smolvlm/dump.h"

ABSL_FLAG(std::string, model, "", "Model folder (Hugging Face layout) or org/name[@revision] in the local HF cache.");
ABSL_FLAG(std::string, request, "", "Request JSON file ({\"messages\": ...} or {\"conversations\": ...}).");
ABSL_FLAG(std::string, dump_dir, "", "Write outputs.json and tensors.safetensors here.");
ABSL_FLAG(int64_t, max_encoded_bytes, 64ll << 20, "Largest media item, bytes.");
ABSL_FLAG(int64_t, max_image_pixels, 40'000'000, "Largest decoded image, width*height.");
ABSL_FLAG(int, max_images, 16, "Most images per request.");
ABSL_FLAG(double, max_video_seconds, 600, "Longest video, seconds.");
ABSL_FLAG(int, max_prompt_tokens, 8192, "Longest prompt after expansion, tokens.");

namespace smolserve::cli {
namespace {

constexpr char kUsage[] =
    "smolvlm COMMAND [flags]\n"
    "  prepare --model DIR --request REQ.json [--dump-dir OUT]   preprocessing only\n";

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return absl::NotFoundError(absl::StrCat("cannot read '", path, "'"));
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string DirName(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

preprocess::MediaLimits LimitsFromFlags() {
  preprocess::MediaLimits l;
  l.max_encoded_bytes = absl::GetFlag(FLAGS_max_encoded_bytes);
  l.max_image_pixels = absl::GetFlag(FLAGS_max_image_pixels);
  l.max_images_per_request = absl::GetFlag(FLAGS_max_images);
  l.max_video_duration_s = absl::GetFlag(FLAGS_max_video_seconds);
  l.max_prompt_tokens = absl::GetFlag(FLAGS_max_prompt_tokens);
  return l;
}

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "error: %s\n", s.ToString().c_str());
  return 1;
}

int Prepare() {
  const std::string model = absl::GetFlag(FLAGS_model);
  const std::string request_path = absl::GetFlag(FLAGS_request);
  if (model.empty() || request_path.empty()) {
    return Fail(absl::InvalidArgumentError("prepare needs --model and --request"));
  }
  auto text = ReadFile(request_path);
  if (!text.ok()) return Fail(text.status());
  auto request = preprocess::ParsePrepareRequest(*text);
  if (!request.ok()) return Fail(request.status());

  preprocess::PreprocessorOptions options;
  options.model_dir = model;
  options.limits = LimitsFromFlags();
  options.media_access.base_dir = DirName(request_path);
  auto pre = preprocess::Preprocessor::Create(options);
  if (!pre.ok()) return Fail(pre.status());

  const auto start = std::chrono::steady_clock::now();
  auto batch = (*pre)->Prepare(*request);
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  if (!batch.ok()) return Fail(batch.status());

  auto outputs = PreparedToJson(*batch);
  outputs["preprocess_ms"] = ms;
  for (size_t b = 0; b < batch->input_ids.size(); ++b) {
    std::printf("conversation %zu: %d prompt tokens\n", b, batch->prompt_tokens(static_cast<int>(b)));
  }
  std::printf("tiles: %d, preprocessing: %.1f ms\n", batch->num_real_tiles(), ms);
  const std::string dump_dir = absl::GetFlag(FLAGS_dump_dir);
  if (!dump_dir.empty()) {
    safetensors::Writer writer;
    if (auto s = AddPreparedTensors(*batch, writer); !s.ok()) return Fail(s);
    if (auto s = WriteDump(dump_dir, outputs, writer); !s.ok()) return Fail(s);
    std::printf("wrote %s/outputs.json and %s/tensors.safetensors\n", dump_dir.c_str(), dump_dir.c_str());
  }
  return 0;
}

}  // namespace
}  // namespace smolserve::cli

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(smolserve::cli::kUsage);
  // Accept --dump-dir as well as --dump_dir: dashes in flag names become underscores.
  std::vector<std::string> normalized(argv, argv + argc);
  for (std::string& a : normalized) {
    if (a.rfind("--", 0) != 0) continue;
    const size_t end = std::min(a.find('='), a.size());
    for (size_t i = 2; i < end; ++i) if (a[i] == '-') a[i] = '_';
  }
  std::vector<char*> argv2;
  for (std::string& a : normalized) argv2.push_back(a.data());
  std::vector<char*> args = absl::ParseCommandLine(argc, argv2.data());
  if (args.size() < 2) {
    std::fputs(smolserve::cli::kUsage, stderr);
    return 2;
  }
  const std::string command = args[1];
  if (command == "prepare") return smolserve::cli::Prepare();
  std::fprintf(stderr, "unknown command '%s'\n%s", command.c_str(), smolserve::cli::kUsage);
  return 2;
}
