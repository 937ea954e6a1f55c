// The parts of `smolvlm bench` that need no server: mix parsing and draws, sweeps,
// percentiles, content ids, the point summary and the sweep table.
#include "tools/smolvlm/bench.h"

#include <algorithm>

#include "gtest/gtest.h"

namespace smolserve::cli {
namespace {

TEST(MediaMix, Parses) {
  auto mix = ParseMediaMix("text=1,image=2.5, images2=0,video=1");
  ASSERT_TRUE(mix.ok()) << mix.status();
  EXPECT_EQ(mix->weight[0], 1);
  EXPECT_EQ(mix->weight[1], 2.5);
  EXPECT_EQ(mix->weight[2], 0);
  EXPECT_EQ(mix->weight[3], 1);
  EXPECT_EQ(MediaMixString(*mix), "text=1,image=2.5,video=1");
  // Kinds not named weigh 0.
  auto only = ParseMediaMix("video=3");
  ASSERT_TRUE(only.ok());
  EXPECT_EQ(only->weight[0], 0);
  EXPECT_EQ(only->weight[3], 3);
}

TEST(MediaMix, Rejects) {
  for (const char* bad : {"", "text=0", "audio=1", "text", "text=-1", "text=x", "text=nan"}) {
    EXPECT_FALSE(ParseMediaMix(bad).ok()) << bad;
  }
}

TEST(DrawKinds, DeterministicAndWeighted) {
  auto mix = ParseMediaMix("text=1,image=3");
  ASSERT_TRUE(mix.ok());
  const auto a = DrawKinds(*mix, 7, 4000);
  EXPECT_EQ(a, DrawKinds(*mix, 7, 4000));
  EXPECT_NE(a, DrawKinds(*mix, 8, 4000));
  // A prefix of a longer draw is the shorter draw.
  const auto prefix = DrawKinds(*mix, 7, 10);
  EXPECT_TRUE(std::equal(prefix.begin(), prefix.end(), a.begin()));
  int counts[4] = {0, 0, 0, 0};
  for (BenchKind k : a) ++counts[static_cast<int>(k)];
  EXPECT_EQ(counts[2] + counts[3], 0);
  EXPECT_NEAR(counts[1] / 4000.0, 0.75, 0.03);
  // A single kind.
  for (BenchKind k : DrawKinds(*ParseMediaMix("images2=1"), 1, 50)) EXPECT_EQ(k, BenchKind::kImages2);
}

TEST(Sweep, Parses) {
  auto s = ParseSweep("1, 4,16");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(*s, (std::vector<int>{1, 4, 16}));
  EXPECT_FALSE(ParseSweep("").ok());
  EXPECT_FALSE(ParseSweep("0").ok());
  EXPECT_FALSE(ParseSweep("1,x").ok());
}

TEST(Percentile, LinearInterpolation) {
  EXPECT_EQ(Percentile({}, 0.5), 0);
  EXPECT_EQ(Percentile({5}, 0.99), 5);
  // numpy.percentile([1, 2, 3, 4], [50, 95, 99]) = 2.5, 3.85, 3.97
  EXPECT_DOUBLE_EQ(Percentile({4, 1, 3, 2}, 0.5), 2.5);
  EXPECT_NEAR(Percentile({4, 1, 3, 2}, 0.95), 3.85, 1e-12);
  EXPECT_NEAR(Percentile({4, 1, 3, 2}, 0.99), 3.97, 1e-12);
  EXPECT_EQ(Percentile({4, 1, 3, 2}, 0), 1);
  EXPECT_EQ(Percentile({4, 1, 3, 2}, 1), 4);
}

TEST(ContentId, Sha256) {
  EXPECT_EQ(ContentId("abc"), "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_NE(ContentId("abd"), ContentId("abc"));
}

RequestRecord Ok(BenchKind kind, double ttft, std::vector<double> itl, double e2e, int out, int tiles,
                 int cached) {
  RequestRecord r;
  r.kind = kind;
  r.ok = true;
  r.ttft_ms = ttft;
  r.itl_ms = std::move(itl);
  r.e2e_ms = e2e;
  r.output_tokens = out;
  r.prompt_tokens = 100;
  r.preprocess_ms = 10;
  r.vision_ms = tiles ? 200 : 0;
  r.prefill_ms = 50;
  r.decode_ms = 30;
  r.tiles = tiles;
  r.cached_tiles = cached;
  return r;
}

TEST(SummarizePoint, Numbers) {
  std::vector<RequestRecord> records = {
      Ok(BenchKind::kText, 100, {10, 20}, 130, 3, 0, 0),
      Ok(BenchKind::kImage, 300, {30, 40}, 370, 3, 13, 13),
      Ok(BenchKind::kImage, 200, {50}, 250, 2, 13, 0),
  };
  RequestRecord bad;
  bad.error = "UNAVAILABLE: vision: down";
  records.push_back(bad);
  RequestRecord bad2;
  bad2.error = "second";
  records.push_back(bad2);
  PointInfo info;
  info.label = "after";
  info.mode = "target";
  info.target = "h:1";
  info.concurrency = 2;
  info.requests = 5;
  info.new_tokens = 3;
  info.mix = "text=1,image=1";
  const auto j = SummarizePoint(info, records, 2.0, {{"stage_threads", 2}});
  EXPECT_EQ(j["label"], "after");
  EXPECT_EQ(j["stage_threads"], 2);
  EXPECT_EQ(j["ok"], 3);
  EXPECT_EQ(j["failed"], 2);
  EXPECT_EQ(j["first_error"], "UNAVAILABLE: vision: down");
  EXPECT_EQ(j["ok_by_kind"]["text"], 1);
  EXPECT_EQ(j["ok_by_kind"]["image"], 2);
  EXPECT_DOUBLE_EQ(j["requests_per_s"].get<double>(), 1.5);
  EXPECT_EQ(j["output_tokens"], 8);
  EXPECT_DOUBLE_EQ(j["output_tokens_per_s"].get<double>(), 4.0);
  EXPECT_EQ(j["prompt_tokens"], 300);
  EXPECT_DOUBLE_EQ(j["ttft_ms"]["p50"].get<double>(), 200);
  EXPECT_DOUBLE_EQ(j["ttft_ms"]["mean"].get<double>(), 200);
  EXPECT_DOUBLE_EQ(j["ttft_ms"]["p99"].get<double>(), 298);
  EXPECT_DOUBLE_EQ(j["itl_ms"]["p50"].get<double>(), 30);  // of 10, 20, 30, 40, 50
  EXPECT_DOUBLE_EQ(j["e2e_ms"]["p50"].get<double>(), 250);
  EXPECT_DOUBLE_EQ(j["stage_busy_ms"]["vision"].get<double>(), 400);
  EXPECT_DOUBLE_EQ(j["stage_busy_frac"]["vision"].get<double>(), 0.2);
  EXPECT_DOUBLE_EQ(j["stage_busy_frac"]["decode"].get<double>(), 0.045);
  EXPECT_EQ(j["tiles"], 26);
  EXPECT_DOUBLE_EQ(j["tiles_per_s"].get<double>(), 13);
  EXPECT_EQ(j["cached_tiles"], 13);
  EXPECT_DOUBLE_EQ(j["cache_hit_rate"].get<double>(), 0.5);

  info.concurrency = 4;
  const auto j2 = SummarizePoint(info, {}, 1.0);
  EXPECT_EQ(j2["ok"], 0);
  EXPECT_EQ(j2["cache_hit_rate"], 0.0);
  const std::string table = SweepTable({j, j2});
  EXPECT_NE(table.find("TTFT p50"), std::string::npos) << table;
  EXPECT_NE(table.find("    2     3      2    1.500       4.00      200.0"), std::string::npos) << table;
  EXPECT_NE(table.find("    4     0      0"), std::string::npos) << table;
  EXPECT_NE(table.find(" 50.0\n"), std::string::npos) << table;  // cache hit %
}

}  // namespace
}  // namespace smolserve::cli
