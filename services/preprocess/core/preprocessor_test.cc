// Request-level behaviour of the preprocessing pipeline: limits and bad input give the
// right status code with a message naming the item; nothing crashes.
#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/escaping.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "common/status/retry_after.h"
#include "services/preprocess/core/preprocessor.h"

namespace smolserve::preprocess {
namespace {

constexpr char kModel[] = "tests/golden/models/tiny-smolvlm2-256m-geometry";

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::unique_ptr<Preprocessor> Make(MediaLimits limits = {}) {
  PreprocessorOptions options;
  options.model_dir = kModel;
  options.limits = limits;
  options.media_access.base_dir = "tests/golden";
  auto p = Preprocessor::Create(options);
  EXPECT_TRUE(p.ok()) << p.status();
  return p.ok() ? *std::move(p) : nullptr;
}

absl::Status Prep(const Preprocessor& p, const nlohmann::json& req) {
  auto parsed = ParsePrepareRequest(req.dump());
  if (!parsed.ok()) return parsed.status();
  return p.Prepare(*parsed).status();
}

nlohmann::json ImageRequest(nlohmann::json image_item, const std::string& text = "Hi") {
  return {{"messages",
           {{{"role", "user"},
             {"content", {image_item, {{"type", "text"}, {"text", text}}}}}}}};
}

void ExpectStatus(const absl::Status& s, absl::StatusCode code, const std::string& needle) {
  EXPECT_EQ(s.code(), code) << s;
  EXPECT_NE(s.message().find(needle), std::string::npos) << s;
}

TEST(Preprocessor, MissingAndUnreadableMedia) {
  auto p = Make();
  ExpectStatus(Prep(*p, ImageRequest({{"type", "image"}, {"path", "media/nope.jpg"}})),
               absl::StatusCode::kNotFound, "image 0 (path 'media/nope.jpg')");
  ExpectStatus(Prep(*p, ImageRequest({{"type", "image"}, {"url", "https://x/y.jpg"}})),
               absl::StatusCode::kPermissionDenied, "media URLs is disabled");
}

TEST(Preprocessor, BadImageBytesAreInvalidArgument) {
  auto p = Make();
  const std::string jpeg = ReadFile("tests/golden/media/fruits.jpg");
  const std::string png = ReadFile("tests/golden/media/camera.png");
  struct Case {
    const char* name;
    std::string bytes;
  } cases[] = {
      {"zero bytes", ""},
      {"wrong magic", "GIF87a-not-really-an-image-at-all"},
      {"text", "hello world, this is not an image"},
      {"truncated jpeg", jpeg.substr(0, jpeg.size() / 2)},
      {"truncated png", png.substr(0, png.size() / 2)},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    auto s = Prep(*p, ImageRequest({{"type", "image"}, {"base64", absl::Base64Escape(c.bytes)}}));
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_NE(s.message().find("image 0"), std::string::npos) << s;
  }
}

TEST(Preprocessor, DecompressionBombIsRefusedFromTheHeader) {
  // A PNG header claiming 60000 x 60000 pixels (and nothing else).
  std::string png = ReadFile("tests/golden/media/camera.png").substr(0, 33);
  auto put32 = [&](size_t at, uint32_t v) {
    for (int i = 0; i < 4; ++i) png[at + i] = static_cast<char>((v >> (24 - 8 * i)) & 0xff);
  };
  put32(16, 60000);
  put32(20, 60000);
  auto p = Make();
  ExpectStatus(Prep(*p, ImageRequest({{"type", "image"}, {"base64", absl::Base64Escape(png)}})),
               absl::StatusCode::kResourceExhausted, "image 0");
}

TEST(Preprocessor, BadVideoBytes) {
  auto p = Make();
  const std::string avi = ReadFile("tests/golden/media/Megamind.avi");
  for (const std::string& bytes : {std::string(), std::string("not a video at all, just text"),
                                   avi.substr(0, avi.size() / 3)}) {
    auto s = Prep(*p, {{"messages",
                       {{{"role", "user"},
                         {"content", {{{"type", "video"}, {"base64", absl::Base64Escape(bytes)}}}}}}}});
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_NE(s.message().find("video 0"), std::string::npos) << s;
  }
  // An image is not a video.
  auto s = Prep(*p, {{"messages",
                     {{{"role", "user"},
                       {"content", {{{"type", "video"}, {"path", "media/fruits.jpg"}}}}}}}});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
}

TEST(Preprocessor, LimitsAreResourceExhausted) {
  MediaLimits limits;
  limits.max_images_per_request = 1;
  limits.max_prompt_tokens = 100;
  limits.max_video_duration_s = 5;
  limits.max_encoded_bytes = 100000;
  auto p = Make(limits);
  nlohmann::json two = {{"messages",
                         {{{"role", "user"},
                           {"content",
                            {{{"type", "image"}, {"path", "media/fruits.jpg"}},
                             {{"type", "image"}, {"path", "media/fruits.jpg"}}}}}}}};
  ExpectStatus(Prep(*p, two), absl::StatusCode::kResourceExhausted, "2 images");
  ExpectStatus(Prep(*p, ImageRequest({{"type", "image"}, {"path", "media/fruits.jpg"}})),
               absl::StatusCode::kResourceExhausted, "over the limit of 100");
  ExpectStatus(Prep(*p, ImageRequest({{"type", "image"}, {"path", "media/coffee.png"}})),
               absl::StatusCode::kResourceExhausted, "image 0");
  ExpectStatus(Prep(*p, {{"messages",
                         {{{"role", "user"},
                           {"content", {{{"type", "video"}, {"path", "media/tree.avi"}}}}}}}}),
               absl::StatusCode::kResourceExhausted, "video 0");
}

TEST(Preprocessor, RequestOverridesAreValidated) {
  auto p = Make();
  nlohmann::json req = ImageRequest({{"type", "image"}, {"path", "media/fruits.jpg"}});
  req["processor"] = {{"size", {{"longest_edge", 8192}}}, {"max_image_size", {{"longest_edge", 64}}}};
  EXPECT_EQ(Prep(*p, req).code(), absl::StatusCode::kInvalidArgument);
}

TEST(Preprocessor, BatchesAreLeftPaddedAndOneBadItemNamesItsConversation) {
  auto p = Make();
  nlohmann::json req = {{"conversations",
                         {{{{"role", "user"}, {"content", "Hi"}}},
                          {{{"role", "user"}, {"content", "A longer question, with more words."}}}}}};
  auto parsed = ParsePrepareRequest(req.dump());
  ASSERT_TRUE(parsed.ok());
  auto batch = p->Prepare(*parsed);
  ASSERT_TRUE(batch.ok()) << batch.status();
  ASSERT_EQ(batch->input_ids.size(), 2u);
  EXPECT_EQ(batch->input_ids[0].size(), batch->input_ids[1].size());
  EXPECT_EQ(batch->input_ids[0][0], 2);
  EXPECT_EQ(batch->attention_mask[0][0], 0);
  EXPECT_EQ(batch->input_ids[0].back(), batch->input_ids[1].back());
  EXPECT_FALSE(batch->pixels.defined());

  req["conversations"][1] = {{{"role", "user"},
                              {"content", {{{"type", "image"}, {"path", "media/missing.png"}}}}}};
  ExpectStatus(Prep(*p, req), absl::StatusCode::kNotFound, "conversation 1, image 0");
}

TEST(Preprocessor, UnknownChatTemplateIsRefusedAtCreate) {
  const char* dir = std::getenv("TEST_TMPDIR");
  const std::string model = std::string(dir ? dir : "/tmp") + "/model";
  mkdir(model.c_str(), 0755);
  for (const char* f : {"tokenizer.json", "preprocessor_config.json", "processor_config.json"}) {
    std::ofstream(model + "/" + f) << ReadFile(std::string(kModel) + "/" + f);
  }
  std::ofstream(model + "/chat_template.json") << R"({"chat_template": "{{ messages }}"})";
  PreprocessorOptions options;
  options.model_dir = model;
  auto p = Preprocessor::Create(options);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace smolserve::preprocess

namespace smolserve::preprocess {
namespace {

// Probe finding: clients chose the tile size (up to 4096) and other processor options freely.
TEST(PreprocessorCaps, ProcessorOptionsAreCappedByTheServer) {
  auto p = Make();
  auto with = [&](nlohmann::json processor) {
    nlohmann::json r = ImageRequest({{"type", "image"}, {"path", "media/fruits.jpg"}});
    r["processor"] = processor;
    return Prep(*p, r);
  };
  ExpectStatus(with({{"max_image_size", {{"longest_edge", 4096}}}}), absl::StatusCode::kInvalidArgument,
               "max_image_size 4096 is over this server's limit of 512");
  MediaLimits small;
  small.max_longest_edge = 1024;
  nlohmann::json r = ImageRequest({{"type", "image"}, {"path", "media/fruits.jpg"}});
  r["processor"] = {{"size", {{"longest_edge", 2048}}}};
  ExpectStatus(Prep(*Make(small), r), absl::StatusCode::kInvalidArgument,
               "size.longest_edge 2048 is over this server's limit of 1024");
  ExpectStatus(with({{"video", {{"fps", 1000}}}}), absl::StatusCode::kInvalidArgument, "video.fps");
  ExpectStatus(with({{"video", {{"num_frames", 500}}}}), absl::StatusCode::kInvalidArgument,
               "video.num_frames");
  EXPECT_TRUE(with({{"max_image_size", {{"longest_edge", 512}}}}).ok());
}

// Probe findings: small files became large buffers, and a request's decoding had no budget.
TEST(PreprocessorCaps, DecodedPixelsPerRequestAreBudgeted) {
  MediaLimits limits;
  limits.max_decoded_pixels_per_request = 300 * 1000;  // fruits.jpg is 512x480 = 245,760
  auto p = Make(limits);
  nlohmann::json one = ImageRequest({{"type", "image"}, {"path", "media/fruits.jpg"}});
  EXPECT_TRUE(Prep(*p, one).ok());
  nlohmann::json two = {{"messages", {{{"role", "user"},
                                       {"content", {{{"type", "image"}, {"path", "media/fruits.jpg"}},
                                                    {{"type", "image"}, {"path", "media/fruits.jpg"}},
                                                    {{"type", "text"}, {"text", "?"}}}}}}}};
  ExpectStatus(Prep(*p, two), absl::StatusCode::kResourceExhausted, "image 1");
  MediaLimits video_limits;
  video_limits.max_decoded_pixels_per_request = 10 * 1000 * 1000;
  auto q = Make(video_limits);
  ExpectStatus(Prep(*q, {{"messages", {{{"role", "user"},
                                        {"content", {{{"type", "video"}, {"path", "media/Megamind.avi"}}}}}}}}),
               absl::StatusCode::kResourceExhausted, "decoded pixels");
  MediaLimits tiles;
  tiles.max_tiles_per_request = 10;  // fruits.jpg gives 17 tiles at the defaults
  ExpectStatus(Prep(*Make(tiles), one), absl::StatusCode::kResourceExhausted, "tiles");
}

TEST(PreprocessorCaps, ThePixelMemoryOfRequestsInFlightIsBounded) {
  // fruits.jpg: 17 tiles of 512x512 (uint8 pixels + mask: 17 x 1 MiB).
  ByteBudget budget(20 << 20);  // room for one such request, not two
  PreprocessorOptions options;
  options.model_dir = kModel;
  options.media_access.base_dir = "tests/golden";
  options.media_budget = &budget;
  auto p = Preprocessor::Create(options);
  ASSERT_TRUE(p.ok());
  auto req = ParsePrepareRequest(ImageRequest({{"type", "image"}, {"path", "media/fruits.jpg"}}).dump());
  ASSERT_TRUE(req.ok());
  {
    ByteBudget tight(10 << 20);
    options.media_budget = &tight;
    auto small = Preprocessor::Create(options);
    absl::StatusOr<PreparedBatch> refused = (*small)->Prepare(*req);
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted) << refused.status();
    EXPECT_TRUE(RetryAfterMs(refused.status()).has_value());
    EXPECT_EQ(tight.in_use(), 0);
  }
  absl::StatusOr<PreparedBatch> first = (*p)->Prepare(*req);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(budget.in_use(), int64_t{17} * (512 * 512 * 4 + 1));
  absl::StatusOr<PreparedBatch> second = (*p)->Prepare(*req);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kResourceExhausted);
  first = absl::UnknownError("released");  // the batch is gone: its memory is given back
  EXPECT_EQ(budget.in_use(), 0);
  EXPECT_TRUE((*p)->Prepare(*req).ok());
}

}  // namespace
}  // namespace smolserve::preprocess
