// The decoder stage: prompt ids + image embeddings in, a stream of tokens out.
#include <chrono>
#include <cstdio>
#include <future>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "common/hub/hub_download.h"
#include "common/model/model_revision.h"
#include "common/runtime/dtype.h"
#include "nlohmann/json.hpp"
#include "common/grpc/stage_runtime.h"
#include "common/runtime/malloc_tuning.h"
#include "common/model/config.h"
#include "common/model/weights.h"
#include "common/runtime/cpu_quota.h"
#include "services/decoder/server/decoder_service.h"

ABSL_FLAG(std::string, host, "0.0.0.0", "Address to listen on.");
ABSL_FLAG(int, port, 50053, "Port to listen on (0: any free port).");
ABSL_FLAG(int, metrics_port, 9103, "Port of the Prometheus /metrics endpoint (0: any free port).");
ABSL_FLAG(std::string, port_file, "", "Write the ports actually bound to this file (and FILE.metrics).");
ABSL_FLAG(std::string, model, "", "Model folder or org/name[@revision] in the local HF cache.");
ABSL_FLAG(bool, download_only, false,
          "Resolve --model (downloading org/name[@revision] into the Hugging Face cache when it "
          "is missing and HF_HUB_OFFLINE is not set), print its folder and exit: the chart's "
          "model-download Job and initContainer run the stage image this way.");
ABSL_FLAG(int, threads, 0, "LibTorch intra-op threads (0: the CPU quota of this process).");
ABSL_FLAG(std::string, dtype, "auto",
          "auto (per CPU: common/runtime/dtype.h), f32 (exact) or bf16.");
ABSL_FLAG(std::string, weights, "",
          "Weights the decode steps read: empty (the --dtype), f32, bf16 or int8 (per-channel "
          "int8 linear layers quantised at load, float32 compute: a quarter of the bytes per "
          "token).");
ABSL_FLAG(int, max_queue, 64, "Requests that may wait for a running slot or KV budget; more get RESOURCE_EXHAUSTED.");
ABSL_FLAG(int, max_running, 16, "Sequences decoded together (continuous batching).");
ABSL_FLAG(int64_t, prefill_chunk_tokens, 256, "Prompt tokens prefilled between two decode steps of the running batch.");
ABSL_FLAG(int64_t, kv_cache_budget_mb, 2048, "KV cache memory of all running sequences, MiB; a request that alone needs more gets RESOURCE_EXHAUSTED, others wait.");
ABSL_FLAG(std::string, model_revision, "",
          "Model revision compared with the vision stage's (empty: SHA-256 of config.json and the "
          "weight files, computed at load, as the vision stage does).");
ABSL_FLAG(bool, prefix_cache, true, "Reuse the KV cache of earlier prompts' identical beginnings (same tokens and images), kept within --kv_cache_budget_mb.");
ABSL_FLAG(int64_t, default_max_new_tokens, 256, "New tokens when the request and generation_config.json say nothing.");
ABSL_FLAG(int64_t, max_new_tokens_limit, 4096, "Largest max_new_tokens accepted.");
ABSL_FLAG(int64_t, max_prompt_tokens, 8192, "Longest prompt accepted, tokens.");
ABSL_FLAG(int, max_stop_strings, 4, "Most stop strings per request.");
ABSL_FLAG(int, max_stop_string_bytes, 256, "Longest stop string accepted, bytes.");
ABSL_FLAG(int, max_message_mb, 256, "Largest gRPC message, MiB.");
ABSL_FLAG(int, shutdown_grace_s, 30, "Seconds in-flight requests get after SIGTERM.");
ABSL_FLAG(std::string, tls_cert, "", "PEM certificate (chain): serve TLS.");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert.");
ABSL_FLAG(std::string, tls_ca, "", "PEM CA: require client certificates signed by it (mutual TLS; only the front holds one).");
ABSL_FLAG(bool, reflection, false, "Serve gRPC server reflection.");
ABSL_FLAG(int, health_port, -1, "Plaintext port serving only gRPC health, for probes that cannot do TLS (-1: none).");

using namespace smolserve;  // NOLINT
using grpc_util::ExitWithError;

int main(int argc, char** argv) {
  TuneMallocForTensors();
  absl::ParseCommandLine(argc, argv);
  const int threads = absl::GetFlag(FLAGS_threads) > 0 ? absl::GetFlag(FLAGS_threads) : AvailableCpus();
  at::set_num_threads(threads);
  const absl::StatusOr<decoder::TextModelOptions> model_options =
      decoder::DecoderOptionsFromFlags(absl::GetFlag(FLAGS_dtype), absl::GetFlag(FLAGS_weights));
  if (!model_options.ok()) return ExitWithError(model_options.status(), 2);
  auto model_dir = hub::ResolveOrDownloadModel(absl::GetFlag(FLAGS_model));
  if (!model_dir.ok()) return ExitWithError(model_dir.status(), 2);
  if (absl::GetFlag(FLAGS_download_only)) {
    std::printf("%s\n", model_dir->c_str());
    return 0;
  }

  grpc_util::StageRuntimeOptions rt_options;
  rt_options.name = "decoder";
  rt_options.stage = metrics::Stage::kDecoder;
  rt_options.server.host = absl::GetFlag(FLAGS_host);
  rt_options.server.port = absl::GetFlag(FLAGS_port);
  rt_options.server.max_message_bytes = absl::GetFlag(FLAGS_max_message_mb) << 20;
  rt_options.server.shutdown_grace = std::chrono::seconds(absl::GetFlag(FLAGS_shutdown_grace_s));
  rt_options.server.tls = {absl::GetFlag(FLAGS_tls_cert), absl::GetFlag(FLAGS_tls_key),
                           absl::GetFlag(FLAGS_tls_ca)};
  rt_options.server.reflection = absl::GetFlag(FLAGS_reflection);
  rt_options.server.health_port = absl::GetFlag(FLAGS_health_port);
  rt_options.metrics_port = absl::GetFlag(FLAGS_metrics_port);
  rt_options.port_file = absl::GetFlag(FLAGS_port_file);
  auto runtime = grpc_util::StageRuntime::Create(rt_options);
  if (!runtime.ok()) return ExitWithError(runtime.status());

  decoder::DecoderServiceOptions options;
  options.max_queue = absl::GetFlag(FLAGS_max_queue);
  options.threads = threads;
  options.max_running = absl::GetFlag(FLAGS_max_running);
  options.prefill_chunk_tokens = absl::GetFlag(FLAGS_prefill_chunk_tokens);
  options.kv_cache_budget_bytes = absl::GetFlag(FLAGS_kv_cache_budget_mb) << 20;
  options.prefix_cache = absl::GetFlag(FLAGS_prefix_cache);
  options.limits.default_max_new_tokens = absl::GetFlag(FLAGS_default_max_new_tokens);
  options.limits.generation.max_new_tokens = absl::GetFlag(FLAGS_max_new_tokens_limit);
  options.limits.generation.max_stop_strings = absl::GetFlag(FLAGS_max_stop_strings);
  options.limits.generation.max_stop_string_bytes = absl::GetFlag(FLAGS_max_stop_string_bytes);
  options.limits.max_prompt_tokens = absl::GetFlag(FLAGS_max_prompt_tokens);
  decoder::DecoderService service(options, &(*runtime)->metrics());
  if (auto s = (*runtime)->Serve({&service}); !s.ok()) return ExitWithError(s);

  // Load while the server already answers health checks (NOT_SERVING until done). The
  // revision is hashed from the files meanwhile, as the vision stage does (about 0.5 s per GB).
  const auto start = std::chrono::steady_clock::now();
  std::string revision = absl::GetFlag(FLAGS_model_revision);
  std::future<absl::StatusOr<std::string>> computed_revision;
  if (revision.empty()) {
    computed_revision = std::async(std::launch::async, [dir = *model_dir] {
      return model::ComputeModelRevision(dir);
    });
  }
  auto dm = decoder::LoadDecoderModel(*model_dir, *model_options);
  if (!dm.ok()) return ExitWithError(dm.status());
  if (computed_revision.valid()) {
    absl::StatusOr<std::string> r = computed_revision.get();
    if (!r.ok()) return ExitWithError(r.status());
    revision = *std::move(r);
  }
  const nlohmann::json line = {{"stage", "decoder"}, {"event", "model_revision"},
                               {"revision", revision}, {"dtype", DtypeName(model_options->dtype)},
                               {"weights", decoder::WeightsName(*model_options)},
                               {"prefix_cache", options.prefix_cache}};
  std::fprintf(stderr, "%s\n", line.dump().c_str());
  if (auto s = service.SetModel(*std::move(dm), revision); !s.ok()) return ExitWithError(s);
  (*runtime)->SetServing(
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  (*runtime)->Wait([&] { service.Shutdown(); });
  return 0;
}
