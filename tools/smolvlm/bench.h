// `smolvlm bench`: a closed-loop load generator for the front (Front.Chat streaming, or the
// HTTP API's streamed chat completions with --http).
//
// N client workers (one thread each, one shared channel) send requests back to back until
// the point's M requests are done. Requests are drawn deterministically (seed) from a media
// mix (text only, one image, two images, one video); each asks for exactly T new tokens
// (ignore_eos). Per point the client measures time to first token (send -> first delta
// with tokens), inter-token gaps (between successive token deltas of a stream) and
// end-to-end latency, and sums the front's per-stage timings. One JSON object per point;
// with a sweep, a plain-text table of every point at the end.
#ifndef SMOLSERVE_TOOLS_SMOLVLM_BENCH_H_
#define SMOLSERVE_TOOLS_SMOLVLM_BENCH_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"
#include "proto/smolserve/v1/front.pb.h"

namespace smolserve::cli {

enum class BenchKind { kText = 0, kImage = 1, kImages2 = 2, kVideo = 3 };
const char* BenchKindName(BenchKind k);

// Weights of the request kinds ("text=1,image=2,images2=0,video=1").
struct MediaMix {
  double weight[4] = {1, 1, 0, 0};  // indexed by BenchKind
};
absl::StatusOr<MediaMix> ParseMediaMix(absl::string_view spec);
std::string MediaMixString(const MediaMix& mix);

// The kinds of `n` requests, drawn with a fixed generator (mt19937_64, whose output the
// standard defines exactly) so that a seed gives the same sequence everywhere.
std::vector<BenchKind> DrawKinds(const MediaMix& mix, uint64_t seed, int n);

// "1,4,16" -> {1, 4, 16}; every value >= 1.
absl::StatusOr<std::vector<int>> ParseSweep(absl::string_view spec);

// Percentile by linear interpolation between the closest ranks (numpy's default
// "linear" method): position q * (n - 1) in the sorted values. 0 for no values.
double Percentile(std::vector<double> values, double q);

// "sha256:<hex>" of `bytes`: the stable media id of --media-id.
std::string ContentId(absl::string_view bytes);

struct BenchOptions {
  std::string target;                 // the front, HOST:PORT or any gRPC target
  // The front's HTTP API instead ("http://HOST:PORT"): the same requests as OpenAI chat
  // completions, streamed as Server-Sent Events; no per-stage timings.
  std::string http_url;
  std::string api_key;                // sent as "authorization: Bearer" (gRPC and HTTP)
  std::string mode = "target";        // "target" or "in-process" (reported)
  int concurrency = 1;
  int requests = 0;                   // per point; 0: 4 * concurrency
  int warmup = 0;                     // requests run before each measured point
  int new_tokens = 16;
  MediaMix mix;
  uint64_t seed = 0;
  std::vector<std::string> images;    // image files; two-image requests use the first two
  std::string video;
  bool unique_media = false;          // every image request gets distinct pixels
  bool media_id = false;              // set Media.id to the content's id
  bool no_image_splitting = false;    // processor.do_image_splitting = false
  std::vector<int> sweep;             // concurrencies; empty: just `concurrency`
  std::string label;
  double deadline_s = 0;              // per request; <= 0: none
  // Soak: each measured point runs for this long (closed loop) instead of a request count.
  double duration_s = 0;
  std::string watch;                  // soak.h ParseWatch: processes sampled while it runs
  double sample_interval_s = 5;
  double soak_warmup_fraction = 0.2;  // the RSS drift is measured after this part of the run
  v1::GenerationParams generation;    // sampling settings (max_new_tokens/ignore_eos are set here)
  nlohmann::ordered_json extra;       // copied into every point's JSON (e.g. stage threads)
};

// What the client saw of one request.
struct RequestRecord {
  BenchKind kind = BenchKind::kText;
  bool ok = false;
  std::string error;
  double ttft_ms = -1;                // send -> first delta with tokens; < 0: none
  std::vector<double> itl_ms;         // gaps between successive token deltas
  double e2e_ms = 0;                  // send -> end of the stream
  int64_t output_tokens = 0;
  int64_t prompt_tokens = 0;
  double preprocess_ms = 0, vision_ms = 0, prefill_ms = 0, decode_ms = 0;
  int64_t tiles = 0, cached_tiles = 0;
};

struct PointInfo {
  std::string label, mode, target, mix;
  int concurrency = 0, requests = 0, warmup = 0, new_tokens = 0;
  bool unique_media = false, media_id = false;
};

// The JSON object of one measured point.
nlohmann::ordered_json SummarizePoint(const PointInfo& info, const std::vector<RequestRecord>& records,
                                      double wall_s, const nlohmann::ordered_json& extra = {});

// The plain-text table of a sweep (one row per point).
std::string SweepTable(const std::vector<nlohmann::ordered_json>& points);

// Runs every point (the sweep, or the single concurrency) against `options.target`. Each
// point's JSON is handed to `on_point` as soon as it is measured; progress goes to stderr.
// Fails only for setup errors (unreadable media, bad options); failed requests are counted.
absl::StatusOr<std::vector<nlohmann::ordered_json>> RunBench(
    const BenchOptions& options,
    const std::function<void(const nlohmann::ordered_json&)>& on_point = {});

}  // namespace smolserve::cli

#endif  // SMOLSERVE_TOOLS_SMOLVLM_BENCH_H_
