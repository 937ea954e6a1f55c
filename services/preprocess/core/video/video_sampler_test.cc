#include "services/preprocess/core/video/video_sampler.h"

#include <cmath>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace smolserve::preprocess {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;

std::vector<int64_t> Sample(int64_t n, double video_fps, double duration,
                            const SamplingOptions& o = {}) {
  auto r = SampleFrameIndices(n, video_fps, duration, o);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *r : std::vector<int64_t>{};
}

TEST(PythonRound, HalfToEven) {
  EXPECT_EQ(PythonRound(2.5), 2.0);
  EXPECT_EQ(PythonRound(3.5), 4.0);
  EXPECT_EQ(PythonRound(0.5), 0.0);
  EXPECT_EQ(PythonRound(1.5), 2.0);
  EXPECT_EQ(PythonRound(2.4999999), 2.0);
  EXPECT_EQ(PythonRound(11.26126126126126), 11.0);
}

TEST(NumpyLinspace, MatchesNumpy) {
  // np.linspace(0, 269, 11)
  const std::vector<double> y = NumpyLinspace(0, 269, 11);
  ASSERT_EQ(y.size(), 11u);
  EXPECT_EQ(y[1], 26.9);
  EXPECT_EQ(y[10], 269.0);
  EXPECT_THAT(NumpyLinspace(3, 9, 1), ElementsAre(3.0));
  EXPECT_THAT(NumpyLinspace(5, 5, 3), ElementsAre(5.0, 5.0, 5.0));
}

TEST(SampleFrameIndices, DefaultSamplingFixture) {
  // video_default_sampling: 270 frames, 2997/125 fps, fps=1, max 64 -> 11 frames.
  const double fps = 2997.0 / 125.0;
  EXPECT_THAT(Sample(270, fps, 270 / fps),
              ElementsAre(0, 26, 53, 80, 107, 134, 161, 188, 215, 242, 269));
}

TEST(SampleFrameIndices, VfrFixtureIndexesDecodedFrames) {
  // video_vfr_8_frames: header 444 frames at 1e6/66667 fps, 68 decodable, num_frames=8.
  const double fps = 1000000.0 / 66667.0;
  SamplingOptions o;
  o.num_frames = 8;
  EXPECT_THAT(Sample(68, fps, 444 / fps, o), ElementsAre(0, 9, 19, 28, 38, 47, 57, 67));
}

TEST(SampleFrameIndices, BankersRoundingOfEstimate) {
  // fps * duration = 2.5 -> round() = 2 frames, not 3.
  EXPECT_THAT(Sample(100, 10.0, 2.5), ElementsAre(0, 99));
  // 3.5 -> 4.
  EXPECT_THAT(Sample(100, 10.0, 3.5), ElementsAre(0, 33, 66, 99));
}

TEST(SampleFrameIndices, DesiredAtLeastOne) {
  EXPECT_THAT(Sample(10, 25.0, 0.4), ElementsAre(0));
  EXPECT_THAT(Sample(1, 25.0, 0.04), ElementsAre(0));
  EXPECT_THAT(Sample(7, 25.0, 0.0), ElementsAre(0));
}

TEST(SampleFrameIndices, MaxFramesCaps) {
  SamplingOptions o;
  o.max_frames = 4;
  EXPECT_THAT(Sample(300, 10.0, 30.0, o), ElementsAre(0, 99, 199, 299));
  o.num_frames = 2;  // overrides max_frames
  EXPECT_THAT(Sample(300, 10.0, 30.0, o), ElementsAre(0, 299));
}

TEST(SampleFrameIndices, SkipWindowForLongVideo) {
  // 100 s at 10 fps, skip 1 s, max 64 frames at 1 fps: 100 - 2 > 64 -> window [10, 990].
  SamplingOptions o;
  o.skip_secs = 1.0;
  const std::vector<double> y = NumpyLinspace(10, 990, 64);
  std::vector<int64_t> expected;
  for (double v : y) expected.push_back(static_cast<int64_t>(v));
  const std::vector<int64_t> got = Sample(1000, 10.0, 100.0, o);
  EXPECT_THAT(got, ElementsAreArray(expected));
  EXPECT_EQ(got.front(), 10);
  EXPECT_EQ(got.back(), 990);
  // Not long enough (66 s <= 2 * 1 + 64): no skipping.
  const std::vector<int64_t> short_video = Sample(660, 10.0, 66.0, o);
  EXPECT_EQ(short_video.front(), 0);
  EXPECT_EQ(short_video.back(), 659);
  // skip_secs = 0 (the fixtures' path) never skips.
  SamplingOptions no_skip;
  const std::vector<int64_t> full = Sample(1000, 10.0, 100.0, no_skip);
  EXPECT_EQ(full.front(), 0);
  EXPECT_EQ(full.back(), 999);
}

TEST(SampleFrameIndices, LowFpsVideoDuplicatesRemoved) {
  // 0.5 fps video, 20 s, 10 frames: target 1 fps wants 20 samples of 10 frames -> unique.
  EXPECT_THAT(Sample(10, 0.5, 20.0), ElementsAre(0, 1, 2, 3, 4, 5, 6, 7, 8, 9));
  // 3 frames, 6 s at 0.5 fps -> 6 samples of [0, 2] -> 0,0,0,1,1,2 -> unique.
  EXPECT_THAT(Sample(3, 0.5, 6.0), ElementsAre(0, 1, 2));
}

TEST(SampleFrameIndices, SingleFrameVideo) {
  EXPECT_THAT(Sample(1, 25.0, 5.0), ElementsAre(0));
}

TEST(SampleFrameIndices, RejectsBadInput) {
  EXPECT_FALSE(SampleFrameIndices(0, 25, 1, {}).ok());
  SamplingOptions o;
  o.fps = 0;
  EXPECT_FALSE(SampleFrameIndices(10, 25, 1, o).ok());
  o = {};
  o.num_frames = 0;
  EXPECT_FALSE(SampleFrameIndices(10, 25, 1, o).ok());
  EXPECT_FALSE(SampleFrameIndices(10, 25, std::nan(""), {}).ok());
  // Huge duration: capped by max_frames, no overflow.
  EXPECT_EQ(Sample(100, 25.0, 1e300).size(), 64u);
}

TEST(TimestampForFrame, MinutesAndSeconds) {
  const double fps = 2997.0 / 125.0;
  auto ts = TimestampForFrame(269, fps);
  ASSERT_TRUE(ts.ok());
  EXPECT_EQ(ts->minutes, 0);
  EXPECT_EQ(ts->seconds, 11);
  ts = TimestampForFrame(242, fps);
  EXPECT_EQ(ts->seconds, 10);
  ts = TimestampForFrame(1500, 10.0);  // 150 s
  EXPECT_EQ(ts->minutes, 2);
  EXPECT_EQ(ts->seconds, 30);
  ts = TimestampForFrame(60000, 10.0);  // 6000 s = 100 min
  EXPECT_EQ(ts->minutes, 100);
  EXPECT_EQ(ts->seconds, 0);
  EXPECT_FALSE(TimestampForFrame(1, 0.0).ok());
}

}  // namespace
}  // namespace smolserve::preprocess
