// The decoder stage: prompt ids + image embeddings in, a stream of tokens out.
#include <cstdio>
#include <fstream>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "common/grpc/server_runner.h"
#include "common/metrics/stage_metrics.h"
#include "common/model/config.h"
#include "common/model/weights.h"
#include "common/runtime/cpu_quota.h"
#include "services/decoder/server/decoder_service.h"

ABSL_FLAG(std::string, host, "0.0.0.0", "Address to listen on.");
ABSL_FLAG(int, port, 50053, "Port to listen on (0: any free port).");
ABSL_FLAG(int, metrics_port, 9103, "Port of the Prometheus /metrics endpoint (0: any free port).");
ABSL_FLAG(std::string, port_file, "", "Write the port actually bound to this file.");
ABSL_FLAG(std::string, model, "", "Model folder or org/name[@revision] in the local HF cache.");
ABSL_FLAG(int, threads, 0, "LibTorch intra-op threads (0: the CPU quota of this process).");
ABSL_FLAG(std::string, dtype, "f32", "f32 or bf16.");
ABSL_FLAG(int, max_queue, 16, "Requests that may wait beyond the running one; more get RESOURCE_EXHAUSTED.");
ABSL_FLAG(int64_t, default_max_new_tokens, 256, "New tokens when the request and generation_config.json say nothing.");
ABSL_FLAG(int64_t, max_new_tokens_limit, 4096, "Largest max_new_tokens accepted.");
ABSL_FLAG(int64_t, max_prompt_tokens, 8192, "Longest prompt accepted, tokens.");
ABSL_FLAG(int, max_message_mb, 256, "Largest gRPC message, MiB.");
ABSL_FLAG(int, shutdown_grace_s, 30, "Seconds in-flight requests get after SIGTERM.");

using namespace smolserve;  // NOLINT

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const int threads = absl::GetFlag(FLAGS_threads) > 0 ? absl::GetFlag(FLAGS_threads) : AvailableCpus();
  at::set_num_threads(threads);
  const std::string dtype = absl::GetFlag(FLAGS_dtype);
  if (dtype != "f32" && dtype != "bf16") {
    std::fprintf(stderr, "error: --dtype must be f32 or bf16\n");
    return 2;
  }
  auto model_dir = model::ResolveModelDir(absl::GetFlag(FLAGS_model));
  if (!model_dir.ok()) {
    std::fprintf(stderr, "error: %s\n", model_dir.status().ToString().c_str());
    return 2;
  }
  decoder::DecoderServiceOptions options;
  options.max_queue = absl::GetFlag(FLAGS_max_queue);
  options.threads = threads;
  options.default_max_new_tokens = absl::GetFlag(FLAGS_default_max_new_tokens);
  options.max_new_tokens_limit = absl::GetFlag(FLAGS_max_new_tokens_limit);
  options.max_prompt_tokens = absl::GetFlag(FLAGS_max_prompt_tokens);
  auto metrics_server = metrics::MetricsServer::Start(
      absl::StrCat(absl::GetFlag(FLAGS_host), ":", absl::GetFlag(FLAGS_metrics_port)));
  if (!metrics_server.ok()) {
    std::fprintf(stderr, "error: %s\n", metrics_server.status().ToString().c_str());
    return 1;
  }
  metrics::StageMetrics stage_metrics(metrics::Stage::kDecoder, (*metrics_server)->registry());
  decoder::DecoderService service(options, &stage_metrics);

  grpc_util::ServerOptions server_options;
  server_options.host = absl::GetFlag(FLAGS_host);
  server_options.port = absl::GetFlag(FLAGS_port);
  server_options.max_message_bytes = absl::GetFlag(FLAGS_max_message_mb) << 20;
  server_options.shutdown_grace = std::chrono::seconds(absl::GetFlag(FLAGS_shutdown_grace_s));
  auto server = grpc_util::ServerRunner::Start(server_options, {&service});
  if (!server.ok()) {
    std::fprintf(stderr, "error: %s\n", server.status().ToString().c_str());
    return 1;
  }
  std::fprintf(stderr, "{\"stage\":\"decoder\",\"event\":\"listening\",\"port\":%d,\"threads\":%d}\n",
               (*server)->port(), threads);
  std::fprintf(stderr, "{\"event\":\"metrics\",\"port\":%d}\n", (*metrics_server)->port());
  if (!absl::GetFlag(FLAGS_port_file).empty()) {
    std::ofstream(absl::GetFlag(FLAGS_port_file) + ".metrics") << (*metrics_server)->port() << "\n";
  }
  if (!absl::GetFlag(FLAGS_port_file).empty()) {
    std::ofstream(absl::GetFlag(FLAGS_port_file)) << (*server)->port() << "\n";
  }

  const auto start = std::chrono::steady_clock::now();
  auto fail = [](const absl::Status& s) {
    std::fprintf(stderr, "error: %s\n", s.ToString().c_str());
    return 1;
  };
  auto config = model::LoadModelConfig(*model_dir);
  if (!config.ok()) return fail(config.status());
  auto weights = model::WeightStore::Open(*model_dir);
  if (!weights.ok()) return fail(weights.status());
  auto dm = std::make_unique<decoder::DecoderModel>();
  decoder::TextModelOptions text_options;
  text_options.dtype = dtype == "bf16" ? at::kBFloat16 : at::kFloat;
  auto text = decoder::TextModel::Create(*config, **weights, text_options);
  if (!text.ok()) return fail(text.status());
  dm->model = *std::move(text);
  auto tokenizer = preprocess::Tokenizer::FromModelDir(*model_dir);
  if (!tokenizer.ok()) return fail(tokenizer.status());
  dm->tokenizer = *std::move(tokenizer);
  auto gen = model::LoadGenerationConfig(*model_dir);
  if (gen.ok()) dm->generation_config = *gen;
  else if (gen.status().code() != absl::StatusCode::kNotFound) return fail(gen.status());
  weights->reset();
  service.SetModel(std::move(dm));
  (*server)->SetServing(true);
  std::fprintf(stderr, "{\"stage\":\"decoder\",\"event\":\"serving\",\"load_ms\":%.0f}\n",
               std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  (*server)->WaitForShutdownSignal([&] { service.Shutdown(); });
  return 0;
}
