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
#include "nlohmann/json.hpp"
#include "services/preprocess/core/preprocessor.h"
#include "services/preprocess/server/chat_convert.h"
#include "tools/smolvlm/chat_client.h"
#include "tools/smolvlm/dump.h"

ABSL_FLAG(std::string, model, "", "Model folder (Hugging Face layout) or org/name[@revision] in the local HF cache.");
ABSL_FLAG(std::string, request, "", "Request JSON file ({\"messages\": ...} or {\"conversations\": ...}).");
ABSL_FLAG(std::string, dump_dir, "", "Write outputs.json and tensors.safetensors here.");
ABSL_FLAG(std::string, target, "127.0.0.1:50051", "chat: the front (preprocess stage) address.");
ABSL_FLAG(std::string, image, "", "chat: an image file (instead of --request).");
ABSL_FLAG(std::string, video, "", "chat: a video file (instead of --request).");
ABSL_FLAG(std::string, text, "", "chat: the user's text (instead of --request).");
ABSL_FLAG(bool, stream, true, "chat: print tokens as they arrive.");
ABSL_FLAG(int, max_new_tokens, 0, "New tokens (0: the request's or the model's default).");
ABSL_FLAG(bool, greedy, false, "Greedy decoding.");
ABSL_FLAG(double, temperature, -1, "Sampling temperature (> 0 samples).");
ABSL_FLAG(double, top_p, -1, "Nucleus sampling threshold.");
ABSL_FLAG(int, top_k, -1, "Top-k sampling.");
ABSL_FLAG(double, repetition_penalty, -1, "Repetition penalty.");
ABSL_FLAG(int64_t, seed, -1, "Sampling seed.");
ABSL_FLAG(bool, ignore_eos, false, "Generate exactly max_new_tokens.");
ABSL_FLAG(double, deadline_s, 0, "chat: deadline for the whole call, seconds (0: none).");
ABSL_FLAG(int64_t, max_encoded_bytes, 64ll << 20, "Largest media item, bytes.");
ABSL_FLAG(int64_t, max_image_pixels, 40'000'000, "Largest decoded image, width*height.");
ABSL_FLAG(int, max_images, 16, "Most images per request.");
ABSL_FLAG(double, max_video_seconds, 600, "Longest video, seconds.");
ABSL_FLAG(int, max_prompt_tokens, 8192, "Longest prompt after expansion, tokens.");

namespace smolserve::cli {
namespace {

constexpr char kUsage[] =
    "smolvlm COMMAND [flags]\n"
    "  prepare --model DIR --request REQ.json [--dump-dir OUT]   preprocessing only\n"
    "  chat --target HOST:PORT (--request REQ.json | --image P --video P --text T) [--stream]\n"
    "       [--max-new-tokens N] [--greedy | --temperature T --top-p P --top-k K --seed S]\n";

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

// The request of `chat` / `run`: --request, or one conversation from --image/--video/--text.
absl::StatusOr<std::pair<preprocess::PrepareRequest, std::string>> LoadRequest() {
  const std::string path = absl::GetFlag(FLAGS_request);
  if (!path.empty()) {
    auto text = ReadFile(path);
    if (!text.ok()) return text.status();
    auto req = preprocess::ParsePrepareRequest(*text);
    if (!req.ok()) return req.status();
    return std::make_pair(*std::move(req), DirName(path));
  }
  nlohmann::json content = nlohmann::json::array();
  if (!absl::GetFlag(FLAGS_image).empty()) content.push_back({{"type", "image"}, {"path", absl::GetFlag(FLAGS_image)}});
  if (!absl::GetFlag(FLAGS_video).empty()) content.push_back({{"type", "video"}, {"path", absl::GetFlag(FLAGS_video)}});
  if (!absl::GetFlag(FLAGS_text).empty()) content.push_back({{"type", "text"}, {"text", absl::GetFlag(FLAGS_text)}});
  if (content.empty()) return absl::InvalidArgumentError("give --request, or --image/--video/--text");
  nlohmann::json j = {{"messages", {{{"role", "user"}, {"content", content}}}}};
  auto req = preprocess::ParsePrepareRequest(j.dump());
  if (!req.ok()) return req.status();
  return std::make_pair(*std::move(req), std::string("."));
}

// Command-line generation flags override the request's "generation" object.
void ApplyGenerationFlags(v1::GenerationParams* g) {
  if (absl::GetFlag(FLAGS_max_new_tokens) > 0) g->set_max_new_tokens(absl::GetFlag(FLAGS_max_new_tokens));
  if (absl::GetFlag(FLAGS_greedy)) g->set_temperature(0);
  if (absl::GetFlag(FLAGS_temperature) >= 0) g->set_temperature(absl::GetFlag(FLAGS_temperature));
  if (absl::GetFlag(FLAGS_top_p) >= 0) g->set_top_p(absl::GetFlag(FLAGS_top_p));
  if (absl::GetFlag(FLAGS_top_k) >= 0) g->set_top_k(absl::GetFlag(FLAGS_top_k));
  if (absl::GetFlag(FLAGS_repetition_penalty) >= 0) g->set_repetition_penalty(absl::GetFlag(FLAGS_repetition_penalty));
  if (absl::GetFlag(FLAGS_seed) >= 0) g->set_seed(absl::GetFlag(FLAGS_seed));
  if (absl::GetFlag(FLAGS_ignore_eos)) g->set_ignore_eos(true);
}

const char* FinishName(v1::FinishReason r) {
  switch (r) {
    case v1::FINISH_REASON_STOP: return "stop";
    case v1::FINISH_REASON_LENGTH: return "length";
    case v1::FINISH_REASON_CANCELLED: return "cancelled";
    default: return "?";
  }
}

int Chat() {
  auto loaded = LoadRequest();
  if (!loaded.ok()) return Fail(loaded.status());
  preprocess::MediaAccess access;
  access.base_dir = loaded->second;
  access.max_bytes = absl::GetFlag(FLAGS_max_encoded_bytes);
  auto request = preprocess::ToChatRequest(loaded->first, access);
  if (!request.ok()) return Fail(request.status());
  ApplyGenerationFlags(request->mutable_generation());
  const bool stream = absl::GetFlag(FLAGS_stream);
  const int n = request->conversations_size();
  auto outcome = RunChat(absl::GetFlag(FLAGS_target), *request, absl::GetFlag(FLAGS_deadline_s),
                         [&](const v1::ChatResponse::Delta& d) {
                           if (!stream) return;
                           if (n > 1) std::printf("[%u]", d.index());
                           std::fputs(d.text().c_str(), stdout);
                           if (n > 1) std::fputs("\n", stdout);
                           std::fflush(stdout);
                         });
  if (!outcome.ok()) return Fail(outcome.status());
  if (stream) std::printf("\n");
  for (const auto& c : outcome->result.choices()) {
    std::printf("--- answer %u (%s, %u prompt + %u completion tokens, %u tiles, %u frames):\n%s\n",
                c.index(), FinishName(c.finish_reason()), c.usage().prompt_tokens(),
                c.usage().completion_tokens(), c.usage().image_tiles(), c.usage().video_frames(),
                c.text().c_str());
  }
  std::printf("timings (%s):\n%s", outcome->result.request_id().c_str(),
              TimingTable(outcome->result.timings()).c_str());
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
  if (command == "chat") return smolserve::cli::Chat();
  std::fprintf(stderr, "unknown command '%s'\n%s", command.c_str(), smolserve::cli::kUsage);
  return 2;
}
