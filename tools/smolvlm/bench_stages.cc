#include "tools/smolvlm/bench_stages.h"

#include <chrono>
#include <cstdio>

#include <ATen/ATen.h>
#include <prometheus/registry.h>

#include "absl/strings/str_cat.h"
#include "common/hub/hub_download.h"
#include "common/runtime/dtype.h"
#include "common/grpc/server_runner.h"
#include "common/metrics/stage_metrics.h"
#include "common/model/config.h"
#include "common/model/weights.h"
#include "common/runtime/cpu_quota.h"
#include "common/status/status_macros.h"
#include "services/decoder/server/decoder_service.h"
#include "services/preprocess/server/front.h"
#include "common/model/model_revision.h"
#include "services/vision/server/vision_service.h"

namespace smolserve::cli {

using Clock = std::chrono::steady_clock;

// Members are destroyed in reverse order of declaration; the destructor stops the servers
// explicitly first (front, then the two it calls), each before its service.
struct InProcessStages::Impl {
  std::string model_dir;
  int threads = 0;
  double load_ms = 0;
  std::string front_address;

  prometheus::Registry vision_registry, decoder_registry, front_registry;
  std::unique_ptr<metrics::StageMetrics> vision_metrics, decoder_metrics, front_metrics;
  std::unique_ptr<vision::VisionService> vision;
  std::unique_ptr<decoder::DecoderService> decoder;
  std::unique_ptr<preprocess::Front> front;
  std::unique_ptr<grpc_util::ServerRunner> vision_server, decoder_server, front_server;

  ~Impl() {
    if (front) front->Shutdown();
    front_server.reset();
    front.reset();
    if (vision) vision->Shutdown();
    if (decoder) decoder->Shutdown();
    vision_server.reset();
    decoder_server.reset();
    vision.reset();
    decoder.reset();
  }
};

namespace {

grpc_util::ServerOptions LoopbackServer() {
  grpc_util::ServerOptions o;
  o.host = "127.0.0.1";
  o.port = 0;
  o.shutdown_grace = std::chrono::milliseconds(0);
  return o;
}

std::string Address(const grpc_util::ServerRunner& r) { return absl::StrCat("127.0.0.1:", r.port()); }

// As services/vision/main.cc: service first (answers health, NOT_SERVING), then the model.
absl::Status StartVision(InProcessStages::Impl& s, const model::ModelConfig& config, at::ScalarType dtype,
                         const InProcessStagesOptions& o) {
  vision::VisionServiceOptions options;
  options.max_queue = o.max_queue;
  options.threads = s.threads;
  s.vision = std::make_unique<vision::VisionService>(options, s.vision_metrics.get());
  ASSIGN_OR_RETURN(s.vision_server, grpc_util::ServerRunner::Start(LoopbackServer(), {s.vision.get()}));
  ASSIGN_OR_RETURN(auto weights, model::WeightStore::Open(s.model_dir));
  vision::VisionOptions vision_options;
  vision_options.dtype = dtype;
  ASSIGN_OR_RETURN(auto model, vision::VisionModel::Create(config, *weights, vision_options));
  // The embedding cache keys on the checkpoint's revision, hashed from the files as the
  // stage does without --model_revision.
  ASSIGN_OR_RETURN(const std::string revision, model::ComputeModelRevision(s.model_dir));
  RETURN_IF_ERROR(s.vision->SetModel(std::move(model), revision));
  s.vision_server->SetServing(true);
  return absl::OkStatus();
}

// As services/decoder/main.cc.
absl::Status StartDecoder(InProcessStages::Impl& s, const decoder::TextModelOptions& model_options,
                          const InProcessStagesOptions& o) {
  decoder::DecoderServiceOptions options;
  options.max_queue = o.max_queue;
  options.threads = s.threads;
  options.limits.max_prompt_tokens = o.limits.max_prompt_tokens;
  options.prefix_cache = o.prefix_cache;
  s.decoder = std::make_unique<decoder::DecoderService>(options, s.decoder_metrics.get());
  ASSIGN_OR_RETURN(s.decoder_server, grpc_util::ServerRunner::Start(LoopbackServer(), {s.decoder.get()}));
  ASSIGN_OR_RETURN(auto dm, decoder::LoadDecoderModel(s.model_dir, model_options));
  ASSIGN_OR_RETURN(const std::string revision, model::ComputeModelRevision(s.model_dir));
  RETURN_IF_ERROR(s.decoder->SetModel(std::move(dm), revision));
  s.decoder_server->SetServing(true);
  return absl::OkStatus();
}

// As services/preprocess/main.cc (no server-side media paths: the client sends bytes; no HTTP).
absl::Status StartFront(InProcessStages::Impl& s, const InProcessStagesOptions& o) {
  preprocess::FrontOptions options;
  options.preprocessor.model_dir = s.model_dir;
  options.preprocessor.limits = o.limits;
  options.workers = o.front_workers;
  if (o.media_cache_bytes >= 0) options.media_cache_bytes = o.media_cache_bytes;
  options.max_queue = std::max(32, 2 * o.max_queue);
  options.pipeline.media.allow_paths = false;
  options.pipeline.media.base_dir = ".";
  options.pipeline.log_requests = false;
  options.vision_target = Address(*s.vision_server);
  options.decoder_target = Address(*s.decoder_server);
  options.channel.max_message_bytes = LoopbackServer().max_message_bytes;
  ASSIGN_OR_RETURN(s.front, preprocess::Front::Create(options, s.front_metrics.get()));
  ASSIGN_OR_RETURN(s.front_server,
                   grpc_util::ServerRunner::Start(LoopbackServer(), {s.front->grpc_service()}));
  s.front_server->SetServing(true);
  s.front_address = Address(*s.front_server);
  return absl::OkStatus();
}

}  // namespace

InProcessStages::InProcessStages(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
InProcessStages::~InProcessStages() = default;

const std::string& InProcessStages::front_address() const { return impl_->front_address; }
int InProcessStages::threads() const { return impl_->threads; }
double InProcessStages::load_ms() const { return impl_->load_ms; }

absl::StatusOr<std::unique_ptr<InProcessStages>> InProcessStages::Start(const InProcessStagesOptions& o) {
  ASSIGN_OR_RETURN(const at::ScalarType vision_dtype, ResolveDtype(o.dtype, DtypeStage::kVision));
  ASSIGN_OR_RETURN(const decoder::TextModelOptions decoder_options,
                   decoder::DecoderOptionsFromFlags(o.dtype, o.weights));
  const auto start = Clock::now();
  auto impl = std::make_unique<Impl>();
  impl->threads = o.threads > 0 ? o.threads : AvailableCpus();
  ASSIGN_OR_RETURN(impl->model_dir, hub::ResolveOrDownloadModel(o.model));
  impl->vision_metrics = std::make_unique<metrics::StageMetrics>(metrics::Stage::kVision, impl->vision_registry);
  impl->decoder_metrics = std::make_unique<metrics::StageMetrics>(metrics::Stage::kDecoder, impl->decoder_registry);
  impl->front_metrics = std::make_unique<metrics::StageMetrics>(metrics::Stage::kPreprocess, impl->front_registry);
  ASSIGN_OR_RETURN(const model::ModelConfig config, model::LoadModelConfig(impl->model_dir));
  RETURN_IF_ERROR(StartVision(*impl, config, vision_dtype, o));
  RETURN_IF_ERROR(StartDecoder(*impl, decoder_options, o));
  RETURN_IF_ERROR(StartFront(*impl, o));
  impl->load_ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  std::fprintf(stderr, "[bench] in-process stages: front %s, vision %s, decoder %s, %d threads each, loaded in %.0f ms\n",
               impl->front_address.c_str(), Address(*impl->vision_server).c_str(),
               Address(*impl->decoder_server).c_str(), impl->threads, impl->load_ms);
  return std::unique_ptr<InProcessStages>(new InProcessStages(std::move(impl)));
}

}  // namespace smolserve::cli
