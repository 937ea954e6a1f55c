// Times ProcessVideo on a file: `video_bench FILE [num_frames] [repeats]`.
// Prints the status on failure, otherwise metadata, sampled indices and the median wall and
// CPU times. With RESIZE_ONLY=1 in the environment it instead times the two per-frame resizes
// of a 720x528 frame (-> 2048x1502 -> 512x512), best of 20.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "services/preprocess/core/video/antialias_resize.h"
#include "services/preprocess/core/video/video_processor.h"

int main(int argc, char** argv) {
  using smolserve::preprocess::MediaLimits;
  using smolserve::preprocess::ProcessVideo;
  using smolserve::preprocess::VideoOptions;
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s FILE [num_frames] [repeats]\n", argv[0]);
    return 2;
  }
  std::ifstream f(argv[1], std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  VideoOptions options;
  if (argc > 2 && std::atoi(argv[2]) > 0) options.sampling.num_frames = std::atoi(argv[2]);
  const int repeats = argc > 3 ? std::max(1, std::atoi(argv[3])) : 5;
  if (std::getenv("RESIZE_ONLY")) {
    smolserve::preprocess::Image img = smolserve::preprocess::MakeImage(528, 720, smolserve::preprocess::PixelMode::kRGB);
    for (size_t i = 0; i < img.pixels.size(); ++i) img.pixels[i] = (i * 2654435761u) >> 24;
    double best = 1e9, b1 = 1e9, b2 = 1e9;
    smolserve::preprocess::BicubicAntialiasResizer rz;
    std::vector<uint8_t> mid(2048 * 1502 * 3), out(512 * 512 * 3);
    for (int i = 0; i < 20; ++i) {
      const std::clock_t c0 = std::clock();
      (void)rz.Resize(img.pixels.data(), 528, 720, 3, 1502, 2048, mid.data());
      const std::clock_t c1 = std::clock();
      (void)rz.Resize(mid.data(), 1502, 2048, 3, 512, 512, out.data());
      const std::clock_t c2 = std::clock();
      best = std::min(best, double(c2 - c0) / CLOCKS_PER_SEC);
      b1 = std::min(b1, double(c1 - c0) / CLOCKS_PER_SEC);
      b2 = std::min(b2, double(c2 - c1) / CLOCKS_PER_SEC);
    }
    std::printf("frame min cpu %.4f s (up %.4f, down %.4f)\n", best, b1, b2);
    return 0;
  }
  std::vector<double> seconds;
  std::vector<double> cpu_seconds;
  for (int i = 0; i < repeats; ++i) {
    const std::clock_t c0 = std::clock();
    const auto t0 = std::chrono::steady_clock::now();
    auto r = ProcessVideo(bytes, options, MediaLimits());
    const auto t1 = std::chrono::steady_clock::now();
    cpu_seconds.push_back(static_cast<double>(std::clock() - c0) / CLOCKS_PER_SEC);
    if (!r.ok()) {
      std::printf("status: %s\n", r.status().ToString().c_str());
      return 1;
    }
    seconds.push_back(std::chrono::duration<double>(t1 - t0).count());
    if (i == 0) {
      std::printf("decoded %lld, header frames %lld, fps %.17g, duration %.17g, indices [%s]\n",
                  static_cast<long long>(r->decoded_frame_count),
                  static_cast<long long>(r->metadata.total_num_frames), r->metadata.fps,
                  r->metadata.duration, absl::StrJoin(r->sampled_frame_indices, ", ").c_str());
    }
  }
  std::vector<double> sorted = seconds;
  std::sort(sorted.begin(), sorted.end());
  std::vector<double> cpu_sorted = cpu_seconds;
  std::sort(cpu_sorted.begin(), cpu_sorted.end());
  std::printf("wall: %s s; median %.3f s\n", absl::StrJoin(seconds, ", ").c_str(),
              sorted[sorted.size() / 2]);
  std::printf("cpu:  %s s; median %.3f s\n", absl::StrJoin(cpu_seconds, ", ").c_str(),
              cpu_sorted[cpu_sorted.size() / 2]);
  return 0;
}
