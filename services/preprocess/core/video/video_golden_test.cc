// End-to-end checks of the video path against the transformers fixtures
// (tests/golden/cases/video_*): decoding, metadata, sampling, timestamps, per-frame pixels
// and the expanded prompt text.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "common/safetensors/safetensors.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "opencv2/imgcodecs.hpp"
#include "opencv2/imgproc.hpp"
#include "services/preprocess/core/image/normalize.h"
#include "services/preprocess/core/video/video_decode.h"
#include "services/preprocess/core/video/video_processor.h"
#include "services/preprocess/core/prompt.h"
#include "services/preprocess/core/video/video_prompt.h"

namespace smolserve::preprocess {
namespace {

using ::testing::ElementsAreArray;

constexpr char kGoldenDir[] = "tests/golden/";
constexpr int kTile = 512;
constexpr int kImageSeqLen = 64;

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  EXPECT_TRUE(f.good()) << "cannot open " << path;
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

nlohmann::json ReadCase(const std::string& name) {
  return nlohmann::json::parse(ReadFile(std::string(kGoldenDir) + "cases/" + name + "/case.json"));
}

std::string VideoPath(const nlohmann::json& c) {
  for (const auto& item : c["messages"][0]["content"]) {
    if (item["type"] == "video") return std::string(kGoldenDir) + item["path"].get<std::string>();
  }
  ADD_FAILURE() << "case has no video";
  return "";
}

// PNG decoded by OpenCV as RGB uint8.
Image ReadPngRgb(const std::string& path) {
  cv::Mat bgr = cv::imread(path, cv::IMREAD_COLOR | cv::IMREAD_IGNORE_ORIENTATION);
  EXPECT_FALSE(bgr.empty()) << path;
  cv::Mat rgb;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  Image img = MakeImage(rgb.rows, rgb.cols, PixelMode::kRGB);
  for (int y = 0; y < rgb.rows; ++y) std::memcpy(img.row(y), rgb.ptr(y), size_t(rgb.cols) * 3);
  return img;
}

int MaxAbsDiff(const Image& a, const Image& b) {
  if (a.height != b.height || a.width != b.width || a.pixels.size() != b.pixels.size()) return 256;
  int m = 0;
  for (size_t i = 0; i < a.pixels.size(); ++i) m = std::max(m, std::abs(a.pixels[i] - b.pixels[i]));
  return m;
}

VideoOptions OptionsFor(const nlohmann::json& v) {
  VideoOptions o;
  o.sampling.fps = v["fps_arg"].get<double>();
  o.sampling.num_frames = v["num_frames_arg"].get<int>();
  o.sampling.skip_secs = v["skip_secs_arg"].get<double>();
  o.longest_edge = 2048;  // preprocessor_config.json size.longest_edge
  o.max_image_size = kTile;
  return o;
}

class VideoGoldenTest : public ::testing::TestWithParam<std::string> {};

TEST_P(VideoGoldenTest, DecodingSamplingAndMetadata) {
  const nlohmann::json c = ReadCase(GetParam());
  const nlohmann::json& v = c["video"][0];
  const std::string bytes = ReadFile(VideoPath(c));
  auto r = ProcessVideo(bytes, OptionsFor(v), MediaLimits());
  ASSERT_TRUE(r.ok()) << r.status();

  EXPECT_EQ(r->decoded_frame_count, v["decoded_frame_count"].get<int64_t>());
  EXPECT_EQ(r->metadata.total_num_frames, v["metadata"]["total_num_frames"].get<int64_t>());
  EXPECT_EQ(r->metadata.fps, v["metadata"]["fps"].get<double>());  // bit-exact float64
  EXPECT_EQ(r->metadata.duration, v["metadata"]["duration"].get<double>());
  EXPECT_THAT(r->sampled_frame_indices,
              ElementsAreArray(v["sampled_frame_indices"].get<std::vector<int64_t>>()));
  std::vector<std::vector<int64_t>> ts;
  for (const FrameTimestamp& t : r->timestamps) ts.push_back({t.minutes, t.seconds});
  EXPECT_EQ(ts, v["timestamps"].get<std::vector<std::vector<int64_t>>>());
  EXPECT_EQ(r->duration_int, v["duration_int"].get<int64_t>());
  const auto shape = v["decoded_video_tensor_shape_TCHW"].get<std::vector<int>>();
  EXPECT_EQ(r->metadata.height, shape[2]);
  EXPECT_EQ(r->metadata.width, shape[3]);
}

TEST_P(VideoGoldenTest, FirstSampledFrameMatchesPyAvRgb) {
  const nlohmann::json c = ReadCase(GetParam());
  const nlohmann::json& v = c["video"][0];
  const int64_t first = v["sampled_frame_indices"][0].get<int64_t>();
  auto decoded = DecodeVideoFrames(
      ReadFile(VideoPath(c)), MediaLimits(),
      [first](const VideoMetadata&, int64_t) -> absl::StatusOr<std::vector<int64_t>> {
        return std::vector<int64_t>{first};
      });
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  ASSERT_EQ(decoded->frames.size(), 1u);
  const Image expected = ReadPngRgb(std::string(kGoldenDir) + "cases/" + GetParam() + "/" +
                                    v["decoded_first_sampled_frame_png"].get<std::string>());
  EXPECT_EQ(MaxAbsDiff(decoded->frames[0], expected), 0);
}

TEST_P(VideoGoldenTest, PixelValuesStatsCropsAndTiles) {
  const nlohmann::json c = ReadCase(GetParam());
  const nlohmann::json& v = c["video"][0];
  auto r = ProcessVideo(ReadFile(VideoPath(c)), OptionsFor(v), MediaLimits());
  ASSERT_TRUE(r.ok()) << r.status();
  const auto shape = c["pixel_values_shape"].get<std::vector<int64_t>>();
  ASSERT_EQ(static_cast<int64_t>(r->frames.size()), shape[1]);
  const size_t plane = size_t{kTile} * kTile;
  std::vector<float> pv(r->frames.size() * 3 * plane);
  NormalizeVideoFrames(*r, NormalizeParams(), pv.data());

  auto tensors = safetensors::File::Open(std::string(kGoldenDir) + "cases/" + GetParam() +
                                         "/tensors_fp32.safetensors");
  ASSERT_TRUE(tensors.ok()) << tensors.status();

  for (const nlohmann::json& tile : c["tiles"]) {
    const int idx = tile["index"].get<int>();
    SCOPED_TRACE("frame " + std::to_string(idx));
    ASSERT_EQ(tile["batch"].get<int>(), 0);
    ASSERT_FALSE(tile["is_padding_image"].get<bool>());
    const float* f = pv.data() + size_t(idx) * 3 * plane;
    const nlohmann::json& stats = tile["stats"];
    double total = 0;
    for (int ch = 0; ch < 3; ++ch) {
      double sum = 0;
      float mn = f[ch * plane], mx = f[ch * plane];
      for (size_t i = 0; i < plane; ++i) {
        const float x = f[ch * plane + i];
        sum += x;
        mn = std::min(mn, x);
        mx = std::max(mx, x);
      }
      total += sum;
      const double mean = sum / plane;
      const double want_mean = stats["mean"][ch].get<double>();
      EXPECT_NEAR(mean, want_mean, 1e-9 * std::max(1.0, std::fabs(want_mean))) << "channel " << ch;
      EXPECT_EQ(mn, stats["min"][ch].get<float>()) << "channel " << ch;
      EXPECT_EQ(mx, stats["max"][ch].get<float>()) << "channel " << ch;
      double ss = 0;
      for (size_t i = 0; i < plane; ++i) {
        const double d = f[ch * plane + i] - mean;
        ss += d * d;
      }
      // The fixture's std is torch's unbiased estimator reduced in float32 (it differs from
      // the float64 value by ~2e-6 relative while mean/sum agree to 1e-15), so it is only
      // checked to float32 reduction accuracy; the pixels themselves are checked exactly.
      const double std_unbiased = std::sqrt(ss / (plane - 1));
      const double want_std = stats["std"][ch].get<double>();
      EXPECT_NEAR(std_unbiased, want_std, 1e-5 * std::max(1e-3, want_std)) << "channel " << ch;
    }
    const double want_sum = stats["sum"].get<double>();
    EXPECT_NEAR(total, want_sum, 1e-9 * std::max(1.0, std::fabs(want_sum)));

    // 8x8 crops, bit-exact.
    for (const char* where : {"tl", "c", "br"}) {
      const auto yx = tile["crops"][where].get<std::vector<int>>();
      const int size = tile["crops"]["size"].get<int>();
      const std::string name = "pixel_crop_b0_i" + std::to_string(idx) + "_" + where;
      const safetensors::TensorView* t = (*tensors)->Find(name);
      ASSERT_NE(t, nullptr) << name;
      ASSERT_EQ(t->nbytes, size_t(3) * size * size * sizeof(float));
      const float* want = reinterpret_cast<const float*>(t->data);
      int mismatches = 0;
      for (int ch = 0; ch < 3; ++ch) {
        for (int y = 0; y < size; ++y) {
          for (int x = 0; x < size; ++x) {
            const float got = f[ch * plane + size_t(yx[0] + y) * kTile + (yx[1] + x)];
            const float exp = want[(ch * size + y) * size + x];
            if (std::memcmp(&got, &exp, sizeof(float)) != 0) ++mismatches;
          }
        }
      }
      EXPECT_EQ(mismatches, 0) << name;
    }

    if (tile.contains("uint8_png") && tile["uint8_png"].is_string()) {
      const Image png = ReadPngRgb(std::string(kGoldenDir) + "cases/" + GetParam() + "/" +
                                   tile["uint8_png"].get<std::string>());
      EXPECT_EQ(MaxAbsDiff(r->frames[idx], png), 0) << tile["uint8_png"];
    }
  }
}

TEST_P(VideoGoldenTest, ExpandedPrompt) {
  const nlohmann::json c = ReadCase(GetParam());
  const nlohmann::json& v = c["video"][0];
  auto r = ProcessVideo(ReadFile(VideoPath(c)), OptionsFor(v), MediaLimits());
  ASSERT_TRUE(r.ok()) << r.status();
  const int64_t padded_frames = c["pixel_values_shape"][1].get<int64_t>();
  auto video_text = BuildVideoPromptText(padded_frames, r->duration_int, r->timestamps,
                                         SingleImagePromptTokens(kImageSeqLen));
  ASSERT_TRUE(video_text.ok()) << video_text.status();
  std::string user_text;
  for (const auto& item : c["messages"][0]["content"]) {
    if (item["type"] == "text") user_text += item["text"].get<std::string>();
  }
  const std::string prompt = "<|im_start|>User: " + *video_text + user_text +
                             "<end_of_utterance>\nAssistant:";
  EXPECT_EQ(prompt, c["prompt_expanded"][0].get<std::string>());
}

INSTANTIATE_TEST_SUITE_P(Cases, VideoGoldenTest,
                         ::testing::Values("video_default_sampling", "video_vfr_8_frames"));

}  // namespace
}  // namespace smolserve::preprocess
