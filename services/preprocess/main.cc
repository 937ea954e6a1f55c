// The preprocess stage: the public front. Decodes media, renders the prompt, and
// orchestrates the vision and decoder stages.
#include <chrono>

extern "C" {
#include <libavutil/log.h>
}

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "common/grpc/server_runner.h"
#include "common/grpc/stage_runtime.h"
#include "common/runtime/malloc_tuning.h"
#include "common/model/config.h"
#include "services/preprocess/server/front_service.h"

ABSL_FLAG(std::string, host, "0.0.0.0", "Address to listen on.");
ABSL_FLAG(int, port, 50051, "Port to listen on (0: any free port).");
ABSL_FLAG(int, metrics_port, 9101, "Port of the Prometheus /metrics endpoint (0: any free port).");
ABSL_FLAG(std::string, port_file, "", "Write the port actually bound to this file.");
ABSL_FLAG(std::string, model, "", "Model folder or org/name[@revision] (tokenizer, chat template, processor files).");
ABSL_FLAG(std::string, vision_target, "127.0.0.1:50052", "gRPC target of the vision stage (e.g. dns:///vision:50052 or ipv4:a:1,b:2).");
ABSL_FLAG(std::string, decoder_target, "127.0.0.1:50053", "gRPC target of the decoder stage.");
ABSL_FLAG(int, workers, 32, "Requests orchestrated at once (threads that mostly wait on the vision and decoder stages).");
ABSL_FLAG(int, max_queue, 32, "Requests that may wait beyond those; more get RESOURCE_EXHAUSTED.");
ABSL_FLAG(std::string, media_root, "", "Allow server-side media paths under this folder (off when empty).");
ABSL_FLAG(int64_t, max_encoded_bytes, 64ll << 20, "Largest media item, bytes.");
ABSL_FLAG(int64_t, max_image_pixels, 40'000'000, "Largest decoded image, width*height (checked from the header).");
ABSL_FLAG(int, max_images, 16, "Most images per request.");
ABSL_FLAG(int, max_videos, 4, "Most videos per request.");
ABSL_FLAG(double, max_video_seconds, 600, "Longest video, seconds.");
ABSL_FLAG(int, max_video_frames, 64, "Most frames sampled from one video.");
ABSL_FLAG(int, max_prompt_tokens, 8192, "Longest prompt after expansion, tokens.");
ABSL_FLAG(int, max_message_mb, 256, "Largest gRPC message, MiB.");
ABSL_FLAG(int64_t, media_cache_bytes, 256ll << 20,
          "Bound of the media cache (preprocessing metadata + image embeddings of media seen "
          "before, by content and by client media id), bytes; 0 disables it.");
ABSL_FLAG(int, shutdown_grace_s, 30, "Seconds in-flight requests get after SIGTERM.");

using namespace smolserve;  // NOLINT
using grpc_util::ExitWithError;

int main(int argc, char** argv) {
  TuneMallocForTensors();
  absl::ParseCommandLine(argc, argv);
  av_log_set_level(AV_LOG_ERROR);
  auto model_dir = model::ResolveModelDir(absl::GetFlag(FLAGS_model));
  if (!model_dir.ok()) return ExitWithError(model_dir.status(), 2);

  preprocess::PreprocessorOptions pre;
  pre.model_dir = *model_dir;
  pre.limits.max_encoded_bytes = absl::GetFlag(FLAGS_max_encoded_bytes);
  pre.limits.max_image_pixels = absl::GetFlag(FLAGS_max_image_pixels);
  pre.limits.max_images_per_request = absl::GetFlag(FLAGS_max_images);
  pre.limits.max_videos_per_request = absl::GetFlag(FLAGS_max_videos);
  pre.limits.max_video_duration_s = absl::GetFlag(FLAGS_max_video_seconds);
  pre.limits.max_video_sampled_frames = absl::GetFlag(FLAGS_max_video_frames);
  pre.limits.max_prompt_tokens = absl::GetFlag(FLAGS_max_prompt_tokens);
  auto preprocessor = preprocess::Preprocessor::Create(pre);
  if (!preprocessor.ok()) return ExitWithError(preprocessor.status());

  grpc_util::StageRuntimeOptions rt_options;
  rt_options.name = "preprocess";
  rt_options.stage = metrics::Stage::kPreprocess;
  rt_options.server.host = absl::GetFlag(FLAGS_host);
  rt_options.server.port = absl::GetFlag(FLAGS_port);
  rt_options.server.max_message_bytes = absl::GetFlag(FLAGS_max_message_mb) << 20;
  rt_options.server.shutdown_grace = std::chrono::seconds(absl::GetFlag(FLAGS_shutdown_grace_s));
  rt_options.metrics_port = absl::GetFlag(FLAGS_metrics_port);
  rt_options.port_file = absl::GetFlag(FLAGS_port_file);
  auto runtime = grpc_util::StageRuntime::Create(rt_options);
  if (!runtime.ok()) return ExitWithError(runtime.status());

  preprocess::FrontServiceOptions options;
  options.workers = absl::GetFlag(FLAGS_workers);
  options.max_queue = absl::GetFlag(FLAGS_max_queue);
  options.media_cache_bytes = absl::GetFlag(FLAGS_media_cache_bytes);
  options.media.allow_paths = !absl::GetFlag(FLAGS_media_root).empty();
  options.media.allowed_root = absl::GetFlag(FLAGS_media_root);
  options.media.base_dir = absl::GetFlag(FLAGS_media_root).empty() ? "." : absl::GetFlag(FLAGS_media_root);
  const int max_bytes = rt_options.server.max_message_bytes;
  preprocess::FrontService service(options, *std::move(preprocessor),
                                   grpc_util::MakeChannel(absl::GetFlag(FLAGS_vision_target), max_bytes),
                                   grpc_util::MakeChannel(absl::GetFlag(FLAGS_decoder_target), max_bytes),
                                   &(*runtime)->metrics());
  if (auto s = (*runtime)->Serve({&service}); !s.ok()) return ExitWithError(s);
  (*runtime)->SetServing(0);
  (*runtime)->Wait([&] { service.Shutdown(); });
  return 0;
}
