// Vision tower + connector throughput at the real SmolVLM2-256M vision shapes (hidden 768,
// 12 layers, 12 heads, MLP 3072, patch 16, 512x512 tiles, pixel shuffle 4 -> 576) with random
// weights. Prints milliseconds per tile.
//
//   bazel run -c opt //services/vision/core:vision_bench -- --threads=2 --tiles=4 --iters=5
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/model/config.h"
#include "common/model/weights.h"
#include "services/vision/core/vision_model.h"

namespace {

int64_t IntFlag(int argc, char** argv, const char* name, int64_t def) {
  const std::string prefix = absl::StrCat("--", name, "=");
  for (int i = 1; i < argc; ++i) {
    int64_t v;
    if (absl::StartsWith(argv[i], prefix) &&
        absl::SimpleAtoi(absl::string_view(argv[i]).substr(prefix.size()), &v)) {
      return v;
    }
  }
  return def;
}

std::string StrFlag(int argc, char** argv, const char* name, const std::string& def) {
  const std::string prefix = absl::StrCat("--", name, "=");
  for (int i = 1; i < argc; ++i) {
    if (absl::StartsWith(argv[i], prefix)) return std::string(argv[i] + prefix.size());
  }
  return def;
}

}  // namespace

int main(int argc, char** argv) {
  using smolserve::model::ModelConfig;
  const int64_t threads = IntFlag(argc, argv, "threads", 2);
  const int64_t tiles = IntFlag(argc, argv, "tiles", 4);
  const int64_t iters = IntFlag(argc, argv, "iters", 5);
  const std::string dtype_name = StrFlag(argc, argv, "dtype", "f32");
  at::set_num_threads(static_cast<int>(threads));

  ModelConfig cfg;
  cfg.vision.hidden_size = 768;
  cfg.vision.intermediate_size = 3072;
  cfg.vision.num_hidden_layers = 12;
  cfg.vision.num_attention_heads = 12;
  cfg.vision.image_size = 512;
  cfg.vision.patch_size = 16;
  cfg.scale_factor = 4;
  cfg.text.hidden_size = 576;
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
  auto store = smolserve::model::WeightStore::FromTensors(std::move(w));

  smolserve::vision::VisionOptions opts;
  opts.dtype = dtype_name == "bf16" ? at::kBFloat16 : at::kFloat;
  opts.max_tiles_per_batch = tiles;
  auto model = smolserve::vision::VisionModel::Create(cfg, *store, opts);
  if (!model.ok()) {
    std::fprintf(stderr, "%s\n", std::string(model.status().message()).c_str());
    return 1;
  }
  if (auto s = store->CheckAllUsed(); !s.ok()) {
    std::fprintf(stderr, "%s\n", std::string(s.message()).c_str());
    return 1;
  }
  const at::Tensor pv = at::rand({tiles, 3, 512, 512}, at::kFloat).mul_(2).sub_(1);

  auto run = [&]() {
    auto out = (*model)->Encode(pv, at::Tensor());
    if (!out.ok()) {
      std::fprintf(stderr, "%s\n", std::string(out.status().message()).c_str());
      std::exit(1);
    }
    return out->image_hidden_states;
  };
  // Calibration: the same GEMM as fc1 for the whole batch (machine load shows up here).
  {
    const at::Tensor a = at::randn({tiles * 1024, d}), b = at::randn({inter, d});
    at::Tensor c = at::mm(a, b.t());
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < 5; ++i) c = at::mm(a, b.t());
    const double s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / 5;
    std::printf("calibration: [%ld x 768] x [768 x 3072] sgemm %.1f GFLOP/s\n",
                static_cast<long>(tiles * 1024), 2.0 * tiles * 1024 * d * inter / s / 1e9);
  }
  run();  // warm-up
  auto cpu_ms = [] {
    timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
  };
  std::vector<double> ms, cpu;
  for (int64_t i = 0; i < iters; ++i) {
    const double c0 = cpu_ms();
    const auto t0 = std::chrono::steady_clock::now();
    at::Tensor out = run();
    const auto t1 = std::chrono::steady_clock::now();
    cpu.push_back((cpu_ms() - c0) / tiles);
    ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count() / tiles);
  }
  std::sort(cpu.begin(), cpu.end());
  std::sort(ms.begin(), ms.end());
  std::printf(
      "vision_bench: 256M vision shapes, dtype %s, %ld threads, batch %ld tiles, %ld iters:"
      " ms/tile min %.1f median %.1f max %.1f (process CPU ms/tile, all threads: min %.1f)\n",
      dtype_name.c_str(), static_cast<long>(threads), static_cast<long>(tiles),
      static_cast<long>(iters), ms.front(), ms[ms.size() / 2], ms.back(), cpu.front());
  return 0;
}
