// Every fixture case through the whole preprocessing pipeline, compared with what
// Hugging Face transformers produced (tests/golden/README.md): prompt strings and ids
// identical, pixel values bit-identical (8x8 crops, whole tiles, full tensor where stored),
// per-tile statistics, video sampling and timestamps.
#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>

#include <ATen/ATen.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "common/safetensors/safetensors.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "services/preprocess/core/image/normalize.h"
#include "services/preprocess/core/preprocessor.h"
#include "tests/golden/golden_case.h"

namespace smolserve::preprocess {
namespace {

using nlohmann::json;
constexpr char kGolden[] = "tests/golden/";
constexpr char kModel[] = "tests/golden/models/tiny-smolvlm2-256m-geometry";

json ReadJson(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return json::parse(ss.str());
}

class GoldenPreprocessing : public ::testing::TestWithParam<std::string> {
 protected:
  static void SetUpTestSuite() {
    PreprocessorOptions options;
    options.model_dir = kModel;
    options.media_access.base_dir = kGolden;
    auto p = Preprocessor::Create(options);
    ASSERT_TRUE(p.ok()) << p.status();
    preprocessor_ = p->release();
  }
  static void TearDownTestSuite() {
    delete preprocessor_;
    preprocessor_ = nullptr;
  }
  static Preprocessor* preprocessor_;
};
Preprocessor* GoldenPreprocessing::preprocessor_ = nullptr;

std::vector<std::string> AsStrings(const json& v) {
  if (v.is_array()) return v.get<std::vector<std::string>>();
  return {v.get<std::string>()};
}

TEST_P(GoldenPreprocessing, MatchesTransformers) {
  const std::string name = GetParam();
  const std::string dir = std::string(kGolden) + "cases/" + name + "/";
  const json c = ReadJson(dir + "case.json");
  auto batch_or = preprocessor_->Prepare(golden::CaseRequest(c));
  ASSERT_TRUE(batch_or.ok()) << batch_or.status();
  const PreparedBatch& batch = *batch_or;

  // Text side: identical strings and ids.
  EXPECT_EQ(batch.prompt_template, AsStrings(c["prompt_template"]));
  EXPECT_EQ(batch.prompt_expanded, AsStrings(c["prompt_expanded"]));
  EXPECT_EQ(batch.input_ids, c["input_ids"].get<std::vector<std::vector<int32_t>>>());
  EXPECT_EQ(batch.attention_mask, c["attention_mask"].get<std::vector<std::vector<int32_t>>>());

  // Video sampling.
  if (c.contains("video")) {
    std::vector<const MediaInfo*> videos;
    for (const auto& m : batch.media)
      if (m.kind == MediaInfo::Kind::kVideo) videos.push_back(&m);
    ASSERT_EQ(videos.size(), c["video"].size());
    for (size_t v = 0; v < videos.size(); ++v) {
      const json& g = c["video"][v];
      EXPECT_EQ(videos[v]->sampled_frame_indices, g["sampled_frame_indices"].get<std::vector<int64_t>>());
      std::vector<std::pair<int, int>> ts;
      for (const auto& t : g["timestamps"]) ts.emplace_back(t[0].get<int>(), t[1].get<int>());
      EXPECT_EQ(videos[v]->timestamps, ts);
      EXPECT_EQ(videos[v]->duration_int, g["duration_int"].get<int>());
      EXPECT_EQ(videos[v]->decoded_frames, g["decoded_frame_count"].get<int64_t>());
      EXPECT_EQ(videos[v]->total_num_frames, g["metadata"]["total_num_frames"].get<int64_t>());
    }
  }

  if (!c.contains("pixel_values_shape") || c["pixel_values_shape"].is_null()) {
    EXPECT_FALSE(batch.pixels.defined());
    return;
  }
  ASSERT_TRUE(batch.pixels.defined());
  EXPECT_EQ(batch.pixel_values().sizes().vec(), c["pixel_values_shape"].get<std::vector<int64_t>>());
  ASSERT_EQ(batch.pixel_values().scalar_type(), at::kFloat);
  const at::Tensor pv = batch.pixel_values().contiguous();
  const at::Tensor mask = batch.pixel_attention_mask.contiguous();
  const int64_t H = pv.size(3), W = pv.size(4);

  auto tensors = safetensors::File::Open(dir + "tensors_fp32.safetensors");
  ASSERT_TRUE(tensors.ok()) << tensors.status();

  int crops_checked = 0, pngs_checked = 0;
  for (const json& t : c["tiles"]) {
    const int b = t["batch"], i = t["index"];
    SCOPED_TRACE(testing::Message() << "tile b" << b << " i" << i);
    const at::Tensor tile = pv[b][i];
    const float* data = tile.data_ptr<float>();
    if (t["is_padding_image"].get<bool>()) {
      EXPECT_EQ(tile.abs().max().item<float>(), 0.0f);
      EXPECT_EQ(mask[b][i].sum().item<int64_t>(), 0);
      continue;
    }
    EXPECT_EQ(mask[b][i].sum().item<int64_t>(), H * W);
    // Statistics per channel (double accumulation).
    const json& stats = t["stats"];
    double total = 0;
    for (int ch = 0; ch < 3; ++ch) {
      double sum = 0, mn = 1e9, mx = -1e9;
      for (int64_t k = 0; k < H * W; ++k) {
        const double v = data[ch * H * W + k];
        sum += v;
        mn = std::min(mn, v);
        mx = std::max(mx, v);
      }
      total += sum;
      EXPECT_EQ(static_cast<float>(mn), stats["min"][ch].get<float>()) << "channel " << ch;
      EXPECT_EQ(static_cast<float>(mx), stats["max"][ch].get<float>()) << "channel " << ch;
      EXPECT_NEAR(sum / (H * W), stats["mean"][ch].get<double>(), 1e-9) << "channel " << ch;
    }
    EXPECT_NEAR(total, stats["sum"].get<double>(), 1e-9 * std::max(1.0, std::abs(total)));
    // 8x8 crops, bit-exact.
    for (const char* where : {"tl", "c", "br"}) {
      const auto* crop = (*tensors)->Find(absl::StrCat("pixel_crop_b", b, "_i", i, "_", where));
      if (crop == nullptr) continue;
      const int y0 = t["crops"][where][0], x0 = t["crops"][where][1];
      ASSERT_EQ(crop->shape, (std::vector<int64_t>{3, 8, 8}));
      const float* g = reinterpret_cast<const float*>(crop->data);
      int diff = 0;
      for (int ch = 0; ch < 3; ++ch)
        for (int y = 0; y < 8; ++y)
          for (int x = 0; x < 8; ++x)
            diff += data[ch * H * W + (y0 + y) * W + x0 + x] != g[(ch * 8 + y) * 8 + x];
      EXPECT_EQ(diff, 0) << "crop " << where;
      ++crops_checked;
    }
    // Whole tile as the stored uint8 PNG, bit-exact after normalisation.
    if (t.contains("uint8_png") && t["uint8_png"].is_string()) {
      cv::Mat bgr = cv::imread(dir + t["uint8_png"].get<std::string>(), cv::IMREAD_COLOR);
      ASSERT_FALSE(bgr.empty());
      cv::Mat rgb;
      cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
      Image img = MakeImage(rgb.rows, rgb.cols, PixelMode::kRGB);
      std::memcpy(img.pixels.data(), rgb.data, img.pixels.size());
      std::vector<float> expected(3 * H * W);
      const auto formula = t["normalization_formula"] == "B" ? NormalizeFormula::kVideo
                                                               : NormalizeFormula::kImage;
      NormalizeToCHW(img, formula, NormalizeParams{}, expected.data(), H, W);
      int64_t diff = 0;
      for (int64_t k = 0; k < 3 * H * W; ++k) diff += data[k] != expected[k];
      EXPECT_EQ(diff, 0) << "differing values in whole tile " << t["uint8_png"];
      ++pngs_checked;
    }
  }
  EXPECT_GT(crops_checked, 0);
  // The full tensor where the fixture stores it.
  if (const auto* full = (*tensors)->Find("pixel_values")) {
    ASSERT_EQ(full->shape, pv.sizes().vec());
    EXPECT_EQ(std::memcmp(full->data, pv.data_ptr<float>(), full->nbytes), 0);
  }
}

INSTANTIATE_TEST_SUITE_P(
    AllCases, GoldenPreprocessing,
    ::testing::Values("single_image", "two_images", "text_only", "video_default_sampling",
                      "video_vfr_8_frames", "no_splitting", "longest_edge_1024", "odd_size_image",
                      "greyscale_image", "rgba_image", "pil_modes_direct_call", "batch_mixed"));

}  // namespace
}  // namespace smolserve::preprocess
