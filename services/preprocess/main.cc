// The preprocess stage: the public front. Decodes media, renders the prompt, orchestrates the
// vision and decoder stages, and serves the gRPC Front API and the OpenAI-compatible HTTP API.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <regex>

extern "C" {
#include <libavutil/log.h>
}

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_split.h"
#include "common/hub/hub_download.h"
#include "common/cache/sha256.h"
#include "common/grpc/server_runner.h"
#include "common/grpc/stage_runtime.h"
#include "common/model/config.h"
#include "common/runtime/malloc_tuning.h"
#include "services/preprocess/core/media_key.h"
#include "services/preprocess/server/front.h"

ABSL_FLAG(std::string, host, "0.0.0.0", "Address to listen on (gRPC and HTTP).");
ABSL_FLAG(int, port, 50051, "gRPC port (0: any free port).");
ABSL_FLAG(int, metrics_port, 9101, "Port of the Prometheus /metrics endpoint (0: any free port).");
ABSL_FLAG(int, health_port, -1, "Plaintext port serving only gRPC health, for probes that cannot do TLS (-1: none).");
ABSL_FLAG(std::string, port_file, "", "Write the ports actually bound to this file (and FILE.metrics, FILE.http).");
ABSL_FLAG(std::string, model, "", "Model folder or org/name[@revision] (tokenizer, chat template, processor files).");
ABSL_FLAG(bool, download_only, false,
          "Resolve --model (downloading org/name[@revision] into the Hugging Face cache when it "
          "is missing and HF_HUB_OFFLINE is not set), print its folder and exit: the chart's "
          "model-download Job and initContainer run the stage image this way.");
ABSL_FLAG(std::string, served_model_name, "", "Model id(s) of the HTTP API, comma-separated (default: --model).");
ABSL_FLAG(std::string, vision_target, "127.0.0.1:50052", "gRPC target of the vision stage (e.g. dns:///vision:50052 or ipv4:a:1,b:2).");
ABSL_FLAG(std::string, decoder_target, "127.0.0.1:50053", "gRPC target of the decoder stage.");
ABSL_FLAG(int, workers, 32, "Requests orchestrated at once (threads that mostly wait on the vision and decoder stages).");
ABSL_FLAG(int, max_queue, 32, "Requests that may wait beyond those; more get RESOURCE_EXHAUSTED / HTTP 429.");
ABSL_FLAG(int, conversation_threads, 16, "Conversations of batch requests run at once.");
ABSL_FLAG(double, default_deadline_s, 600, "Deadline of requests that set none (and cap of longer ones), seconds.");
ABSL_FLAG(std::string, media_root, "", "Allow server-side media paths (and file:// URLs) under this folder (off when empty).");
ABSL_FLAG(bool, media_url_fetch, true, "Fetch http(s) media URLs (public addresses only unless --media_url_allow).");
ABSL_FLAG(std::string, media_url_allow, "", "Comma-separated hosts (a.example.com, *.example.com) or CIDRs (10.0.0.0/8) media URLs may also reach.");
ABSL_FLAG(int, media_url_max_redirects, 3, "Redirects followed per media URL.");
ABSL_FLAG(double, media_url_timeout_s, 30, "Time limit of one media download, seconds.");
ABSL_FLAG(int64_t, max_encoded_bytes, 64ll << 20, "Largest media item, bytes.");
ABSL_FLAG(int64_t, max_image_pixels, 40'000'000, "Largest decoded image, width*height (checked from the header).");
ABSL_FLAG(int, max_images, 16, "Most images per request.");
ABSL_FLAG(int, max_videos, 4, "Most videos per request.");
ABSL_FLAG(double, max_video_seconds, 600, "Longest video, seconds.");
ABSL_FLAG(int, max_video_frames, 64, "Most frames sampled from one video.");
ABSL_FLAG(int, max_prompt_tokens, 8192, "Longest prompt after expansion, tokens.");
ABSL_FLAG(int64_t, max_decoded_pixels, 2'000'000'000, "Pixels decoded for one request (every image and video frame, width*height), checked while decoding.");
ABSL_FLAG(int, max_tiles, 256, "Most tiles and video frames in one request.");
ABSL_FLAG(int, max_tile_side, 0, "Largest tile side (processor max_image_size) a request may ask for (0: the model's).");
ABSL_FLAG(int, max_longest_edge, 4096, "Largest resize target (processor size.longest_edge) a request may ask for.");
ABSL_FLAG(int64_t, max_media_memory_mb, 2048, "Pixel memory of all requests in flight, MiB (beyond it requests get 429 / RESOURCE_EXHAUSTED; 0: unbounded).");
ABSL_FLAG(int, max_conversations, 16, "Most conversations in one request.");
ABSL_FLAG(int64_t, max_text_bytes, 1 << 20, "Most text in one request (all messages), bytes.");
ABSL_FLAG(int64_t, max_new_tokens_limit, 4096, "Largest max_new_tokens accepted.");
ABSL_FLAG(int, max_stop_strings, 4, "Most stop strings per request.");
ABSL_FLAG(int, max_stop_string_bytes, 256, "Longest stop string, bytes.");
ABSL_FLAG(int, max_message_mb, 256, "Largest gRPC message, MiB.");
ABSL_FLAG(int64_t, media_cache_bytes, 256ll << 20,
          "Bound of the media cache (preprocessing metadata + image embeddings of media seen "
          "before, by content and by client media id, per tenant), bytes; 0 disables it.");
ABSL_FLAG(int, http_port, 8000, "Port of the OpenAI-compatible HTTP API (0: any free port, -1: no HTTP API).");
ABSL_FLAG(int, http_threads, 2, "HTTP I/O threads.");
ABSL_FLAG(int64_t, http_max_body_bytes, 64ll << 20, "Largest HTTP request body, bytes (413 beyond).");
ABSL_FLAG(int, http_max_connections, 512, "Most open HTTP connections.");
ABSL_FLAG(int, http_max_concurrent, 64, "Most chat requests in flight through HTTP (429 beyond).");
ABSL_FLAG(double, http_request_timeout_s, 30, "Time a client has to send a whole request, seconds (408 beyond).");
ABSL_FLAG(double, http_idle_timeout_s, 30, "Idle keep-alive HTTP connections are closed after this, seconds.");
ABSL_FLAG(std::string, tls_cert, "", "PEM certificate (chain): TLS on the public gRPC and HTTP ports.");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert.");
ABSL_FLAG(std::string, tls_client_ca, "", "PEM CA: the public ports require client certificates signed by it.");
ABSL_FLAG(std::string, downstream_tls_ca, "", "PEM CA of the vision and decoder stages' certificates (TLS to them).");
ABSL_FLAG(std::string, downstream_tls_cert, "", "PEM client certificate presented to the vision and decoder stages (mutual TLS).");
ABSL_FLAG(std::string, downstream_tls_key, "", "PEM key of --downstream_tls_cert.");
ABSL_FLAG(std::string, api_keys_file, "", "API keys, one per line ('key' or 'key tenant'); empty: no authentication.");
ABSL_FLAG(int, tenant_max_concurrent, 0, "Requests in flight per tenant (0: unlimited).");
ABSL_FLAG(int, tenant_requests_per_minute, 0, "Requests per minute per tenant (0: unlimited).");
ABSL_FLAG(bool, reflection, false, "Serve gRPC server reflection on the public port.");
ABSL_FLAG(int, shutdown_grace_s, 30, "Seconds in-flight requests get after SIGTERM.");

using namespace smolserve;  // NOLINT
using grpc_util::ExitWithError;

namespace {

std::vector<std::string> SplitList(const std::string& s) {
  std::vector<std::string> out;
  for (absl::string_view part : absl::StrSplit(s, ',', absl::SkipWhitespace())) {
    out.emplace_back(absl::StripAsciiWhitespace(part));
  }
  return out;
}

// The revision the HTTP API reports: the Hub commit of a snapshot folder, else the model's
// identity (its config files' SHA-256).
std::string ServedRevision(const std::string& model_dir, const cache::Digest& identity) {
  static const std::regex kSnapshot(".*/snapshots/([0-9a-f]{40})/?$");
  std::smatch m;
  if (std::regex_match(model_dir, m, kSnapshot)) return m[1];
  return "sha256:" + cache::DigestHex(identity).substr(0, 16);
}

preprocess::FrontOptions OptionsFromFlags(const std::string& model_dir) {
  preprocess::FrontOptions o;
  o.preprocessor.model_dir = model_dir;
  preprocess::MediaLimits& l = o.preprocessor.limits;
  l.max_encoded_bytes = absl::GetFlag(FLAGS_max_encoded_bytes);
  l.max_image_pixels = absl::GetFlag(FLAGS_max_image_pixels);
  l.max_images_per_request = absl::GetFlag(FLAGS_max_images);
  l.max_videos_per_request = absl::GetFlag(FLAGS_max_videos);
  l.max_video_duration_s = absl::GetFlag(FLAGS_max_video_seconds);
  l.max_video_sampled_frames = absl::GetFlag(FLAGS_max_video_frames);
  l.max_prompt_tokens = absl::GetFlag(FLAGS_max_prompt_tokens);
  l.max_decoded_pixels_per_request = absl::GetFlag(FLAGS_max_decoded_pixels);
  l.max_tiles_per_request = absl::GetFlag(FLAGS_max_tiles);
  l.max_tile_side = absl::GetFlag(FLAGS_max_tile_side);
  l.max_longest_edge = absl::GetFlag(FLAGS_max_longest_edge);
  preprocess::ChatPipelineOptions& p = o.pipeline;
  p.generation.max_new_tokens = absl::GetFlag(FLAGS_max_new_tokens_limit);
  p.generation.max_stop_strings = absl::GetFlag(FLAGS_max_stop_strings);
  p.generation.max_stop_string_bytes = absl::GetFlag(FLAGS_max_stop_string_bytes);
  p.max_conversations = absl::GetFlag(FLAGS_max_conversations);
  p.max_text_bytes = absl::GetFlag(FLAGS_max_text_bytes);
  const std::string root = absl::GetFlag(FLAGS_media_root);
  p.media.allow_paths = !root.empty();
  p.media.allowed_root = root;
  p.media.base_dir = root.empty() ? "." : root;
  if (absl::GetFlag(FLAGS_media_url_fetch)) {
    net::UrlFetchPolicy fetch;
    fetch.allow = SplitList(absl::GetFlag(FLAGS_media_url_allow));
    fetch.max_redirects = absl::GetFlag(FLAGS_media_url_max_redirects);
    fetch.total_timeout_s = absl::GetFlag(FLAGS_media_url_timeout_s);
    o.url_fetch = fetch;
  }
  o.service.default_deadline = absl::Seconds(absl::GetFlag(FLAGS_default_deadline_s));
  o.workers = absl::GetFlag(FLAGS_workers);
  o.max_queue = absl::GetFlag(FLAGS_max_queue);
  o.conversation_threads = absl::GetFlag(FLAGS_conversation_threads);
  o.media_cache_bytes = absl::GetFlag(FLAGS_media_cache_bytes);
  o.media_memory_bytes = absl::GetFlag(FLAGS_max_media_memory_mb) << 20;
  o.api_keys_file = absl::GetFlag(FLAGS_api_keys_file);
  o.tenant_limits.max_concurrent = absl::GetFlag(FLAGS_tenant_max_concurrent);
  o.tenant_limits.requests_per_minute = absl::GetFlag(FLAGS_tenant_requests_per_minute);
  o.vision_target = absl::GetFlag(FLAGS_vision_target);
  o.decoder_target = absl::GetFlag(FLAGS_decoder_target);
  o.channel.max_message_bytes = absl::GetFlag(FLAGS_max_message_mb) << 20;
  o.channel.tls.ca = absl::GetFlag(FLAGS_downstream_tls_ca);
  o.channel.tls.cert = absl::GetFlag(FLAGS_downstream_tls_cert);
  o.channel.tls.key = absl::GetFlag(FLAGS_downstream_tls_key);
  if (absl::GetFlag(FLAGS_http_port) >= 0) {
    http::HttpServerOptions h;
    h.host = absl::GetFlag(FLAGS_host);
    h.port = absl::GetFlag(FLAGS_http_port);
    h.io_threads = absl::GetFlag(FLAGS_http_threads);
    h.max_body_bytes = absl::GetFlag(FLAGS_http_max_body_bytes);
    h.max_connections = absl::GetFlag(FLAGS_http_max_connections);
    h.request_timeout = absl::Seconds(absl::GetFlag(FLAGS_http_request_timeout_s));
    h.idle_timeout = absl::Seconds(absl::GetFlag(FLAGS_http_idle_timeout_s));
    h.tls_cert = absl::GetFlag(FLAGS_tls_cert);
    h.tls_key = absl::GetFlag(FLAGS_tls_key);
    h.tls_client_ca = absl::GetFlag(FLAGS_tls_client_ca);
    o.http = h;
  }
  o.http_api.max_concurrent = absl::GetFlag(FLAGS_http_max_concurrent);
  o.http_api.default_deadline = o.service.default_deadline;
  o.http_api.api.max_body_bytes = absl::GetFlag(FLAGS_http_max_body_bytes);
  o.http_api.api.max_n = o.pipeline.max_conversations;
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  TuneMallocForTensors();
  absl::ParseCommandLine(argc, argv);
  av_log_set_level(AV_LOG_ERROR);
  auto model_dir = hub::ResolveOrDownloadModel(absl::GetFlag(FLAGS_model));
  if (!model_dir.ok()) return ExitWithError(model_dir.status(), 2);
  if (absl::GetFlag(FLAGS_download_only)) {
    std::printf("%s\n", model_dir->c_str());
    return 0;
  }

  grpc_util::StageRuntimeOptions rt_options;
  rt_options.name = "preprocess";
  rt_options.stage = metrics::Stage::kPreprocess;
  rt_options.server.host = absl::GetFlag(FLAGS_host);
  rt_options.server.port = absl::GetFlag(FLAGS_port);
  rt_options.server.max_message_bytes = absl::GetFlag(FLAGS_max_message_mb) << 20;
  rt_options.server.shutdown_grace = std::chrono::seconds(absl::GetFlag(FLAGS_shutdown_grace_s));
  rt_options.server.tls = {absl::GetFlag(FLAGS_tls_cert), absl::GetFlag(FLAGS_tls_key),
                           absl::GetFlag(FLAGS_tls_client_ca)};
  rt_options.server.reflection = absl::GetFlag(FLAGS_reflection);
  rt_options.server.health_port = absl::GetFlag(FLAGS_health_port);
  rt_options.metrics_port = absl::GetFlag(FLAGS_metrics_port);
  rt_options.port_file = absl::GetFlag(FLAGS_port_file);
  auto runtime = grpc_util::StageRuntime::Create(rt_options);
  if (!runtime.ok()) return ExitWithError(runtime.status());

  preprocess::FrontOptions options = OptionsFromFlags(*model_dir);
  auto identity = preprocess::ModelIdentity(*model_dir);
  if (!identity.ok()) return ExitWithError(identity.status());
  const std::string names = absl::GetFlag(FLAGS_served_model_name);
  options.http_api.api.model_ids = SplitList(names.empty() ? absl::GetFlag(FLAGS_model) : names);
  options.http_api.api.revision = ServedRevision(*model_dir, *identity);

  std::atomic<bool> serving{false};
  std::atomic<grpc_util::StageRuntime*> rt{nullptr};
  auto front = preprocess::Front::Create(
      options, &(*runtime)->metrics(), [&](bool ready, const std::string& why) {
        serving = ready;
        if (auto* r = rt.load()) r->SetHealth(ready, why);
      });
  if (!front.ok()) return ExitWithError(front.status());
  if (!rt_options.port_file.empty() && (*front)->http_port() >= 0) {
    std::ofstream(rt_options.port_file + ".http") << (*front)->http_port() << "\n";
  }
  if (auto s = (*runtime)->Serve({(*front)->grpc_service()}); !s.ok()) return ExitWithError(s);
  rt = runtime->get();
  (*runtime)->SetHealth(serving.load(), serving ? "downstream stages serve" : "waiting for the downstream stages");
  (*runtime)->Wait([&] { (*front)->Shutdown(absl::Seconds(absl::GetFlag(FLAGS_shutdown_grace_s))); });
  rt = nullptr;
  return 0;
}
