// Vision tower + connector throughput at the real SmolVLM2-256M vision shapes (hidden 768,
// 12 layers, 12 heads, MLP 3072, patch 16, 512x512 tiles, pixel shuffle 4 -> 576): random
// weights built here, or a model folder (--model=DIR, e.g. from `smolvlm make-model --preset
// 256m`). Prints, per batch size, milliseconds per tile and the achieved GFLOP/s (the FLOPs of
// one tile counted from the shapes: patch embedding, per layer the q/k/v, o, fc1, fc2 GEMMs
// and the two attention products, the connector projection) next to this machine's float32
// GEMM rate at a comparable shape. With --batcher_requests=R, also R one-tile requests
// submitted at once to an EncodeBatcher per --batcher_max_tiles value (cross-request batching).
//
//   bazel build -c opt //services/vision/core:vision_bench
//   ./bazel-bin/services/vision/core/vision_bench --threads=2 --tiles=1,4,8,16 --iters=3
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <future>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/model/config.h"
#include "common/model/linear.h"
#include "common/model/weights.h"
#include "common/runtime/malloc_tuning.h"
#include "services/vision/core/encode_batcher.h"
#include "services/vision/core/vision_model.h"

namespace {

using Clock = std::chrono::steady_clock;

std::string StrFlag(int argc, char** argv, const char* name, const std::string& def) {
  const std::string prefix = absl::StrCat("--", name, "=");
  for (int i = 1; i < argc; ++i) {
    if (absl::StartsWith(argv[i], prefix)) return std::string(argv[i] + prefix.size());
  }
  return def;
}

int64_t IntFlag(int argc, char** argv, const char* name, int64_t def) {
  int64_t v;
  const std::string s = StrFlag(argc, argv, name, "");
  return !s.empty() && absl::SimpleAtoi(s, &v) ? v : def;
}

std::vector<int64_t> IntListFlag(int argc, char** argv, const char* name, const std::string& def) {
  std::vector<int64_t> out;
  for (absl::string_view part : absl::StrSplit(StrFlag(argc, argv, name, def), ',')) {
    int64_t v;
    if (absl::SimpleAtoi(part, &v) && v > 0) out.push_back(v);
  }
  return out;
}

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

std::string Now() {
  char buf[16];
  const std::time_t t = std::time(nullptr);
  std::strftime(buf, sizeof(buf), "%H:%M:%S", std::localtime(&t));
  return buf;
}

double CpuMs() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

// Multiply-adds counted as 2 FLOPs; element-wise work (LayerNorm, GELU, softmax, residuals)
// is left out.
struct TileFlops {
  double patch_embed = 0, qkv = 0, out_proj = 0, mlp = 0, attention = 0, connector = 0;
  double total() const { return patch_embed + qkv + out_proj + mlp + attention + connector; }
};

TileFlops CountTileFlops(const smolserve::model::ModelConfig& cfg) {
  const auto& vc = cfg.vision;
  const double seq = static_cast<double>(vc.patches_per_side()) * vc.patches_per_side();
  const double d = vc.hidden_size, inter = vc.intermediate_size, layers = vc.num_hidden_layers;
  const double patch = static_cast<double>(vc.num_channels) * vc.patch_size * vc.patch_size;
  const double r2 = static_cast<double>(cfg.scale_factor) * cfg.scale_factor;
  TileFlops f;
  f.patch_embed = 2 * seq * patch * d;
  f.qkv = layers * 2 * seq * d * 3 * d;
  f.out_proj = layers * 2 * seq * d * d;
  f.mlp = layers * 2 * (2 * seq * d * inter);
  f.attention = layers * 2 * (2 * seq * seq * d);  // Q K^T and P V over all heads
  f.connector = 2 * (seq / r2) * (d * r2) * cfg.text.hidden_size;
  return f;
}

// GFLOP/s of C[m, n] = A[m, k] B[n, k]^T over about two seconds of repetitions (after a
// warm-up): {median, best}.
std::pair<double, double> GemmRate(int64_t m, int64_t n, int64_t k, bool onednn) {
  const at::Tensor a = at::randn({m, k}), b = at::randn({n, k});
  auto once = [&] { return onednn ? smolserve::model::Linear(a, b) : at::mm(a, b.t()); };
  once();
  std::vector<double> s;
  const auto start = Clock::now();
  while (s.size() < 10 || Seconds(start, Clock::now()) < 2.0) {
    const auto t0 = Clock::now();
    at::Tensor c = once();
    s.push_back(Seconds(t0, Clock::now()));
  }
  std::sort(s.begin(), s.end());
  const double flop = 2.0 * m * n * k;
  return {flop / s[s.size() / 2] / 1e9, flop / s.front() / 1e9};
}

std::unique_ptr<smolserve::model::WeightStore> RandomWeights(smolserve::model::ModelConfig* cfg) {
  cfg->vision.hidden_size = 768;
  cfg->vision.intermediate_size = 3072;
  cfg->vision.num_hidden_layers = 12;
  cfg->vision.num_attention_heads = 12;
  cfg->vision.image_size = 512;
  cfg->vision.patch_size = 16;
  cfg->scale_factor = 4;
  cfg->text.hidden_size = 576;
  const int64_t d = 768, inter = 3072, g = 32;
  at::manual_seed(0);
  std::map<std::string, at::Tensor> w;
  auto rnd = [](std::vector<int64_t> shape, double scale) {
    return at::randn(shape, at::kFloat).mul_(scale);
  };
  w["model.vision_model.embeddings.patch_embedding.weight"] = rnd({d, 3, 16, 16}, 0.02);
  w["model.vision_model.embeddings.patch_embedding.bias"] = rnd({d}, 0.02);
  w["model.vision_model.embeddings.position_embedding.weight"] = rnd({g * g, d}, 0.02);
  for (int i = 0; i < 12; ++i) {
    const std::string l = absl::StrCat("model.vision_model.encoder.layers.", i, ".");
    for (const char* n : {"layer_norm1", "layer_norm2"}) {
      w[l + n + ".weight"] = at::ones({d});
      w[l + n + ".bias"] = at::zeros({d});
    }
    for (const char* n : {"q_proj", "k_proj", "v_proj", "out_proj"}) {
      w[l + "self_attn." + n + ".weight"] = rnd({d, d}, 0.036);
      w[l + "self_attn." + n + ".bias"] = rnd({d}, 0.02);
    }
    w[l + "mlp.fc1.weight"] = rnd({inter, d}, 0.036);
    w[l + "mlp.fc1.bias"] = rnd({inter}, 0.02);
    w[l + "mlp.fc2.weight"] = rnd({d, inter}, 0.018);
    w[l + "mlp.fc2.bias"] = rnd({d}, 0.02);
  }
  w["model.vision_model.post_layernorm.weight"] = at::ones({d});
  w["model.vision_model.post_layernorm.bias"] = at::zeros({d});
  w["model.connector.modality_projection.proj.weight"] = rnd({576, d * 16}, 0.01);
  return smolserve::model::WeightStore::FromTensors(std::move(w));
}

void Die(const absl::Status& s) {
  std::fprintf(stderr, "%s\n", s.ToString().c_str());
  std::exit(1);
}

}  // namespace

int main(int argc, char** argv) {
  using smolserve::model::ModelConfig;
  namespace vision = smolserve::vision;
  smolserve::TuneMallocForTensors();  // as the stage binaries do
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  const int64_t threads = IntFlag(argc, argv, "threads", 2);
  const std::vector<int64_t> batch_sizes = IntListFlag(argc, argv, "tiles", "4");
  const int64_t iters = std::max<int64_t>(1, IntFlag(argc, argv, "iters", 3));
  const std::string dtype_name = StrFlag(argc, argv, "dtype", "f32");
  const std::string model_dir = StrFlag(argc, argv, "model", "");
  const int64_t batcher_requests = IntFlag(argc, argv, "batcher_requests", 0);
  const std::vector<int64_t> batcher_max_tiles =
      IntListFlag(argc, argv, "batcher_max_tiles", "1,8,16");
  at::set_num_threads(static_cast<int>(threads));
  c10::InferenceMode inference;

  ModelConfig cfg;
  std::unique_ptr<smolserve::model::WeightStore> store;
  if (model_dir.empty()) {
    store = RandomWeights(&cfg);
  } else {
    auto c = smolserve::model::LoadModelConfig(model_dir);
    if (!c.ok()) Die(c.status());
    cfg = *c;
    auto s = smolserve::model::WeightStore::Open(model_dir);
    if (!s.ok()) Die(s.status());
    store = *std::move(s);
  }
  vision::VisionOptions opts;
  opts.dtype = dtype_name == "bf16" ? at::kBFloat16 : at::kFloat;
  auto model = vision::VisionModel::Create(cfg, *store, opts);
  if (!model.ok()) Die(model.status());
  if (model_dir.empty()) {
    if (auto s = store->CheckAllUsed(); !s.ok()) Die(s);
  }
  store.reset();

  const TileFlops f = CountTileFlops(cfg);
  const auto& vc = cfg.vision;
  const int64_t seq = vc.patches_per_side() * vc.patches_per_side();
  std::printf(
      "model: %s; vision hidden %ld, MLP %ld, %ld layers, %ld patches per tile, dtype %s, %ld "
      "threads\n",
      model_dir.empty() ? "random weights" : model_dir.c_str(), static_cast<long>(vc.hidden_size),
      static_cast<long>(vc.intermediate_size), static_cast<long>(vc.num_hidden_layers),
      static_cast<long>(seq), dtype_name.c_str(), static_cast<long>(threads));
  std::printf(
      "FLOPs per tile: %.1f GFLOP (patch embed %.2f, qkv %.2f, o %.2f, mlp %.2f, attention "
      "%.2f, connector %.2f)\n",
      f.total() / 1e9, f.patch_embed / 1e9, f.qkv / 1e9, f.out_proj / 1e9, f.mlp / 1e9,
      f.attention / 1e9, f.connector / 1e9);
  // The machine's GEMM rate at an fc1-like shape, both paths, all threads.
  const auto [onednn, onednn_best] = GemmRate(1024, 3072, 768, true);
  const auto [mm, mm_best] = GemmRate(1024, 3072, 768, false);
  std::printf(
      "[%s] sgemm [1024 x 768] x [768 x 3072], %ld threads, 2 s each: oneDNN median %.1f best "
      "%.1f GFLOP/s, at::mm median %.1f best %.1f GFLOP/s\n",
      Now().c_str(), static_cast<long>(threads), onednn, onednn_best, mm, mm_best);

  for (int64_t tiles : batch_sizes) {
    const at::Tensor pv = at::rand({tiles, 3, vc.image_size, vc.image_size}).mul_(2).sub_(1);
    auto run = [&] {
      auto out = (*model)->Encode(pv, at::Tensor());
      if (!out.ok()) Die(out.status());
    };
    run();  // warm-up
    std::vector<double> ms, cpu;
    for (int64_t i = 0; i < iters; ++i) {
      const double c0 = CpuMs();
      const auto t0 = Clock::now();
      run();
      ms.push_back(Seconds(t0, Clock::now()) * 1e3 / tiles);
      cpu.push_back((CpuMs() - c0) / tiles);
    }
    std::sort(ms.begin(), ms.end());
    std::sort(cpu.begin(), cpu.end());
    const double med = ms[ms.size() / 2];
    const double gflops = f.total() / (med / 1e3) / 1e9;
    std::printf(
        "[%s] batch %2ld tiles: ms/tile min %.1f median %.1f max %.1f (process CPU ms/tile %.1f); "
        "%.1f GFLOP/s = %.2f of the oneDNN sgemm median\n",
        Now().c_str(), static_cast<long>(tiles), ms.front(), med, ms.back(), cpu[cpu.size() / 2], gflops,
        gflops / onednn);
  }

  // Cross-request batching: R one-tile requests at once through an EncodeBatcher.
  if (batcher_requests > 0) {
    const at::Tensor pv =
        at::rand({batcher_requests, 3, vc.image_size, vc.image_size}).mul_(2).sub_(1);
    for (int64_t max_tiles : batcher_max_tiles) {
      vision::EncodeBatcherOptions o;
      o.threads = static_cast<int>(threads);
      o.max_batch_tiles = max_tiles;
      o.max_wait = std::chrono::milliseconds(5);
      o.max_queued_tiles = batcher_requests;
      o.max_queued_requests = static_cast<int>(batcher_requests);
      o.cache_bytes = int64_t{512} << 20;  // includes the per-tile hashing in Submit
      auto b = vision::EncodeBatcher::Create(model->get(), o);
      if (!b.ok()) Die(b.status());
      std::vector<std::future<absl::StatusOr<vision::EncodeResult>>> answers;
      double submit_s = 0;
      const auto t0 = Clock::now();
      for (int64_t i = 0; i < batcher_requests; ++i) {
        auto p = std::make_shared<std::promise<absl::StatusOr<vision::EncodeResult>>>();
        answers.push_back(p->get_future());
        vision::EncodeJob job;
        job.pixel_values = pv.narrow(0, i, 1);
        const auto s0 = Clock::now();
        if (auto s = (*b)->Submit(std::move(job), [p](auto r) { p->set_value(std::move(r)); });
            !s.ok()) {
          Die(s);
        }
        submit_s += Seconds(s0, Clock::now());
      }
      double queue_ms = 0;
      for (auto& a : answers) {
        auto r = a.get();
        if (!r.ok()) Die(r.status());
        queue_ms = std::max(queue_ms, r->queue_ms);
      }
      const double s = Seconds(t0, Clock::now());
      const vision::EncodeBatcherStats st = (*b)->stats();
      std::printf(
          "[%s] batcher: %ld one-tile requests, max_batch_tiles %2ld: %.1f ms/tile, %ld model calls "
          "(largest %ld tiles), %.1f GFLOP/s, last request waited %.0f ms; Submit (checks + "
          "SHA-256 key) %.1f ms/tile\n",
          Now().c_str(), static_cast<long>(batcher_requests), static_cast<long>(max_tiles),
          s * 1e3 / batcher_requests, static_cast<long>(st.model_calls),
          static_cast<long>(st.max_tiles_per_call), f.total() * batcher_requests / s / 1e9,
          queue_ms, submit_s * 1e3 / batcher_requests);
    }
  }
  return 0;
}
