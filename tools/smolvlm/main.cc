// smolvlm: the command-line tool.
//   smolvlm prepare --model DIR --request REQ.json [--dump-dir OUT]
// (run, make-model, bench-local, chat and bench are added by their subsystems.)
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
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"
#include "services/preprocess/core/preprocessor.h"
#include "common/generation/generation_params.h"
#include "common/hub/hub_download.h"
#include "common/grpc/generation_proto.h"
#include "services/preprocess/server/chat_convert.h"
#include "tools/smolvlm/bench.h"
#include "tools/smolvlm/bench_stages.h"
#include "tools/smolvlm/chat_client.h"
#include "tools/smolvlm/dump.h"
#include "tools/smolvlm/local_pipeline.h"
#include "tools/smolvlm/make_model.h"
#include "common/runtime/cpu_quota.h"
#include "common/runtime/dtype.h"
#include "common/status/status_macros.h"
#include "common/runtime/malloc_tuning.h"
#include "common/safetensors/torch_tensors.h"
#include <ATen/Parallel.h>
extern "C" {
#include <libavutil/log.h>
}

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
ABSL_FLAG(int64_t, seed, -1, "Sampling seed; bench: also the seed of the request draws (unset: 0).");
ABSL_FLAG(bool, ignore_eos, false, "Generate exactly max_new_tokens.");
ABSL_FLAG(double, deadline_s, 0, "chat, bench: deadline of each call, seconds (0: none).");
ABSL_FLAG(bool, prefix_cache, true, "bench --in-process: the decoder's prefix cache.");
ABSL_FLAG(int64_t, media_cache_bytes, -1, "bench --in-process: the front's media cache bytes (-1: default, 0: off).");
ABSL_FLAG(std::string, dtype, "auto", "run/bench-local/bench --in-process: auto, f32 or bf16.");
ABSL_FLAG(std::string, weights, "",
          "run/bench-local/bench --in-process: the decoder's weights: empty (the --dtype), f32, "
          "bf16 or int8.");
ABSL_FLAG(int, threads, 0, "LibTorch intra-op threads (0: the CPU quota of this process).");
ABSL_FLAG(std::string, preset, "256m", "make-model: tiny, 256m, 500m or 2.2b.");
ABSL_FLAG(uint64_t, seed_weights, 0, "make-model: seed of the random weights (--seed works too).");
ABSL_FLAG(std::string, out, "", "make-model: output folder; bench: append each point's JSON to this file (JSON Lines).");
ABSL_FLAG(bool, bf16, false, "make-model: store weights as bfloat16.");
ABSL_FLAG(std::string, presets_dir, "models/presets", "make-model: folder of the preset configs.");
ABSL_FLAG(std::string, tokenizer_dir, "models/SmolVLM-256M-Instruct", "make-model: tokenizer files.");
ABSL_FLAG(int, new_tokens, 64, "bench-local, bench: tokens to generate.");
ABSL_FLAG(int, turns, 0,
          "bench-local: also N questions about --image in one conversation (each turn resends "
          "the history with the answer so far), with the media and prefix caches a server has; "
          "the JSON gains turns[i] (time to first token, cached tokens).");
ABSL_FLAG(int64_t, max_encoded_bytes, 64ll << 20, "Largest media item, bytes.");
ABSL_FLAG(int64_t, max_image_pixels, 40'000'000, "Largest decoded image, width*height.");
ABSL_FLAG(int, max_images, 16, "Most images per request.");
ABSL_FLAG(double, max_video_seconds, 600, "Longest video, seconds.");
ABSL_FLAG(int, max_prompt_tokens, 8192, "Longest prompt after expansion, tokens.");
ABSL_FLAG(bool, in_process, false, "bench: run the three stages inside this process (needs --model).");
ABSL_FLAG(int, concurrency, 1, "bench: closed-loop client workers.");
ABSL_FLAG(int, requests, 0, "bench: measured requests per point (0: 4 x concurrency).");
ABSL_FLAG(int, warmup, 0, "bench: requests run before each measured point.");
ABSL_FLAG(std::string, mix, "text=1,image=1", "bench: request kinds and weights (text, image, images2, video).");
ABSL_FLAG(bool, unique_media, false, "bench: a distinct image (a few pixels changed) in every image request.");
ABSL_FLAG(bool, media_id, false, "bench: set Media.id to the content's sha256.");
ABSL_FLAG(bool, processor_no_split, false, "bench: do_image_splitting=false.");
ABSL_FLAG(std::string, sweep, "", "bench: concurrencies to run in turn (e.g. 1,4,16), then a table.");
ABSL_FLAG(std::string, label, "", "bench: stored in each point's JSON (e.g. before/after).");
ABSL_FLAG(double, duration, 0, "bench: run each point for this many seconds (closed loop) instead of --requests (soak).");
ABSL_FLAG(std::string, watch, "", "bench: sample these processes while the load runs: name=pid[@host:metrics_port],... (RSS, open fds, queues at the end).");
ABSL_FLAG(double, sample_interval, 5, "bench: seconds between --watch samples.");
ABSL_FLAG(std::string, http, "", "bench: the front's HTTP API (http://HOST:PORT) instead of --target (gRPC).");
ABSL_FLAG(std::string, api_key, "", "chat, bench: API key (sent as authorization: Bearer).");

namespace smolserve::cli {
namespace {

constexpr char kUsage[] =
    "smolvlm COMMAND [flags]\n"
    "  (--model everywhere: a directory, or org/name[@revision], downloaded when not cached)\n"
    "  prepare --model DIR --request REQ.json [--dump-dir OUT]   preprocessing only\n"
    "  run --model DIR|org/name --request REQ.json [--max-new-tokens N] [--greedy | --temperature T\n"
    "      --top-p P --top-k K --seed S] [--ignore-eos] [--dtype auto|f32|bf16] [--weights int8] [--dump-dir OUT]\n"
    "  download org/name[@revision]   into the Hugging Face cache (HF_HOME, HF_ENDPOINT, HF_TOKEN)\n"
    "  make-model --preset tiny|256m|500m|2.2b --seed S --out DIR [--bf16]\n"
    "  bench-local --model DIR --image PATH [--video PATH] [--new-tokens 64] [--weights int8] [--turns N]\n"
    "  chat --target HOST:PORT (--request REQ.json | --image P --video P --text T) [--stream]\n"
    "       [--max-new-tokens N] [--greedy | --temperature T --top-p P --top-k K --seed S]\n"
    "  bench (--target HOST:PORT | --in-process --model DIR [--threads N] [--dtype auto|f32|bf16] [--weights int8])\n"
    "       [--concurrency N | --sweep 1,4,16] [--requests M] [--warmup K] [--new-tokens T]\n"
    "       [--mix text=W,image=W,images2=W,video=W] [--seed S] [--image P[,P2]] [--video P]\n"
    "       [--unique-media] [--media-id] [--processor-no-split] [--out FILE.jsonl] [--label L]\n"
    "       [--deadline-s S]   load test of the front: one JSON line per point, a table with --sweep\n";

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
absl::StatusOr<std::pair<preprocess::ChatRequest, std::string>> LoadRequest() {
  const std::string path = absl::GetFlag(FLAGS_request);
  if (!path.empty()) {
    auto text = ReadFile(path);
    if (!text.ok()) return text.status();
    auto req = preprocess::ParseChatRequest(*text);
    if (!req.ok()) return req.status();
    return std::make_pair(*std::move(req), DirName(path));
  }
  nlohmann::json content = nlohmann::json::array();
  if (!absl::GetFlag(FLAGS_image).empty()) content.push_back({{"type", "image"}, {"path", absl::GetFlag(FLAGS_image)}});
  if (!absl::GetFlag(FLAGS_video).empty()) content.push_back({{"type", "video"}, {"path", absl::GetFlag(FLAGS_video)}});
  if (!absl::GetFlag(FLAGS_text).empty()) content.push_back({{"type", "text"}, {"text", absl::GetFlag(FLAGS_text)}});
  if (content.empty()) return absl::InvalidArgumentError("give --request, or --image/--video/--text");
  nlohmann::json j = {{"messages", {{{"role", "user"}, {"content", content}}}}};
  auto req = preprocess::ParseChatRequest(j.dump());
  if (!req.ok()) return req.status();
  return std::make_pair(*std::move(req), std::string("."));
}

// Command-line generation flags override the request's "generation" object.
void ApplyGenerationFlags(GenerationParams* g) {
  if (absl::GetFlag(FLAGS_max_new_tokens) > 0) g->max_new_tokens = absl::GetFlag(FLAGS_max_new_tokens);
  if (absl::GetFlag(FLAGS_greedy)) g->temperature = 0.0;
  if (absl::GetFlag(FLAGS_temperature) >= 0) g->temperature = absl::GetFlag(FLAGS_temperature);
  if (absl::GetFlag(FLAGS_top_p) >= 0) g->top_p = absl::GetFlag(FLAGS_top_p);
  if (absl::GetFlag(FLAGS_top_k) >= 0) g->top_k = absl::GetFlag(FLAGS_top_k);
  if (absl::GetFlag(FLAGS_repetition_penalty) >= 0) g->repetition_penalty = absl::GetFlag(FLAGS_repetition_penalty);
  if (absl::GetFlag(FLAGS_seed) >= 0) g->seed = static_cast<uint64_t>(absl::GetFlag(FLAGS_seed));
  if (absl::GetFlag(FLAGS_ignore_eos)) g->ignore_eos = true;
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
  ApplyGenerationFlags(&loaded->first.generation);
  auto request = preprocess::ChatRequestToProto(loaded->first, access);
  if (!request.ok()) return Fail(request.status());
  const bool stream = absl::GetFlag(FLAGS_stream);
  const int n = request->conversations_size();
  auto outcome = RunChat(absl::GetFlag(FLAGS_target), *request, absl::GetFlag(FLAGS_deadline_s),
                         [&](const v1::ChatResponse::Delta& d) {
                           if (!stream) return;
                           if (n > 1) std::printf("[%u]", d.index());
                           std::fputs(d.text().c_str(), stdout);
                           if (n > 1) std::fputs("\n", stdout);
                           std::fflush(stdout);
                         },
                         absl::GetFlag(FLAGS_api_key));
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

absl::StatusOr<at::ScalarType> DtypeFromFlag(DtypeStage stage = DtypeStage::kDecoder) {
  return ResolveDtype(absl::GetFlag(FLAGS_dtype), stage);
}

absl::StatusOr<decoder::TextModelOptions> DecoderOptionsFromFlags() {
  return decoder::DecoderOptionsFromFlags(absl::GetFlag(FLAGS_dtype), absl::GetFlag(FLAGS_weights));
}

void SetThreads() {
  const int t = absl::GetFlag(FLAGS_threads) > 0 ? absl::GetFlag(FLAGS_threads) : AvailableCpus();
  at::set_num_threads(t);
}

int Run() {
  SetThreads();
  auto decoder_options = DecoderOptionsFromFlags();
  if (!decoder_options.ok()) return Fail(decoder_options.status());
  auto loaded = LoadRequest();
  if (!loaded.ok()) return Fail(loaded.status());
  ApplyGenerationFlags(&loaded->first.generation);
  LocalPipelineOptions options;
  options.model = absl::GetFlag(FLAGS_model);
  options.decoder = *decoder_options;
  options.vision_dtype = *DtypeFromFlag(DtypeStage::kVision);
  options.limits = LimitsFromFlags();
  auto pipeline = LocalPipeline::Load(options);
  if (!pipeline.ok()) return Fail(pipeline.status());
  preprocess::MediaAccess access;
  access.base_dir = loaded->second;
  auto run = (*pipeline)->Run(loaded->first, access);
  if (!run.ok()) return Fail(run.status());
  for (const preprocess::ChatChoice& c : run->result.choices) {
    if (!c.status.ok()) {
      std::printf("--- answer %d failed: %s\n", c.index, c.status.ToString().c_str());
      continue;
    }
    std::printf("--- answer %d (%s, %lld prompt + %lld completion tokens):\n%s\n", c.index,
                std::string(FinishReasonName(c.finish_reason)).c_str(),
                static_cast<long long>(c.usage.prompt_tokens),
                static_cast<long long>(c.usage.completion_tokens), c.text.c_str());
  }
  const preprocess::ChatTimings& t = run->result.timings;
  std::printf("preprocess %.1f ms, vision %.1f ms, prefill %.1f ms, decode %.1f ms\n",
              t.preprocess_ms, t.vision_ms, t.prefill_ms, t.decode_ms);
  const std::string dump_dir = absl::GetFlag(FLAGS_dump_dir);
  if (!dump_dir.empty()) {
    // The prepared inputs, as the pipeline prepared them (preprocessing is deterministic).
    auto prepared = (*pipeline)->preprocessor().Prepare(loaded->first.prepare, access);
    if (!prepared.ok()) return Fail(prepared.status());
    auto outputs = PreparedToJson(*prepared);
    std::vector<std::vector<int32_t>> ids;
    std::vector<std::string> reasons, text;
    for (const auto& c : run->result.choices) {
      ids.push_back(c.token_ids);
      reasons.emplace_back(FinishReasonName(c.finish_reason));
      text.push_back(c.text);
    }
    outputs["generated_ids"] = ids;
    outputs["generated_text"] = run->text_with_special;
    outputs["generated_text_skip_special"] = text;
    outputs["finish_reason"] = reasons;
    outputs["timings_ms"] = {{"preprocess", t.preprocess_ms}, {"vision", t.vision_ms},
                             {"prefill", t.prefill_ms}, {"decode", t.decode_ms}};
    safetensors::Writer writer;
    if (auto s = AddPreparedTensors(*prepared, writer); !s.ok()) return Fail(s);
    if (run->image_hidden_states.defined()) {
      if (auto s = safetensors::AddTensor(writer, "image_hidden_states",
                                          run->image_hidden_states.to(at::kFloat));
          !s.ok()) {
        return Fail(s);
      }
    }
    if (auto s = safetensors::AddTensor(writer, "logits_last", run->logits_last); !s.ok()) return Fail(s);
    if (auto s = WriteDump(dump_dir, outputs, writer); !s.ok()) return Fail(s);
    std::printf("wrote %s/outputs.json and %s/tensors.safetensors\n", dump_dir.c_str(), dump_dir.c_str());
  }
  return 0;
}

// `smolvlm download org/name[@revision]`: fills the shared Hugging Face cache (the chart's
// model-download Job runs it) and prints the snapshot folder on stdout.
int DownloadCommand(const std::vector<char*>& args) {
  if (args.size() != 3) {
    return Fail(absl::InvalidArgumentError("usage: smolvlm download org/name[@revision]"));
  }
  auto spec = hub::ParseRepoSpec(args[2]);
  if (!spec.ok()) return Fail(spec.status());
  hub::DownloadOptions o;
  o.repo_id = spec->repo_id;
  o.revision = spec->revision;
  auto dir = hub::DownloadModel(o);
  if (!dir.ok()) return Fail(dir.status());
  std::printf("%s\n", dir->c_str());
  return 0;
}

int MakeModelCommand() {
  MakeModelOptions o;
  o.preset = absl::GetFlag(FLAGS_preset);
  o.presets_dir = absl::GetFlag(FLAGS_presets_dir);
  o.tokenizer_dir = absl::GetFlag(FLAGS_tokenizer_dir);
  o.out_dir = absl::GetFlag(FLAGS_out);
  o.seed = absl::GetFlag(FLAGS_seed) >= 0 ? static_cast<uint64_t>(absl::GetFlag(FLAGS_seed))
                                          : absl::GetFlag(FLAGS_seed_weights);
  o.bf16 = absl::GetFlag(FLAGS_bf16);
  if (o.out_dir.empty()) return Fail(absl::InvalidArgumentError("make-model needs --out"));
  const auto start = std::chrono::steady_clock::now();
  if (auto s = MakeModel(o); !s.ok()) return Fail(s);
  std::printf("wrote %s: preset %s, seed %llu, random weights (%.1f s)\n", o.out_dir.c_str(),
              o.preset.c_str(), static_cast<unsigned long long>(o.seed),
              std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  return 0;
}

// `bench-local --turns N`: N questions about one image in one conversation. Turn i sends the
// whole history (image, questions, the answers so far); the first turn pays vision and the
// whole prefill, later ones find the image in the media cache and the history in the decoder's
// prefix cache.
absl::StatusOr<nlohmann::json> BenchTurns(LocalPipeline& pipeline, const std::string& image,
                                          int turns, int new_tokens) {
  static const char* const kQuestions[] = {"Describe this image.", "What colours do you see?",
                                           "How many objects are there?", "What is in the corner?"};
  nlohmann::json messages = nlohmann::json::array();
  nlohmann::json out = nlohmann::json::array();
  for (int i = 0; i < turns; ++i) {
    nlohmann::json content = nlohmann::json::array();
    if (i == 0) content.push_back({{"type", "image"}, {"path", image}});
    content.push_back({{"type", "text"}, {"text", kQuestions[i % 4]}});
    messages.push_back({{"role", "user"}, {"content", content}});
    ASSIGN_OR_RETURN(preprocess::ChatRequest req,
                     preprocess::ParseChatRequest(nlohmann::json{{"messages", messages}}.dump()));
    req.generation.ignore_eos = true;
    req.generation.max_new_tokens = new_tokens;
    ASSIGN_OR_RETURN(LocalRun run, pipeline.Run(req, preprocess::MediaAccess{}));
    const preprocess::ChatTimings& t = run.result.timings;
    const preprocess::ChatChoice& c = run.result.choices[0];
    out.push_back({{"turn", i + 1},
                   {"prompt_tokens", c.usage.prompt_tokens},
                   {"cached_tokens", c.usage.cached_prompt_tokens},
                   {"cached_tiles", t.cached_tiles},
                   {"vision_ms", t.vision_ms},
                   {"prefill_ms", t.prefill_ms},
                   {"time_to_first_token_ms", t.time_to_first_token_ms}});
    messages.push_back({{"role", "assistant"}, {"content", {{{"type", "text"}, {"text", c.text}}}}});
  }
  return out;
}

int BenchLocal() {
  SetThreads();
  auto decoder_options = DecoderOptionsFromFlags();
  if (!decoder_options.ok()) return Fail(decoder_options.status());
  if (absl::GetFlag(FLAGS_image).empty() && absl::GetFlag(FLAGS_video).empty()) {
    return Fail(absl::InvalidArgumentError("bench-local needs --image (and/or --video)"));
  }
  LocalPipelineOptions options;
  options.model = absl::GetFlag(FLAGS_model);
  options.decoder = *decoder_options;
  options.vision_dtype = *DtypeFromFlag(DtypeStage::kVision);
  options.limits = LimitsFromFlags();
  const int turns = absl::GetFlag(FLAGS_turns);
  if (turns < 0 || turns > 64) return Fail(absl::InvalidArgumentError("--turns: 0 .. 64"));
  // No prefix cache for the single-request figures: the warm-up run would otherwise leave the
  // prompt's KV behind and the measured run would prefill only its last chunk.
  options.prefix_cache = false;
  auto pipeline = LocalPipeline::Load(options);
  if (!pipeline.ok()) return Fail(pipeline.status());
  nlohmann::ordered_json report;
  report["model"] = (*pipeline)->model_dir();
  report["dtype"] = absl::GetFlag(FLAGS_dtype);
  report["vision_dtype"] = DtypeName(options.vision_dtype);
  report["decoder_dtype"] = DtypeName(options.decoder.dtype);
  report["decoder_weights"] = decoder::WeightsName(options.decoder);
  report["prefix_cache"] = false;  // image.* and video.*: every prompt prefilled in full
  report["threads"] = at::get_num_threads();
  auto bench_one = [&](const std::string& key, const std::string& type, const std::string& path) -> absl::Status {
    nlohmann::json j = {{"messages", {{{"role", "user"}, {"content", {{{"type", type}, {"path", path}},
                                                                      {{"type", "text"}, {"text", "Describe this in detail."}}}}}}}};
    auto req = preprocess::ParseChatRequest(j.dump());
    if (!req.ok()) return req.status();
    req->generation.ignore_eos = true;
    // Warm-up (first touch of the weights), then the measured run.
    req->generation.max_new_tokens = 2;
    auto warm = (*pipeline)->Run(*req, preprocess::MediaAccess{});
    if (!warm.ok()) return warm.status();
    req->generation.max_new_tokens = absl::GetFlag(FLAGS_new_tokens);
    auto run = (*pipeline)->Run(*req, preprocess::MediaAccess{});
    if (!run.ok()) return run.status();
    const preprocess::ChatTimings& t = run->result.timings;
    const preprocess::ChatChoice& c = run->result.choices[0];
    const int tiles = t.tiles;
    const int64_t prompt = c.usage.prompt_tokens;
    const int64_t steps = std::max<int64_t>(1, c.usage.completion_tokens - 1);
    nlohmann::ordered_json r;
    r["tiles"] = tiles;
    r["prompt_tokens"] = prompt;
    r["new_tokens"] = c.usage.completion_tokens;
    r["preprocess_ms"] = t.preprocess_ms;
    r["vision_ms"] = t.vision_ms;
    r["vision_ms_per_tile"] = tiles ? t.vision_ms / tiles : 0.0;
    r["prefill_ms"] = t.prefill_ms;
    r["prefill_tokens_per_s"] = prompt / (t.prefill_ms / 1e3);
    r["time_to_first_token_ms"] = t.time_to_first_token_ms;
    r["decode_tokens_per_s"] = steps / (t.decode_ms / 1e3);
    report[key] = r;
    return absl::OkStatus();
  };
  if (!absl::GetFlag(FLAGS_image).empty()) {
    if (auto s = bench_one("image", "image", absl::GetFlag(FLAGS_image)); !s.ok()) return Fail(s);
  }
  if (!absl::GetFlag(FLAGS_video).empty()) {
    if (auto s = bench_one("video", "video", absl::GetFlag(FLAGS_video)); !s.ok()) return Fail(s);
  }
  if (turns > 0 && !absl::GetFlag(FLAGS_image).empty()) {
    // A fresh pipeline with the caches a server has: turn 1 runs cold.
    pipeline->reset();
    options.prefix_cache = true;
    options.media_cache_bytes = int64_t{512} << 20;
    auto with_caches = LocalPipeline::Load(options);
    if (!with_caches.ok()) return Fail(with_caches.status());
    auto t = BenchTurns(**with_caches, absl::GetFlag(FLAGS_image), turns, absl::GetFlag(FLAGS_new_tokens));
    if (!t.ok()) return Fail(t.status());
    report["turns"] = *std::move(t);
  }
  std::printf("%s\n", report.dump(2).c_str());
  return 0;
}

// `bench`: load against --target, or against the three stages started in this process.
int Bench() {
  BenchOptions o;
  o.concurrency = absl::GetFlag(FLAGS_concurrency);
  o.requests = absl::GetFlag(FLAGS_requests);
  o.warmup = absl::GetFlag(FLAGS_warmup);
  o.new_tokens = absl::GetFlag(FLAGS_new_tokens);
  auto mix = ParseMediaMix(absl::GetFlag(FLAGS_mix));
  if (!mix.ok()) return Fail(mix.status());
  o.mix = *mix;
  o.seed = absl::GetFlag(FLAGS_seed) >= 0 ? static_cast<uint64_t>(absl::GetFlag(FLAGS_seed)) : 0;
  const std::string images = absl::GetFlag(FLAGS_image).empty()
                                 ? "examples/media/fruits.jpg,examples/media/aero1.jpg"
                                 : absl::GetFlag(FLAGS_image);
  for (absl::string_view p : absl::StrSplit(images, ',', absl::SkipEmpty())) o.images.emplace_back(p);
  o.video = absl::GetFlag(FLAGS_video).empty() ? "examples/media/Megamind.avi" : absl::GetFlag(FLAGS_video);
  o.unique_media = absl::GetFlag(FLAGS_unique_media);
  o.media_id = absl::GetFlag(FLAGS_media_id);
  o.no_image_splitting = absl::GetFlag(FLAGS_processor_no_split);
  if (!absl::GetFlag(FLAGS_sweep).empty()) {
    auto sweep = ParseSweep(absl::GetFlag(FLAGS_sweep));
    if (!sweep.ok()) return Fail(sweep.status());
    o.sweep = *sweep;
  }
  if (o.concurrency < 1) return Fail(absl::InvalidArgumentError("--concurrency must be >= 1"));
  o.label = absl::GetFlag(FLAGS_label);
  o.api_key = absl::GetFlag(FLAGS_api_key);
  o.duration_s = absl::GetFlag(FLAGS_duration);
  o.watch = absl::GetFlag(FLAGS_watch);
  o.sample_interval_s = absl::GetFlag(FLAGS_sample_interval);
  o.deadline_s = absl::GetFlag(FLAGS_deadline_s);
  GenerationParams generation;
  generation.temperature = 0.0;  // greedy unless the generation flags say otherwise
  ApplyGenerationFlags(&generation);
  grpc_util::GenerationToProto(generation, &o.generation);

  std::unique_ptr<InProcessStages> stages;
  if (absl::GetFlag(FLAGS_in_process)) {
    InProcessStagesOptions so;
    so.model = absl::GetFlag(FLAGS_model);
    if (so.model.empty()) return Fail(absl::InvalidArgumentError("bench --in-process needs --model"));
    so.dtype = absl::GetFlag(FLAGS_dtype);
    so.weights = absl::GetFlag(FLAGS_weights);
    so.threads = absl::GetFlag(FLAGS_threads);
    so.prefix_cache = absl::GetFlag(FLAGS_prefix_cache);
    so.media_cache_bytes = absl::GetFlag(FLAGS_media_cache_bytes);
    // Queues deep enough for every closed-loop worker: the point measures latency, not refusals.
    int most = o.concurrency;
    for (int c : o.sweep) most = std::max(most, c);
    so.max_queue = std::max(16, most);
    so.limits = LimitsFromFlags();
    auto started = InProcessStages::Start(so);
    if (!started.ok()) return Fail(started.status());
    stages = *std::move(started);
    o.target = stages->front_address();
    o.mode = "in-process";
    o.extra["model"] = so.model;
    o.extra["dtype"] = so.dtype;
    o.extra["weights"] = so.weights.empty() ? so.dtype : so.weights;
    o.extra["prefix_cache"] = so.prefix_cache;
    o.extra["media_cache_bytes"] = so.media_cache_bytes;
    o.extra["stage_threads"] = stages->threads();
  } else {
    o.target = absl::GetFlag(FLAGS_target);
    o.http_url = absl::GetFlag(FLAGS_http);
    o.mode = o.http_url.empty() ? "target" : "http";
  }

  const std::string out_path = absl::GetFlag(FLAGS_out);
  std::ofstream out;
  if (!out_path.empty()) {
    out.open(out_path, std::ios::app);
    if (!out) return Fail(absl::InvalidArgumentError(absl::StrCat("cannot open --out '", out_path, "'")));
  }
  auto points = RunBench(o, [&](const nlohmann::ordered_json& j) {
    const std::string line = j.dump();
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
    if (out.is_open()) out << line << "\n" << std::flush;
  });
  if (!points.ok()) return Fail(points.status());
  if (!o.sweep.empty()) std::printf("%s", SweepTable(*points).c_str());
  std::fflush(stdout);
  // Failed requests are counted in the JSON; a point where nothing succeeded is an error.
  for (const auto& p : *points) {
    if (p.value("ok", 0) == 0) return 3;
  }
  return 0;
}

}  // namespace
}  // namespace smolserve::cli

int main(int argc, char** argv) {
  smolserve::TuneMallocForTensors();
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
  av_log_set_level(AV_LOG_ERROR);
  const std::string command = args[1];
  if (command == "prepare") return smolserve::cli::Prepare();
  if (command == "chat") return smolserve::cli::Chat();
  if (command == "run") return smolserve::cli::Run();
  if (command == "make-model") return smolserve::cli::MakeModelCommand();
  if (command == "download") return smolserve::cli::DownloadCommand(args);
  if (command == "bench-local") return smolserve::cli::BenchLocal();
  if (command == "bench") return smolserve::cli::Bench();
  std::fprintf(stderr, "unknown command '%s'\n%s", command.c_str(), smolserve::cli::kUsage);
  return 2;
}
