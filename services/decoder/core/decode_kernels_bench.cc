// Throughput of the decode kernels against LibTorch's GEMM on the same machine, in one run.
//
//   bazel build //services/decoder/core:decode_kernels_bench &&
//   bazel-bin/services/decoder/core/decode_kernels_bench [--threads=2] [--seconds=1]
//
// The weights are by default the 30 MLP down projections of SmolVLM2-256M's decoder ([576, 1536]
// each, 106 MB in float32, more than any cache; --n/--k choose another shape), walked in turn
// as a decode step walks its layers.
// For B vectors (--b= one of them) it prints GFLOP/s and weight GB/s of: at::mm (the GEMM rate), the dispatched
// float32 kernel (GemvRows), the portable row-at-a-time one, and the int8 kernel.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "services/decoder/core/decode_kernels.h"

namespace smolserve::decoder::internal {
namespace {

int64_t kLayers = 30, kN = 576, kK = 1536;

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Seconds per pass over all layers (best of the passes that fit in `seconds`).
double TimePass(const std::function<void(int64_t layer)>& layer_fn, double seconds) {
  double best = 1e30;
  const double end = Now() + seconds;
  do {
    const double t0 = Now();
    for (int64_t l = 0; l < kLayers; ++l) layer_fn(l);
    best = std::min(best, Now() - t0);
  } while (Now() < end);
  return best;
}

void Report(const char* name, int64_t B, double pass_s, double weight_bytes) {
  const double flops = 2.0 * kLayers * kN * kK * B;
  std::printf("{\"kernel\": \"%s\", \"B\": %ld, \"gflops\": %.1f, \"weight_gb_per_s\": %.1f}\n",
              name, static_cast<long>(B), flops / pass_s / 1e9, weight_bytes / pass_s / 1e9);
}

int Run(int argc, char** argv) {
  int threads = 2;
  int64_t only_b = 0;
  double seconds = 1.0;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--threads=", 10) == 0) {
      threads = std::atoi(argv[i] + 10);
    } else if (std::strncmp(argv[i], "--b=", 4) == 0) {
      only_b = std::atoll(argv[i] + 4);
    } else if (std::strncmp(argv[i], "--n=", 4) == 0) {
      kN = std::atoll(argv[i] + 4);
    } else if (std::strncmp(argv[i], "--k=", 4) == 0) {
      kK = std::atoll(argv[i] + 4);
    } else if (std::strncmp(argv[i], "--seconds=", 10) == 0) {
      seconds = std::atof(argv[i] + 10);
    } else {
      std::fprintf(stderr, "unknown argument %s\n", argv[i]);
      return 2;
    }
  }
  at::set_num_threads(std::max(1, threads));
  at::manual_seed(0);
  std::vector<at::Tensor> w, q, scales;
  for (int64_t l = 0; l < kLayers; ++l) {
    w.push_back(at::randn({kN, kK}) * 0.02);
    scales.push_back(w.back().abs().amax(1) / 127.0);
    q.push_back((w.back() / scales.back().unsqueeze(1)).round().to(at::kChar).contiguous());
  }
  const double f32_bytes = 4.0 * kLayers * kN * kK, i8_bytes = f32_bytes / 4;
  for (int64_t B : {1, 2, 4, 8, 16, 64, 256}) {
    if (only_b != 0 && B != only_b) continue;
    at::Tensor x = at::randn({B, kK});
    at::Tensor y = at::empty({B, kN});
    const float* xp = x.data_ptr<float>();
    float* yp = y.data_ptr<float>();
    Report("at::mm", B, TimePass([&](int64_t l) { at::mm_out(y, x, w[l].t()); }, seconds),
           f32_bytes);
    using F32 = void (*)(const float*, int64_t, int64_t, int64_t, const float*, int64_t, float*,
                         int64_t, bool);
    for (auto [name, fn] : {std::pair<const char*, F32>{"GemvRows", &GemvRows},
                            {"GemvRowsPortable", &GemvRowsPortable}}) {
      const double s = TimePass(
          [&, fn = fn](int64_t l) {
            const float* wp = w[l].data_ptr<float>();
            at::parallel_for(0, kN, 64, [&](int64_t n0, int64_t n1) {
              fn(wp, n0, n1, kK, xp, B, yp, kN, false);
            });
          },
          seconds);
      Report(name, B, s, f32_bytes);
    }
    const double s8 = TimePass(
        [&](int64_t l) {
          const int8_t* qp = q[l].data_ptr<int8_t>();
          const float* sp = scales[l].data_ptr<float>();
          at::parallel_for(0, kN, 64, [&](int64_t n0, int64_t n1) {
            GemvRowsInt8(qp, sp, n0, n1, kK, xp, B, yp, kN, false);
          });
        },
        seconds);
    Report("GemvRowsInt8", B, s8, i8_bytes);
  }
  return 0;
}

}  // namespace
}  // namespace smolserve::decoder::internal

int main(int argc, char** argv) { return smolserve::decoder::internal::Run(argc, argv); }
