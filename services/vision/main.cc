// The vision stage: pixel tiles in, image embeddings out.
#include <chrono>
#include <cstdio>
#include <future>
#include <string>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "common/hub/hub_download.h"
#include "common/runtime/dtype.h"
#include "common/grpc/stage_runtime.h"
#include "common/runtime/malloc_tuning.h"
#include "common/model/config.h"
#include "common/model/weights.h"
#include "common/runtime/cpu_quota.h"
#include "common/model/model_revision.h"
#include "services/vision/server/vision_service.h"

ABSL_FLAG(std::string, host, "0.0.0.0", "Address to listen on.");
ABSL_FLAG(int, port, 50052, "Port to listen on (0: any free port).");
ABSL_FLAG(int, metrics_port, 9102, "Port of the Prometheus /metrics endpoint (0: any free port).");
ABSL_FLAG(std::string, port_file, "", "Write the ports actually bound to this file (and FILE.metrics).");
ABSL_FLAG(std::string, model, "", "Model folder or org/name[@revision] in the local HF cache.");
ABSL_FLAG(bool, download_only, false,
          "Resolve --model (downloading org/name[@revision] into the Hugging Face cache when it "
          "is missing and HF_HUB_OFFLINE is not set), print its folder and exit: the chart's "
          "model-download Job and initContainer run the stage image this way.");
ABSL_FLAG(int, threads, 0, "LibTorch intra-op threads (0: the CPU quota of this process).");
ABSL_FLAG(std::string, dtype, "auto",
          "auto (per CPU: common/runtime/dtype.h), f32 (exact) or bf16.");
ABSL_FLAG(int, max_queue, 16,
          "Requests that may wait for the encoder (with tiles not yet in a model call); more get "
          "RESOURCE_EXHAUSTED.");
ABSL_FLAG(int64_t, max_tiles, 1024, "Most tiles in one Encode request.");
ABSL_FLAG(int64_t, max_tile_side, 0, "Largest tile side accepted, pixels (0: the model's tile size).");
ABSL_FLAG(int64_t, max_queued_tiles, 1024,
          "Tiles that may wait for the encoder (cache hits do not count); more get "
          "RESOURCE_EXHAUSTED. At least --max_tiles.");
ABSL_FLAG(int64_t, max_batch_tiles, 8,
          "Most tiles, from any number of requests, in one encoder call; larger requests are "
          "split.");
ABSL_FLAG(double, batch_wait_ms, 5,
          "How long after the oldest waiting request arrived the encoder waits for more tiles "
          "before running a batch that is not full (0: take what is queued).");
ABSL_FLAG(int64_t, embedding_cache_bytes, int64_t{512} << 20,
          "Byte budget of the per-tile embedding cache (0: off).");
ABSL_FLAG(std::string, model_revision, "",
          "Model revision in embedding cache keys (empty: SHA-256 of config.json and the weight "
          "files, computed at load).");
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
  const absl::StatusOr<at::ScalarType> dtype =
      ResolveDtype(absl::GetFlag(FLAGS_dtype), DtypeStage::kVision);
  if (!dtype.ok()) return ExitWithError(dtype.status(), 2);
  auto model_dir = hub::ResolveOrDownloadModel(absl::GetFlag(FLAGS_model));
  if (!model_dir.ok()) return ExitWithError(model_dir.status(), 2);
  if (absl::GetFlag(FLAGS_download_only)) {
    std::printf("%s\n", model_dir->c_str());
    return 0;
  }

  grpc_util::StageRuntimeOptions rt_options;
  rt_options.name = "vision";
  rt_options.stage = metrics::Stage::kVision;
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

  vision::VisionServiceOptions service_options;
  service_options.max_queue = absl::GetFlag(FLAGS_max_queue);
  service_options.max_tiles_per_request = absl::GetFlag(FLAGS_max_tiles);
  service_options.max_tile_side = absl::GetFlag(FLAGS_max_tile_side);
  service_options.max_queued_tiles = absl::GetFlag(FLAGS_max_queued_tiles);
  service_options.max_batch_tiles = absl::GetFlag(FLAGS_max_batch_tiles);
  service_options.batch_wait_ms = absl::GetFlag(FLAGS_batch_wait_ms);
  service_options.embedding_cache_bytes = absl::GetFlag(FLAGS_embedding_cache_bytes);
  service_options.threads = threads;
  if (service_options.max_queue < 1 || service_options.max_batch_tiles < 1 ||
      service_options.batch_wait_ms < 0 || service_options.embedding_cache_bytes < 0) {
    return ExitWithError(absl::InvalidArgumentError(
                             "--max_queue and --max_batch_tiles must be >= 1, --batch_wait_ms "
                             "and --embedding_cache_bytes >= 0"),
                         2);
  }
  if (service_options.max_queued_tiles < service_options.max_tiles_per_request) {
    return ExitWithError(absl::InvalidArgumentError(absl::StrCat(
                             "--max_queued_tiles (", service_options.max_queued_tiles,
                             ") must be at least --max_tiles (",
                             service_options.max_tiles_per_request, ")")),
                         2);
  }
  vision::VisionService service(service_options, &(*runtime)->metrics());
  if (auto s = (*runtime)->Serve({&service}); !s.ok()) return ExitWithError(s);

  // Load while the server already answers health checks (NOT_SERVING until done). The
  // revision is hashed from the files meanwhile (about 0.5 s per GB).
  const auto start = std::chrono::steady_clock::now();
  std::string revision = absl::GetFlag(FLAGS_model_revision);
  const bool revision_from_flag = !revision.empty();
  std::future<absl::StatusOr<std::string>> computed_revision;
  if (!revision_from_flag) {
    computed_revision = std::async(std::launch::async, [dir = *model_dir] {
      return model::ComputeModelRevision(dir);
    });
  }
  auto config = model::LoadModelConfig(*model_dir);
  if (!config.ok()) return ExitWithError(config.status());
  auto weights = model::WeightStore::Open(*model_dir);
  if (!weights.ok()) return ExitWithError(weights.status());
  vision::VisionOptions vision_options;
  vision_options.dtype = *dtype;
  auto model = vision::VisionModel::Create(*config, **weights, vision_options);
  if (!model.ok()) return ExitWithError(model.status());
  weights->reset();  // the model holds its own copies
  if (!revision_from_flag) {
    absl::StatusOr<std::string> r = computed_revision.get();
    if (!r.ok()) return ExitWithError(r.status());
    revision = *std::move(r);
  }
  std::fprintf(stderr,
               "{\"stage\":\"vision\",\"event\":\"model_revision\",\"revision\":\"%s\","
               "\"source\":\"%s\",\"embedding_cache_bytes\":%lld,\"max_batch_tiles\":%lld,"
               "\"batch_wait_ms\":%.1f}\n",
               revision.c_str(), revision_from_flag ? "flag" : "files",
               static_cast<long long>(service_options.embedding_cache_bytes),
               static_cast<long long>(service_options.max_batch_tiles),
               service_options.batch_wait_ms);
  if (auto s = service.SetModel(*std::move(model), revision); !s.ok()) return ExitWithError(s);
  (*runtime)->SetServing(
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  (*runtime)->Wait([&] { service.Shutdown(); });
  return 0;
}
