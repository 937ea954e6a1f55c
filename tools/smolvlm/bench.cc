#include "tools/smolvlm/bench.h"

#include <map>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include <grpcpp/grpcpp.h>
#include <openssl/evp.h>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include <curl/curl.h>

#include "absl/strings/numbers.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/grpc/server_runner.h"
#include "tools/smolvlm/soak.h"
#include "proto/smolserve/v1/front.grpc.pb.h"

namespace smolserve::cli {
namespace {

using Clock = std::chrono::steady_clock;

double Ms(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

constexpr const char* kKindNames[] = {"text", "image", "images2", "video"};

absl::StatusOr<std::string> ReadBytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return absl::NotFoundError(absl::StrCat("bench: cannot read '", path, "'"));
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// The media of the run, read (and for --unique-media decoded) once.
struct BenchMedia {
  std::vector<std::string> image_bytes, image_ids;
  std::vector<cv::Mat> image_pixels;  // --unique-media only
  std::string video_bytes, video_id;
};

// A distinct image for `key`: a few pixels changed (channel 0 of one pixel in every 16x16
// block, so that every tile and the global image differ, plus the key's bytes in row 0
// so that no two keys give the same image), re-encoded as PNG (fast compression).
absl::StatusOr<std::string> UniqueImage(const cv::Mat& base, uint64_t key) {
  cv::Mat m = base.clone();
  const size_t elem = m.elemSize();
  for (int y = 0; y < m.rows; y += 16) {
    uint8_t* row = m.ptr<uint8_t>(y);
    for (int x = 0; x < m.cols; x += 16) {
      uint8_t* p = row + static_cast<size_t>(x) * elem;
      p[0] = static_cast<uint8_t>(p[0] + 1 + SplitMix64(key ^ (uint64_t(y) << 32 | uint32_t(x))) % 255);
    }
  }
  uint8_t* row0 = m.ptr<uint8_t>(0);
  for (int i = 0; i < 8 && 1 + i < m.cols; ++i) {
    row0[static_cast<size_t>(1 + i) * elem] = static_cast<uint8_t>(key >> (8 * i));
  }
  std::vector<uchar> png;
  if (!cv::imencode(".png", m, png, {cv::IMWRITE_PNG_COMPRESSION, 1})) {
    return absl::InternalError("bench: cannot encode a PNG");
  }
  return std::string(png.begin(), png.end());
}

absl::StatusOr<BenchMedia> LoadMedia(const BenchOptions& o) {
  BenchMedia media;
  const bool need_image = o.mix.weight[1] > 0 || o.mix.weight[2] > 0;
  const bool need_video = o.mix.weight[3] > 0;
  if (need_image) {
    if (o.images.empty()) return absl::InvalidArgumentError("bench: the mix has images but no --image");
    for (const std::string& path : o.images) {
      auto bytes = ReadBytes(path);
      if (!bytes.ok()) return bytes.status();
      media.image_ids.push_back(o.media_id ? ContentId(*bytes) : "");
      if (o.unique_media) {
        // IMREAD_UNCHANGED keeps alpha and bit depth (EXIF orientation is not applied).
        cv::Mat pixels = cv::imdecode(std::vector<uchar>(bytes->begin(), bytes->end()), cv::IMREAD_UNCHANGED);
        if (pixels.empty()) return absl::InvalidArgumentError(absl::StrCat("bench: cannot decode '", path, "'"));
        media.image_pixels.push_back(pixels);
      }
      media.image_bytes.push_back(*std::move(bytes));
    }
  }
  if (need_video) {
    if (o.video.empty()) return absl::InvalidArgumentError("bench: the mix has videos but no --video");
    auto bytes = ReadBytes(o.video);
    if (!bytes.ok()) return bytes.status();
    media.video_bytes = *std::move(bytes);
    if (o.media_id) media.video_id = ContentId(media.video_bytes);
  }
  return media;
}

// The request of one draw. `key` is unique per (point, phase, index) and makes the
// images distinct under --unique-media.
absl::StatusOr<v1::ChatRequest> BuildRequest(const BenchOptions& o, const BenchMedia& media,
                                             BenchKind kind, uint64_t key, const std::string& id) {
  v1::ChatRequest req;
  auto* msg = req.add_conversations()->add_messages();
  msg->set_role("user");
  auto add_image = [&](int slot) -> absl::Status {
    const size_t i = std::min<size_t>(slot, media.image_bytes.size() - 1);
    v1::Media* m = msg->add_content()->mutable_image();
    if (o.unique_media) {
      auto png = UniqueImage(media.image_pixels[i], SplitMix64(key * 4 + slot));
      if (!png.ok()) return png.status();
      if (o.media_id) m->set_id(ContentId(*png));
      m->set_data(*std::move(png));
      m->set_mime_type("image/png");
    } else {
      m->set_data(media.image_bytes[i]);
      if (o.media_id) m->set_id(media.image_ids[i]);
    }
    return absl::OkStatus();
  };
  std::string text;
  switch (kind) {
    case BenchKind::kText:
      text = "Write a short story about a robot who learns to paint.";
      break;
    case BenchKind::kImage:
      if (auto s = add_image(0); !s.ok()) return s;
      text = "Can you describe this image?";
      break;
    case BenchKind::kImages2:
      if (auto s = add_image(0); !s.ok()) return s;
      if (auto s = add_image(1); !s.ok()) return s;
      text = "What are the differences between these two images?";
      break;
    case BenchKind::kVideo: {
      v1::Media* m = msg->add_content()->mutable_video();
      m->set_data(media.video_bytes);
      if (o.media_id) m->set_id(media.video_id);
      text = "Describe this video in detail.";
      break;
    }
  }
  msg->add_content()->set_text(text);
  if (o.no_image_splitting) req.mutable_processor()->set_do_image_splitting(false);
  *req.mutable_generation() = o.generation;
  req.mutable_generation()->set_max_new_tokens(o.new_tokens);
  req.mutable_generation()->set_ignore_eos(true);
  req.set_request_id(id);
  return req;
}

// The chat request as an OpenAI chat completion (media as data: URIs), streamed with usage.
std::string CompletionBody(const v1::ChatRequest& request) {
  nlohmann::json content = nlohmann::json::array();
  for (const auto& c : request.conversations(0).messages(0).content()) {
    if (c.has_image() || c.has_video()) {
      const v1::Media& m = c.has_image() ? c.image() : c.video();
      const std::string mime = c.has_image() ? (m.mime_type().empty() ? "image/jpeg" : m.mime_type())
                                             : "video/x-msvideo";
      const char* key = c.has_image() ? "image_url" : "video_url";
      content.push_back({{"type", key},
                         {key, {{"url", absl::StrCat("data:", mime, ";base64,", absl::Base64Escape(m.data()))}}}});
    } else {
      content.push_back({{"type", "text"}, {"text", c.text()}});
    }
  }
  const v1::GenerationParams& g = request.generation();
  nlohmann::json body = {{"messages", {{{"role", "user"}, {"content", content}}}},
                         {"max_tokens", g.max_new_tokens()},
                         {"ignore_eos", g.ignore_eos()},
                         {"stream", true},
                         {"stream_options", {{"include_usage", true}}}};
  if (g.has_temperature()) body["temperature"] = g.temperature();
  if (g.has_top_p()) body["top_p"] = g.top_p();
  if (g.has_top_k()) body["top_k"] = g.top_k();
  if (g.has_seed()) body["seed"] = g.seed();
  return body.dump();
}

// Reads Server-Sent Events from a streamed chat completion, timing the token chunks.
struct SseReader {
  RequestRecord* rec;
  Clock::time_point t0, last;
  bool first = true;
  std::string pending, error;
  bool done = false;
  void Event(const std::string& data) {
    if (data == "[DONE]") {
      done = true;
      return;
    }
    const nlohmann::json j = nlohmann::json::parse(data, nullptr, false);
    if (j.is_discarded()) return;
    if (j.contains("error")) error = j["error"].value("message", "error");
    if (j.contains("usage") && j["usage"].is_object()) {
      rec->output_tokens = j["usage"].value("completion_tokens", 0);
      rec->prompt_tokens = j["usage"].value("prompt_tokens", 0);
    }
    if (!j.contains("choices")) return;
    for (const auto& c : j["choices"]) {
      if (!c.contains("delta") || c["delta"].value("content", "").empty()) continue;
      const auto now = Clock::now();
      if (first) {
        rec->ttft_ms = Ms(t0, now);
        first = false;
      } else {
        rec->itl_ms.push_back(Ms(last, now));
      }
      last = now;
    }
  }
  void Feed(const char* p, size_t n) {
    pending.append(p, n);
    for (size_t end; (end = pending.find("\n\n")) != std::string::npos;) {
      const std::string event = pending.substr(0, end);
      pending.erase(0, end + 2);
      if (event.rfind("data: ", 0) == 0) Event(event.substr(6));
    }
  }
};

RequestRecord RunOneHttp(const std::string& base, const std::string& key,
                         const v1::ChatRequest& request, BenchKind kind, double deadline_s) {
  RequestRecord rec;
  rec.kind = kind;
  const std::string url = base + "/v1/chat/completions";
  const std::string body = CompletionBody(request);
  SseReader sse{&rec};
  CURL* c = curl_easy_init();
  struct curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
  if (!key.empty()) headers = curl_slist_append(headers, absl::StrCat("Authorization: Bearer ", key).c_str());
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.c_str());
  curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  if (deadline_s > 0) curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(deadline_s * 1000));
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &sse);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, +[](char* p, size_t size, size_t n, void* self) -> size_t {
    static_cast<SseReader*>(self)->Feed(p, size * n);
    return size * n;
  });
  sse.t0 = Clock::now();
  const CURLcode rc = curl_easy_perform(c);
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  rec.e2e_ms = Ms(sse.t0, Clock::now());
  curl_slist_free_all(headers);
  curl_easy_cleanup(c);
  if (rc != CURLE_OK) {
    rec.error = curl_easy_strerror(rc);
  } else if (status != 200) {
    rec.error = absl::StrCat("HTTP ", status, ": ", sse.pending.substr(0, 200));
  } else if (!sse.error.empty()) {
    rec.error = sse.error;
  } else if (!sse.done) {
    rec.error = "the stream ended without [DONE]";
  } else {
    rec.ok = true;
  }
  return rec;
}

RequestRecord RunOne(v1::Front::Stub* stub, const v1::ChatRequest& request, BenchKind kind,
                     double deadline_s, const std::string& key) {
  RequestRecord rec;
  rec.kind = kind;
  ::grpc::ClientContext ctx;
  if (!key.empty()) ctx.AddMetadata("authorization", absl::StrCat("Bearer ", key));
  if (deadline_s > 0) {
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::milliseconds(static_cast<int64_t>(deadline_s * 1000)));
  }
  const auto t0 = Clock::now();
  Clock::time_point last;
  bool first = true, got_result = false;
  int64_t streamed_tokens = 0, completion_tokens = 0, usage_tiles = 0;
  auto reader = stub->Chat(&ctx, request);
  v1::ChatResponse msg;
  while (reader->Read(&msg)) {
    if (msg.has_delta()) {
      const auto& d = msg.delta();
      if (d.token_ids_size() == 0 && d.text().empty()) continue;
      const auto now = Clock::now();
      if (first) {
        rec.ttft_ms = Ms(t0, now);
        first = false;
      } else {
        rec.itl_ms.push_back(Ms(last, now));
      }
      last = now;
      streamed_tokens += d.token_ids_size();
    } else if (msg.has_result()) {
      got_result = true;
      const auto& r = msg.result();
      for (const auto& c : r.choices()) {
        completion_tokens += c.usage().completion_tokens();
        rec.prompt_tokens += c.usage().prompt_tokens();
        usage_tiles += c.usage().image_tiles() + c.usage().video_frames();
      }
      const auto& t = r.timings();
      rec.preprocess_ms = t.preprocess_ms();
      rec.vision_ms = t.vision_ms();
      rec.prefill_ms = t.prefill_ms();
      rec.decode_ms = t.decode_ms();
      rec.tiles = t.tiles() > 0 ? t.tiles() : usage_tiles;
      rec.cached_tiles = t.cached_tiles();
    }
  }
  const ::grpc::Status status = reader->Finish();
  rec.e2e_ms = Ms(t0, Clock::now());
  rec.output_tokens = completion_tokens > 0 ? completion_tokens : streamed_tokens;
  if (!status.ok()) {
    rec.error = absl::StrCat(absl::StatusCodeToString(static_cast<absl::StatusCode>(status.error_code())),
                             ": ", status.error_message());
  } else if (!got_result) {
    rec.error = "the stream ended without a result";
  } else {
    rec.ok = true;
  }
  return rec;
}

// Runs `kinds` with `concurrency` closed-loop workers; returns the wall time in seconds.
double RunPhase(const BenchOptions& o, const BenchMedia& media, const std::shared_ptr<::grpc::Channel>& channel,
                const std::vector<BenchKind>& kinds, int concurrency, uint64_t key_base,
                const std::string& id_prefix, const std::string& phase, std::vector<RequestRecord>* records) {
  const int n = static_cast<int>(kinds.size());
  // With a duration, requests are drawn (cyclically from `kinds`) until it is over.
  const bool timed = o.duration_s > 0 && phase.find("warm-up") == std::string::npos;
  const auto end = Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(o.duration_s * 1000));
  records->assign(timed ? 0 : n, RequestRecord{});
  std::atomic<int> next{0};
  std::mutex progress_mu;
  int done = 0;
  auto last_print = Clock::now();
  const auto start = Clock::now();
  auto worker = [&] {
    auto stub = v1::Front::NewStub(channel);
    for (int i = next.fetch_add(1); timed ? Clock::now() < end : i < n; i = next.fetch_add(1)) {
      RequestRecord rec;
      const BenchKind kind = kinds[i % n];
      auto req = BuildRequest(o, media, kind, key_base + static_cast<uint64_t>(i),
                              absl::StrCat(id_prefix, i));
      if (!req.ok()) {
        rec.kind = kind;
        rec.error = req.status().ToString();
      } else {
        rec = o.http_url.empty() ? RunOne(stub.get(), *req, kind, o.deadline_s, o.api_key)
                                 : RunOneHttp(o.http_url, o.api_key, *req, kind, o.deadline_s);
      }
      std::lock_guard<std::mutex> lock(progress_mu);
      if (timed) {
        records->push_back(std::move(rec));
      } else {
        (*records)[i] = std::move(rec);
      }
      ++done;
      const auto now = Clock::now();
      if (done == n || Ms(last_print, now) > (timed ? 30000 : 2000)) {
        std::fprintf(stderr, "[bench] %s, concurrency %d: %d/%d done (%.1f s)\n", phase.c_str(),
                     concurrency, done, n, Ms(start, now) / 1e3);
        last_print = now;
      }
    }
  };
  std::vector<std::thread> threads;
  for (int w = 0; w < std::min(concurrency, std::max(n, 1)); ++w) threads.emplace_back(worker);
  for (auto& t : threads) t.join();
  return Ms(start, Clock::now()) / 1e3;
}

double Round(double v, int digits = 3) {
  const double scale = std::pow(10.0, digits);
  return std::round(v * scale) / scale;
}

}  // namespace

const char* BenchKindName(BenchKind k) { return kKindNames[static_cast<int>(k)]; }

absl::StatusOr<MediaMix> ParseMediaMix(absl::string_view spec) {
  MediaMix mix;
  for (double& w : mix.weight) w = 0;
  double total = 0;
  for (absl::string_view part : absl::StrSplit(spec, ',', absl::SkipWhitespace())) {
    std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(part, absl::MaxSplits('=', 1));
    int index = -1;
    for (int k = 0; k < 4; ++k)
      if (absl::StripAsciiWhitespace(kv.first) == kKindNames[k]) index = k;
    double w = 0;
    if (index < 0 || !absl::SimpleAtod(absl::StripAsciiWhitespace(kv.second), &w) || !(w >= 0) ||
        !std::isfinite(w)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--mix: bad entry '", part, "' (want text=W,image=W,images2=W,video=W with W >= 0)"));
    }
    mix.weight[index] = w;
    total += w;
  }
  if (!(total > 0)) return absl::InvalidArgumentError("--mix: the weights sum to 0");
  return mix;
}

std::string MediaMixString(const MediaMix& mix) {
  std::string s;
  for (int k = 0; k < 4; ++k) {
    if (mix.weight[k] <= 0) continue;
    absl::StrAppend(&s, s.empty() ? "" : ",", kKindNames[k], "=", mix.weight[k]);
  }
  return s;
}

std::vector<BenchKind> DrawKinds(const MediaMix& mix, uint64_t seed, int n) {
  double total = 0;
  for (double w : mix.weight) total += w;
  std::mt19937_64 rng(seed);
  std::vector<BenchKind> kinds;
  kinds.reserve(std::max(n, 0));
  for (int i = 0; i < n; ++i) {
    // 53 random bits -> [0, 1), scaled to the total weight (no std::*_distribution: their
    // output differs between standard libraries).
    const double u = static_cast<double>(rng() >> 11) * 0x1.0p-53 * total;
    double acc = 0;
    int pick = -1;
    for (int k = 0; k < 4; ++k) {
      if (mix.weight[k] <= 0) continue;
      acc += mix.weight[k];
      pick = k;
      if (u < acc) break;
    }
    kinds.push_back(static_cast<BenchKind>(pick < 0 ? 0 : pick));
  }
  return kinds;
}

absl::StatusOr<std::vector<int>> ParseSweep(absl::string_view spec) {
  std::vector<int> out;
  for (absl::string_view part : absl::StrSplit(spec, ',', absl::SkipWhitespace())) {
    int v = 0;
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(part), &v) || v < 1) {
      return absl::InvalidArgumentError(absl::StrCat("--sweep: bad concurrency '", part, "'"));
    }
    out.push_back(v);
  }
  if (out.empty()) return absl::InvalidArgumentError("--sweep: no concurrency given");
  return out;
}

double Percentile(std::vector<double> values, double q) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const double pos = std::clamp(q, 0.0, 1.0) * static_cast<double>(values.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, values.size() - 1);
  return values[lo] + (values[hi] - values[lo]) * (pos - static_cast<double>(lo));
}

std::string ContentId(absl::string_view bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(bytes.data(), bytes.size(), digest, &len, EVP_sha256(), nullptr);
  std::string hex = "sha256:";
  for (unsigned int i = 0; i < len; ++i) absl::StrAppendFormat(&hex, "%02x", digest[i]);
  return hex;
}

nlohmann::ordered_json SummarizePoint(const PointInfo& info, const std::vector<RequestRecord>& records,
                                      double wall_s, const nlohmann::ordered_json& extra) {
  int ok = 0, failed = 0;
  std::string first_error;
  std::map<std::string, int> errors_by_code;
  std::vector<double> ttft, itl, e2e;
  int64_t output_tokens = 0, prompt_tokens = 0, tiles = 0, cached = 0;
  double busy[4] = {0, 0, 0, 0};
  int by_kind[4] = {0, 0, 0, 0};
  for (const RequestRecord& r : records) {
    if (!r.ok) {
      ++failed;
      if (first_error.empty()) first_error = r.error;
      ++errors_by_code[r.error.substr(0, std::min(r.error.find(':'), size_t{40}))];
      continue;
    }
    ++ok;
    ++by_kind[static_cast<int>(r.kind)];
    if (r.ttft_ms >= 0) ttft.push_back(r.ttft_ms);
    itl.insert(itl.end(), r.itl_ms.begin(), r.itl_ms.end());
    e2e.push_back(r.e2e_ms);
    output_tokens += r.output_tokens;
    prompt_tokens += r.prompt_tokens;
    tiles += r.tiles;
    cached += r.cached_tiles;
    busy[0] += r.preprocess_ms;
    busy[1] += r.vision_ms;
    busy[2] += r.prefill_ms;
    busy[3] += r.decode_ms;
  }
  double ttft_mean = 0;
  for (double v : ttft) ttft_mean += v;
  if (!ttft.empty()) ttft_mean /= static_cast<double>(ttft.size());
  const double wall = wall_s > 0 ? wall_s : 1e-9;
  nlohmann::ordered_json j;
  j["label"] = info.label;
  j["mode"] = info.mode;
  j["target"] = info.target;
  j["concurrency"] = info.concurrency;
  j["requests"] = info.requests;
  j["warmup"] = info.warmup;
  j["new_tokens"] = info.new_tokens;
  j["mix"] = info.mix;
  j["unique_media"] = info.unique_media;
  j["media_id"] = info.media_id;
  for (auto it = extra.begin(); it != extra.end(); ++it) j[it.key()] = it.value();
  j["ok"] = ok;
  j["failed"] = failed;
  j["first_error"] = first_error;
  j["errors_by_code"] = errors_by_code;
  nlohmann::ordered_json kinds;
  for (int k = 0; k < 4; ++k)
    if (by_kind[k] > 0) kinds[kKindNames[k]] = by_kind[k];
  j["ok_by_kind"] = kinds.is_null() ? nlohmann::ordered_json::object() : kinds;
  j["wall_s"] = Round(wall_s);
  // Rates count successful requests only.
  j["requests_per_s"] = Round(ok / wall);
  j["output_tokens"] = output_tokens;
  j["output_tokens_per_s"] = Round(static_cast<double>(output_tokens) / wall);
  j["prompt_tokens"] = prompt_tokens;
  j["ttft_ms"] = {{"p50", Round(Percentile(ttft, 0.50))},
                  {"p95", Round(Percentile(ttft, 0.95))},
                  {"p99", Round(Percentile(ttft, 0.99))},
                  {"mean", Round(ttft_mean)}};
  j["itl_ms"] = {{"p50", Round(Percentile(itl, 0.50))}, {"p95", Round(Percentile(itl, 0.95))}};
  j["e2e_ms"] = {{"p50", Round(Percentile(e2e, 0.50))}, {"p95", Round(Percentile(e2e, 0.95))}};
  // Sums of the front's per-request stage timings, and each over the wall time (can exceed
  // 1 when requests overlap in a stage).
  static constexpr const char* kStages[] = {"preprocess", "vision", "prefill", "decode"};
  nlohmann::ordered_json busy_ms, busy_frac;
  for (int s = 0; s < 4; ++s) {
    busy_ms[kStages[s]] = Round(busy[s], 1);
    busy_frac[kStages[s]] = Round(busy[s] / (wall * 1e3), 4);
  }
  j["stage_busy_ms"] = busy_ms;
  j["stage_busy_frac"] = busy_frac;
  j["tiles"] = tiles;
  j["tiles_per_s"] = Round(static_cast<double>(tiles) / wall);
  j["cached_tiles"] = cached;
  j["cache_hit_rate"] = tiles > 0 ? Round(static_cast<double>(cached) / static_cast<double>(tiles), 4) : 0.0;
  return j;
}

std::string SweepTable(const std::vector<nlohmann::ordered_json>& points) {
  std::string s = absl::StrFormat("%5s %5s %6s %8s %10s %10s %10s %10s %9s %9s %8s %7s\n", "conc", "ok",
                                  "failed", "req/s", "out tok/s", "TTFT p50", "TTFT p95", "TTFT p99",
                                  "ITL p50", "ITL p95", "tiles/s", "cache%");
  auto num = [](const nlohmann::ordered_json& v) { return v.is_number() ? v.get<double>() : 0.0; };
  for (const auto& p : points) {
    absl::StrAppendFormat(&s, "%5d %5d %6d %8.3f %10.2f %10.1f %10.1f %10.1f %9.1f %9.1f %8.2f %7.1f\n",
                          p.value("concurrency", 0), p.value("ok", 0), p.value("failed", 0),
                          num(p["requests_per_s"]), num(p["output_tokens_per_s"]),
                          num(p["ttft_ms"]["p50"]), num(p["ttft_ms"]["p95"]), num(p["ttft_ms"]["p99"]),
                          num(p["itl_ms"]["p50"]), num(p["itl_ms"]["p95"]), num(p["tiles_per_s"]),
                          100.0 * num(p["cache_hit_rate"]));
  }
  s += "(ms for TTFT and ITL, client side; percentiles by linear interpolation)\n";
  return s;
}

absl::StatusOr<std::vector<nlohmann::ordered_json>> RunBench(
    const BenchOptions& o, const std::function<void(const nlohmann::ordered_json&)>& on_point) {
  if (o.target.empty() && o.http_url.empty()) return absl::InvalidArgumentError("bench: no target");
  if (o.new_tokens < 1) return absl::InvalidArgumentError("bench: --new-tokens must be >= 1");
  if (o.warmup < 0 || o.requests < 0) return absl::InvalidArgumentError("bench: negative counts");
  auto media = LoadMedia(o);
  if (!media.ok()) return media.status();
  auto channel = grpc_util::MakeChannel(o.http_url.empty() ? o.target : "127.0.0.1:1");
  if (o.http_url.empty() &&
      !channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(30))) {
    return absl::UnavailableError(absl::StrCat("bench: cannot connect to ", o.target));
  }
  std::vector<int> points = o.sweep.empty() ? std::vector<int>{o.concurrency} : o.sweep;
  std::vector<nlohmann::ordered_json> results;
  for (size_t p = 0; p < points.size(); ++p) {
    const int c = points[p];
    if (c < 1) return absl::InvalidArgumentError("bench: concurrency must be >= 1");
    const int m = o.requests > 0 ? o.requests : 4 * c;
    // Keys: point in the high bits, warm-up vs measured, then the request index.
    const uint64_t point_key = static_cast<uint64_t>(p + 1) << 40;
    std::vector<RequestRecord> records;
    if (o.warmup > 0) {
      auto warm_kinds = DrawKinds(o.mix, SplitMix64(o.seed ^ 0x5741524d55500000ull), o.warmup);
      RunPhase(o, *media, channel, warm_kinds, c, point_key | (1ull << 39),
               absl::StrCat("bench-", p, "-warmup-"),
               absl::StrCat("point ", p + 1, "/", points.size(), " warm-up"), &records);
    }
    const auto kinds = DrawKinds(o.mix, o.seed, o.duration_s > 0 ? std::max(m, 100000) : m);
    std::unique_ptr<ProcessSampler> sampler;
    if (!o.watch.empty()) {
      auto targets = ParseWatch(o.watch);
      if (!targets.ok()) return targets.status();
      sampler = std::make_unique<ProcessSampler>(
          *targets, std::chrono::milliseconds(static_cast<int64_t>(o.sample_interval_s * 1000)));
    }
    const double wall = RunPhase(o, *media, channel, kinds, c, point_key, absl::StrCat("bench-", p, "-"),
                                 absl::StrCat("point ", p + 1, "/", points.size()), &records);
    PointInfo info;
    info.label = o.label;
    info.mode = o.mode;
    info.target = o.http_url.empty() ? o.target : o.http_url;
    info.mix = MediaMixString(o.mix);
    info.concurrency = c;
    info.requests = m;
    info.warmup = o.warmup;
    info.new_tokens = o.new_tokens;
    info.unique_media = o.unique_media;
    info.media_id = o.media_id;
    auto j = SummarizePoint(info, records, wall, o.extra);
    if (o.duration_s > 0) j["duration_s"] = o.duration_s;
    if (sampler != nullptr) {
      // The queues should drain once the load stops: give them a moment, then read them.
      std::this_thread::sleep_for(std::chrono::seconds(2));
      sampler->Stop();
      j["soak"] = sampler->Summary(o.soak_warmup_fraction);
    }
    if (on_point) on_point(j);
    results.push_back(std::move(j));
  }
  return results;
}

}  // namespace smolserve::cli
