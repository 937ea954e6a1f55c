#include "services/preprocess/core/video/video_decode.h"

#include <cstdint>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/preprocess/core/video/video_processor.h"

namespace smolserve::preprocess {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kMegamind[] = "tests/golden/media/Megamind.avi";
constexpr char kTree[] = "tests/golden/media/tree.avi";
constexpr char kTestdata[] = "services/preprocess/core/video/testdata/";

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  EXPECT_TRUE(f.good()) << "cannot open " << path;
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

FrameSelector Select(std::vector<int64_t> indices) {
  return [indices](const VideoMetadata&, int64_t) -> absl::StatusOr<std::vector<int64_t>> {
    return indices;
  };
}

FrameSelector SelectNone() { return Select({}); }

absl::Status DecodeStatus(const std::string& bytes, const MediaLimits& limits = MediaLimits()) {
  return DecodeVideo(bytes, limits, Select({0}),
                     [](int64_t, const Image&) { return absl::OkStatus(); })
      .status();
}

TEST(ProbeVideo, HeaderMetadataLikePyAv) {
  auto m = ProbeVideo(ReadFile(kMegamind), MediaLimits());
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->total_num_frames, 270);
  EXPECT_EQ(m->fps, 23.976);
  EXPECT_EQ(m->fps_num, 2997);
  EXPECT_EQ(m->fps_den, 125);
  EXPECT_EQ(m->duration, 11.26126126126126);
  EXPECT_EQ(m->width, 720);
  EXPECT_EQ(m->height, 528);
  EXPECT_EQ(m->container, "avi");
  EXPECT_EQ(m->codec, "mpeg4");

  auto t = ProbeVideo(ReadFile(kTree), MediaLimits());
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->total_num_frames, 444);
  EXPECT_EQ(t->fps, 14.999925000374999);
  EXPECT_EQ(t->duration, 29.600148);  // exact rational 444 * 66667 / 1e6
  EXPECT_EQ(t->codec, "cinepak");
}

TEST(DecodeVideo, CountsDecodedFramesNotHeaderFrames) {
  int64_t seen_count = -1;
  auto r = DecodeVideo(
      ReadFile(kTree), MediaLimits(),
      [&](const VideoMetadata& m, int64_t decoded) -> absl::StatusOr<std::vector<int64_t>> {
        seen_count = decoded;
        EXPECT_EQ(m.total_num_frames, 444);
        return std::vector<int64_t>{0, 67};
      },
      [](int64_t, const Image& rgb) {
        EXPECT_EQ(rgb.height, 240);
        EXPECT_EQ(rgb.width, 320);
        EXPECT_EQ(rgb.mode, PixelMode::kRGB);
        return absl::OkStatus();
      });
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(seen_count, 68);
  EXPECT_EQ(r->decoded_frame_count, 68);
  EXPECT_THAT(r->frame_indices, ElementsAre(0, 67));
}

TEST(DecodeVideo, FramesArriveInIndexOrderAndConsumerErrorsPropagate) {
  std::vector<int64_t> got;
  auto r = DecodeVideo(ReadFile(kMegamind), MediaLimits(), Select({3, 100, 269}),
                       [&](int64_t i, const Image&) {
                         got.push_back(i);
                         return absl::OkStatus();
                       });
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(got, ElementsAre(3, 100, 269));

  auto failed = DecodeVideo(ReadFile(kMegamind), MediaLimits(), Select({5}),
                            [](int64_t, const Image&) { return absl::CancelledError("stop"); });
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kCancelled);
}

TEST(DecodeVideo, SecondPassGivesTheSameFramesAsKeptReferences) {
  const std::string bytes = ReadFile(kMegamind);
  // Consistent selector: the prediction from the header count holds, no second pass.
  auto direct = DecodeVideoFrames(bytes, MediaLimits(), Select({100, 200}));
  ASSERT_TRUE(direct.ok()) << direct.status();
  // A selector whose first (predicting) answer differs forces the second decoding pass.
  int calls = 0;
  auto two_pass = DecodeVideoFrames(
      bytes, MediaLimits(),
      [&calls](const VideoMetadata&, int64_t) -> absl::StatusOr<std::vector<int64_t>> {
        return ++calls == 1 ? std::vector<int64_t>{5} : std::vector<int64_t>{100, 200};
      });
  ASSERT_TRUE(two_pass.ok()) << two_pass.status();
  EXPECT_EQ(calls, 2);
  ASSERT_EQ(direct->frames.size(), 2u);
  ASSERT_EQ(two_pass->frames.size(), 2u);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(direct->frames[i].pixels, two_pass->frames[i].pixels) << i;
  }
}

TEST(DecodeVideo, MissingFrameCountFallsBackToDecodedCount) {
  auto r = DecodeVideo(ReadFile(std::string(kTestdata) + "no_frame_count.mkv"), MediaLimits(),
                       SelectNone(), [](int64_t, const Image&) { return absl::OkStatus(); });
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->decoded_frame_count, 10);
  EXPECT_EQ(r->metadata.total_num_frames, 10);
  EXPECT_FALSE(r->metadata.total_from_header);
  EXPECT_EQ(r->metadata.fps, 5.0);
  EXPECT_EQ(r->metadata.duration, 2.0);

  VideoOptions o;
  o.longest_edge = 64;
  o.max_image_size = 32;
  auto p = ProcessVideo(ReadFile(std::string(kTestdata) + "no_frame_count.mkv"), o, MediaLimits());
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_THAT(p->sampled_frame_indices, ElementsAre(0, 9));
  ASSERT_EQ(p->frames.size(), 2u);
  EXPECT_EQ(p->frames[0].height, 32);
  EXPECT_EQ(p->frames[0].width, 32);
  EXPECT_EQ(p->duration_int, 2);
}

TEST(DecodeVideo, EmptyInput) {
  const absl::Status s = DecodeStatus("");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
}

TEST(DecodeVideo, RandomBytes) {
  std::mt19937 rng(1234);
  for (size_t size : {1u, 16u, 1000u, 100000u}) {
    std::string bytes(size, '\0');
    for (char& c : bytes) c = static_cast<char>(rng() & 0xff);
    const absl::Status s = DecodeStatus(bytes);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << size << ": " << s;
  }
}

TEST(DecodeVideo, TruncatedFilesAreRejected) {
  // Cut in half: the last packet read is short (flagged corrupt by the demuxer). Some frames
  // would decode, but a partial video is never returned.
  for (const char* path : {kMegamind, kTree}) {
    const std::string full = ReadFile(path);
    const absl::Status s = DecodeStatus(full.substr(0, full.size() / 2));
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << path << ": " << s;
  }
  // Only the container header: no decodable frame.
  const std::string header_only = ReadFile(kMegamind).substr(0, 6000);
  const absl::Status s = DecodeStatus(header_only);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
}

TEST(DecodeVideo, CorruptedBytesNeverCrash) {
  // Random byte corruption anywhere in a real file: decoding must end with OK (the damage went
  // unnoticed, e.g. inside an unused audio packet) or an error status, never a crash.
  std::mt19937 rng(42);
  for (const char* path : {kMegamind, kTree}) {
    const std::string original = ReadFile(path);
    for (int trial = 0; trial < 8; ++trial) {
      std::string bytes = original;
      const size_t begin = trial < 2 ? 0 : bytes.size() / 8;  // header damage in 2 trials
      for (int k = 0; k < 40; ++k) {
        const size_t pos = begin + rng() % (bytes.size() - begin);
        bytes[pos] = static_cast<char>(rng() & 0xff);
      }
      const absl::Status s = DecodeStatus(bytes);
      EXPECT_TRUE(s.ok() || s.code() == absl::StatusCode::kInvalidArgument ||
                  s.code() == absl::StatusCode::kResourceExhausted)
          << path << " trial " << trial << ": " << s;
    }
  }
}

TEST(DecodeVideo, NoVideoStream) {
  const absl::Status s = DecodeStatus(ReadFile(std::string(kTestdata) + "audio_only.wav"));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("no video stream"));
}

TEST(DecodeVideo, StillImageIsNotAVideo) {
  const absl::Status s = DecodeStatus(ReadFile(std::string(kTestdata) + "still_image.png"));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("still image"));
}

TEST(DecodeVideo, DurationOverLimit) {
  const std::string long_video = ReadFile(std::string(kTestdata) + "long_610s.avi");
  auto m = ProbeVideo(long_video, MediaLimits());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kResourceExhausted) << m.status();
  EXPECT_EQ(DecodeStatus(long_video).code(), absl::StatusCode::kResourceExhausted);
  MediaLimits relaxed;
  relaxed.max_video_duration_s = 1000;
  EXPECT_TRUE(DecodeStatus(long_video, relaxed).ok());
  MediaLimits strict;
  strict.max_video_duration_s = 10;
  EXPECT_EQ(DecodeStatus(ReadFile(kMegamind), strict).code(),
            absl::StatusCode::kResourceExhausted);
}

TEST(DecodeVideo, OtherLimits) {
  const std::string megamind = ReadFile(kMegamind);
  MediaLimits bytes;
  bytes.max_encoded_bytes = 1000;
  EXPECT_EQ(DecodeStatus(megamind, bytes).code(), absl::StatusCode::kResourceExhausted);
  MediaLimits pixels;
  pixels.max_video_frame_pixels = 720 * 527;
  EXPECT_EQ(DecodeStatus(megamind, pixels).code(), absl::StatusCode::kResourceExhausted);
  MediaLimits frames;
  frames.max_video_decoded_frames = 269;  // header says 270
  EXPECT_EQ(DecodeStatus(megamind, frames).code(), absl::StatusCode::kResourceExhausted);
  // Without a header count the limit is enforced while decoding.
  MediaLimits few;
  few.max_video_decoded_frames = 5;
  EXPECT_EQ(DecodeStatus(ReadFile(std::string(kTestdata) + "no_frame_count.mkv"), few).code(),
            absl::StatusCode::kResourceExhausted);
}

TEST(ProcessVideo, RejectsTooManyRequestedFramesAndBadSizes) {
  const std::string mkv = ReadFile(std::string(kTestdata) + "no_frame_count.mkv");
  VideoOptions o;
  o.sampling.num_frames = 65;
  EXPECT_EQ(ProcessVideo(mkv, o, MediaLimits()).status().code(),
            absl::StatusCode::kResourceExhausted);
  VideoOptions bad;
  bad.max_image_size = 0;
  EXPECT_EQ(ProcessVideo(mkv, bad, MediaLimits()).status().code(),
            absl::StatusCode::kInvalidArgument);
  VideoOptions bad_fps;
  bad_fps.sampling.fps = -1;
  EXPECT_EQ(ProcessVideo(mkv, bad_fps, MediaLimits()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(VideoResizeOutputSize, LongestEdgeEvenBump) {
  EXPECT_EQ(VideoResizeOutputSize(528, 720, 2048), std::make_pair(1502, 2048));
  EXPECT_EQ(VideoResizeOutputSize(240, 320, 2048), std::make_pair(1536, 2048));
  EXPECT_EQ(VideoResizeOutputSize(720, 528, 2048), std::make_pair(2048, 1502));
  EXPECT_EQ(VideoResizeOutputSize(100, 100, 512), std::make_pair(512, 512));
  EXPECT_EQ(VideoResizeOutputSize(1201, 37, 2048), std::make_pair(2048, 64));  // 63 -> 64
  EXPECT_EQ(VideoResizeOutputSize(10, 20, 8192), std::make_pair(2048, 4096));  // clamp 4096
  EXPECT_EQ(VideoResizeOutputSize(1, 5000, 2048), std::make_pair(1, 2048));    // int() = 0 -> 1
}

}  // namespace
}  // namespace smolserve::preprocess
