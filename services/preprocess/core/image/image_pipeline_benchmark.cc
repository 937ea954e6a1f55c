// Times decode + SmolVLM image processing of one image file, and the individual resizes.
// Usage: image_pipeline_benchmark <image> [runs]
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "services/preprocess/core/image/image_decode.h"
#include "services/preprocess/core/image/image_processor.h"
#include "services/preprocess/core/image/pil_resample.h"

namespace {

// CPU time of this thread, so that a busy machine does not inflate the numbers.
struct Clock {
  using time_point = double;
  static double now() {
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
  }
};

double Ms(double a, double b) { return b - a; }

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  using namespace smolserve::preprocess;
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s <image> [runs]\n", argv[0]);
    return 2;
  }
  const int runs = argc > 2 ? std::atoi(argv[2]) : 9;
  std::ifstream f(argv[1], std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string encoded = ss.str();
  const ImageProcessorOptions options;

  std::vector<double> decode_ms, process_ms, a_ms, b_ms, g_ms;
  for (int r = 0; r < runs; ++r) {
    const auto t0 = Clock::now();
    auto image = DecodeImage(encoded, ImageDecodeOptions{});
    const auto t1 = Clock::now();
    if (!image.ok()) {
      std::fprintf(stderr, "%s\n", image.status().ToString().c_str());
      return 1;
    }
    auto result = ProcessImage(*image, options);
    const auto t2 = Clock::now();
    if (!result.ok()) {
      std::fprintf(stderr, "%s\n", result.status().ToString().c_str());
      return 1;
    }
    decode_ms.push_back(Ms(t0, t1));
    process_ms.push_back(Ms(t1, t2));

    // The individual resizes of the same chain.
    const auto g = *ComputeImageGeometry(image->height, image->width, options);
    const auto s0 = Clock::now();
    auto a = *PilResize(*image, g.resized_height, g.resized_width, options.resample);
    const auto s1 = Clock::now();
    auto b = *PilResize(a, g.split_height, g.split_width, options.resample);
    const auto s2 = Clock::now();
    auto gl = *PilResize(b, options.max_image_size, options.max_image_size, options.resample);
    const auto s3 = Clock::now();
    a_ms.push_back(Ms(s0, s1));
    b_ms.push_back(Ms(s1, s2));
    g_ms.push_back(Ms(s2, s3));
  }
  std::printf("decode %.1f ms, process %.1f ms, total %.1f ms (thread CPU time, medians of %d)\n",
              Median(decode_ms), Median(process_ms), Median(decode_ms) + Median(process_ms), runs);
  std::printf("  resize step A %.1f ms, step B %.1f ms, global %.1f ms\n", Median(a_ms),
              Median(b_ms), Median(g_ms));
  return 0;
}
