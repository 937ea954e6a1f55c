// EncodeBatcher against the tiny golden model (tests/golden/models, 512x512 tiles, hidden 32,
// 64 rows of 32 per tile): cross-request batches give every request exactly what encoding it
// alone gives, queues are bounded, cancellation and deadlines drop requests, and the
// embedding cache answers repeated tiles bit-exactly without a model call.
#include "services/vision/core/encode_batcher.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/model/config.h"
#include "common/model/weights.h"
#include "gtest/gtest.h"

namespace smolserve::vision {
namespace {

using std::chrono::milliseconds;

constexpr char kTinyDir[] = "tests/golden/models/tiny-smolvlm2-256m-geometry";

at::Tensor RandomTiles(int seed, int64_t n, int64_t size = 512) {
  at::manual_seed(seed);
  return at::rand({n, 3, size, size}, at::kFloat).mul_(2).sub_(1);
}

double MaxAbsDiff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kFloat) - b.to(at::kFloat)).abs().max().item<double>();
}

// Submits and hands back a future of the answer (or the refusal).
struct Pending {
  absl::Status submitted;
  std::future<absl::StatusOr<EncodeResult>> answer;
  bool answered_during_submit = false;
};

Pending SubmitJob(EncodeBatcher& b, EncodeJob job) {
  auto promise = std::make_shared<std::promise<absl::StatusOr<EncodeResult>>>();
  Pending p;
  p.answer = promise->get_future();
  auto in_submit = std::make_shared<std::atomic<bool>>(true);
  auto answered_early = std::make_shared<std::atomic<bool>>(false);
  p.submitted = b.Submit(std::move(job), [promise, in_submit, answered_early](
                                             absl::StatusOr<EncodeResult> r) {
    if (in_submit->load()) answered_early->store(true);
    promise->set_value(std::move(r));
  });
  in_submit->store(false);
  p.answered_during_submit = answered_early->load();
  return p;
}

Pending Submit(EncodeBatcher& b, const at::Tensor& pv, const at::Tensor& mask = {}) {
  EncodeJob job;
  job.pixel_values = pv;
  job.pixel_attention_mask = mask;
  return SubmitJob(b, std::move(job));
}

absl::StatusOr<EncodeResult> Wait(Pending& p) {
  EXPECT_TRUE(p.submitted.ok()) << p.submitted;
  if (!p.submitted.ok()) return p.submitted;
  EXPECT_EQ(p.answer.wait_for(std::chrono::seconds(60)), std::future_status::ready);
  return p.answer.get();
}

class EncodeBatcherTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    at::set_num_threads(2);
    auto config = model::LoadModelConfig(kTinyDir);
    ASSERT_TRUE(config.ok()) << config.status();
    auto store = model::WeightStore::Open(kTinyDir);
    ASSERT_TRUE(store.ok()) << store.status();
    auto m = VisionModel::Create(*config, **store);
    ASSERT_TRUE(m.ok()) << m.status();
    model_ = m->release();
  }
  static void TearDownTestSuite() { delete model_; }

  static std::unique_ptr<EncodeBatcher> Make(EncodeBatcherOptions o) {
    o.threads = 2;
    auto b = EncodeBatcher::Create(model_, o);
    EXPECT_TRUE(b.ok()) << b.status();
    return b.ok() ? std::move(*b) : nullptr;
  }

  // The request encoded alone, on this thread.
  static VisionOutput Alone(const at::Tensor& pv, const at::Tensor& mask = {}) {
    auto out = model_->Encode(pv, mask);
    EXPECT_TRUE(out.ok()) << out.status();
    return out.ok() ? *std::move(out) : VisionOutput{};
  }

  static void ExpectSameAsAlone(const absl::StatusOr<EncodeResult>& got, const at::Tensor& pv,
                                const at::Tensor& mask, const std::string& what) {
    SCOPED_TRACE(what);
    ASSERT_TRUE(got.ok()) << got.status();
    const VisionOutput want = Alone(pv, mask);
    EXPECT_EQ(got->real_tile_indices, want.real_tile_indices);
    ASSERT_EQ(got->image_hidden_states.sizes(), want.image_hidden_states.sizes());
    EXPECT_EQ(got->tiles, want.image_hidden_states.size(0));
    EXPECT_LT(MaxAbsDiff(got->image_hidden_states, want.image_hidden_states), 1e-5);
    // Rows are in the request's own order: each row is closest to its own reference row.
    for (int64_t i = 0; i + 1 < want.image_hidden_states.size(0); ++i) {
      if (MaxAbsDiff(want.image_hidden_states[i], want.image_hidden_states[i + 1]) < 1e-3) continue;
      EXPECT_GT(MaxAbsDiff(got->image_hidden_states[i], want.image_hidden_states[i + 1]), 1e-3);
    }
  }

  static VisionModel* model_;
};
VisionModel* EncodeBatcherTest::model_ = nullptr;

TEST_F(EncodeBatcherTest, ConcurrentRequestsShareModelCallsAndGetTheirOwnRows) {
  EncodeBatcherOptions o;
  o.max_batch_tiles = 4;
  o.max_wait = milliseconds(2000);  // batches form when 4 tiles are queued, not by timeout
  o.max_queued_tiles = 64;
  auto b = Make(o);
  ASSERT_NE(b, nullptr);

  struct Case {
    std::string name;
    at::Tensor pv, mask;
  };
  std::vector<Case> cases;
  cases.push_back({"one tile", RandomTiles(1, 1), {}});
  {
    // Real, padding, real; the first tile's mask covers a top-left 320x448 rectangle.
    at::Tensor pv = RandomTiles(2, 3);
    pv[1].zero_();
    at::Tensor mask = at::ones({3, 512, 512}, at::kLong);
    mask[0].zero_();
    mask[0].narrow(0, 0, 320).narrow(1, 0, 448).fill_(1);
    mask[1].zero_();
    cases.push_back({"padding and partial mask", pv, mask});
  }
  cases.push_back({"six tiles (split)", RandomTiles(3, 6), {}});
  cases.push_back({"[B, N] layout", RandomTiles(4, 2).reshape({1, 2, 3, 512, 512}), {}});
  cases.push_back({"all padding", at::zeros({2, 3, 512, 512}), at::zeros({2, 512, 512}, at::kBool)});
  cases.push_back({"256x256 tile", RandomTiles(5, 1, 256), {}});
  cases.push_back({"two tiles", RandomTiles(6, 2), {}});

  std::vector<Pending> pending(cases.size());
  std::promise<void> go;
  std::shared_future<void> start = go.get_future().share();
  std::vector<std::thread> threads;
  for (size_t i = 0; i < cases.size(); ++i) {
    threads.emplace_back([&, i] {
      start.wait();
      pending[i] = Submit(*b, cases[i].pv, cases[i].mask);
    });
  }
  go.set_value();
  for (auto& t : threads) t.join();

  int64_t rows = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    auto got = Wait(pending[i]);
    ExpectSameAsAlone(got, cases[i].pv, cases[i].mask, cases[i].name);
    if (got.ok()) rows += got->tiles;
    if (got.ok() && cases[i].name == "six tiles (split)") {
      EXPECT_GE(got->model_calls, 2);
      EXPECT_EQ(got->cached_tiles, 0);
      EXPECT_GT(got->encode_ms, 0);
    }
  }
  const EncodeBatcherStats s = b->stats();
  std::printf("model calls %ld, multi-request %ld, max tiles/call %ld, max requests/call %ld\n",
              static_cast<long>(s.model_calls), static_cast<long>(s.multi_request_calls),
              static_cast<long>(s.max_tiles_per_call), static_cast<long>(s.max_requests_per_call));
  EXPECT_EQ(rows, 1 + 2 + 6 + 2 + 1 + 1 + 2);
  EXPECT_EQ(s.tiles_encoded, rows);  // each row encoded once, padding never
  EXPECT_EQ(s.max_tiles_per_call, 4);
  EXPECT_GE(s.max_requests_per_call, 2);
  EXPECT_GE(s.multi_request_calls, 1);
  EXPECT_LT(s.model_calls, static_cast<int64_t>(cases.size()) + 1);  // fewer than one per request + split
  EXPECT_EQ(s.requests_ok, static_cast<int64_t>(cases.size()));
  EXPECT_EQ(s.queued_tiles, 0);
  EXPECT_EQ(s.queued_requests, 0);
}

TEST_F(EncodeBatcherTest, WaitZeroTakesWhatIsQueued) {
  EncodeBatcherOptions o;
  o.max_batch_tiles = 16;
  o.max_wait = milliseconds(0);
  auto b = Make(o);
  ASSERT_NE(b, nullptr);
  const at::Tensor pv = RandomTiles(7, 2);
  const auto t0 = std::chrono::steady_clock::now();
  Pending p = Submit(*b, pv);
  auto got = Wait(p);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  ExpectSameAsAlone(got, pv, {}, "wait 0");
  EXPECT_EQ(b->stats().model_calls, 1);
}

TEST_F(EncodeBatcherTest, BoundedQueueRefusesWithResourceExhausted) {
  EncodeBatcherOptions o;
  o.max_batch_tiles = 64;
  o.max_wait = milliseconds(20000);  // nothing runs before Shutdown drains the queue
  o.max_queued_tiles = 5;
  o.max_queued_requests = 3;
  auto b = Make(o);
  ASSERT_NE(b, nullptr);
  const at::Tensor two = RandomTiles(8, 2), one = RandomTiles(9, 1);
  Pending a = Submit(*b, two);
  Pending c = Submit(*b, two);
  EXPECT_TRUE(a.submitted.ok() && c.submitted.ok());
  Pending over_tiles = Submit(*b, two);  // 6 > 5 tiles
  EXPECT_EQ(over_tiles.submitted.code(), absl::StatusCode::kResourceExhausted) << over_tiles.submitted;
  Pending d = Submit(*b, one);  // 5 tiles, 3 requests
  EXPECT_TRUE(d.submitted.ok()) << d.submitted;
  Pending over_both = Submit(*b, RandomTiles(10, 1));
  EXPECT_EQ(over_both.submitted.code(), absl::StatusCode::kResourceExhausted);
  Pending too_big = Submit(*b, RandomTiles(11, 6));  // alone more than the queue holds
  EXPECT_EQ(too_big.submitted.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(std::string(too_big.submitted.message()).find("6 tiles"), std::string::npos)
      << too_big.submitted;
  EncodeBatcherStats s = b->stats();
  EXPECT_EQ(s.queued_tiles, 5);
  EXPECT_EQ(s.queued_requests, 3);
  EXPECT_EQ(s.model_calls, 0);
  EXPECT_EQ(s.requests_rejected, 3);

  b->Shutdown();  // drains: the accepted requests are answered
  ExpectSameAsAlone(Wait(a), two, {}, "a");
  ExpectSameAsAlone(Wait(c), two, {}, "c");
  ExpectSameAsAlone(Wait(d), one, {}, "d");
  s = b->stats();
  EXPECT_EQ(s.model_calls, 1);
  EXPECT_EQ(s.max_requests_per_call, 3);
  EXPECT_EQ(Submit(*b, one).submitted.code(), absl::StatusCode::kUnavailable);

  // The request bound alone.
  o.max_queued_tiles = 64;
  o.max_queued_requests = 1;
  auto b1 = Make(o);
  ASSERT_NE(b1, nullptr);
  Pending only = Submit(*b1, one);
  EXPECT_TRUE(only.submitted.ok());
  Pending second = Submit(*b1, one);
  EXPECT_EQ(second.submitted.code(), absl::StatusCode::kResourceExhausted) << second.submitted;
  EXPECT_NE(std::string(second.submitted.message()).find("queue full"), std::string::npos);
  b1->Shutdown();
  ExpectSameAsAlone(Wait(only), one, {}, "only");
}

TEST_F(EncodeBatcherTest, CancelledAndExpiredRequestsAreDroppedOthersUnaffected) {
  EncodeBatcherOptions o;
  o.max_batch_tiles = 64;
  o.max_wait = milliseconds(20000);
  auto b = Make(o);
  ASSERT_NE(b, nullptr);
  auto cancel = std::make_shared<std::atomic<bool>>(false);
  EncodeJob cancelled;
  cancelled.pixel_values = RandomTiles(12, 3);
  cancelled.is_cancelled = [cancel] { return cancel->load(); };
  bool cancelled_started = false;
  cancelled.on_start = [&] { cancelled_started = true; };
  Pending pc = SubmitJob(*b, std::move(cancelled));
  EncodeJob expired;
  expired.pixel_values = RandomTiles(13, 2);
  expired.deadline = std::chrono::steady_clock::now() + milliseconds(50);
  Pending pe = SubmitJob(*b, std::move(expired));
  const at::Tensor keep_pv = RandomTiles(14, 2);
  EncodeJob keep;
  keep.pixel_values = keep_pv;
  keep.is_cancelled = [] { return false; };
  bool keep_started = false;
  keep.on_start = [&] { keep_started = true; };
  Pending pk = SubmitJob(*b, std::move(keep));

  cancel->store(true);
  std::this_thread::sleep_for(milliseconds(100));
  b->Shutdown();
  auto rc = Wait(pc);
  EXPECT_EQ(rc.status().code(), absl::StatusCode::kCancelled) << rc.status();
  auto re = Wait(pe);
  EXPECT_EQ(re.status().code(), absl::StatusCode::kDeadlineExceeded) << re.status();
  ExpectSameAsAlone(Wait(pk), keep_pv, {}, "kept");
  EXPECT_FALSE(cancelled_started);
  EXPECT_TRUE(keep_started);
  const EncodeBatcherStats s = b->stats();
  EXPECT_EQ(s.tiles_encoded, 2);  // only the kept request's tiles
  EXPECT_EQ(s.requests_cancelled, 1);
  EXPECT_EQ(s.requests_deadline_exceeded, 1);
  EXPECT_EQ(s.queued_tiles, 0);
}

// Admission by time: once the batcher knows its time per tile, a request whose tiles cannot be
// encoded before its deadline is refused at Submit (nothing encoded for it); one without a
// deadline, or with time enough, is served.
TEST_F(EncodeBatcherTest, WorkThatCannotMeetItsDeadlineIsRefusedAtSubmit) {
  EncodeBatcherOptions o;
  o.max_wait = milliseconds(0);
  auto b = Make(o);
  ASSERT_NE(b, nullptr);
  Pending warm = Submit(*b, RandomTiles(21, 2));
  ASSERT_TRUE(Wait(warm).ok());
  const int64_t encoded = b->stats().tiles_encoded;

  EncodeJob late;
  late.pixel_values = RandomTiles(22, 3);
  late.deadline = std::chrono::steady_clock::now() + std::chrono::microseconds(1);
  Pending pl = SubmitJob(*b, std::move(late));
  EXPECT_EQ(pl.submitted.code(), absl::StatusCode::kDeadlineExceeded) << pl.submitted;
  EXPECT_NE(pl.submitted.message().find("before the deadline"), std::string::npos) << pl.submitted;

  EncodeJob roomy;
  roomy.pixel_values = RandomTiles(23, 3);
  roomy.deadline = std::chrono::steady_clock::now() + std::chrono::seconds(600);
  Pending pr = SubmitJob(*b, std::move(roomy));
  ASSERT_TRUE(Wait(pr).ok());
  const EncodeBatcherStats s = b->stats();
  EXPECT_EQ(s.tiles_encoded, encoded + 3);  // the refused request's tiles never ran
  EXPECT_EQ(s.requests_rejected, 1);
  EXPECT_EQ(s.queued_tiles, 0);
}

// A request without a real tile keeps its first (all-zero) tile, which the model would drop
// next to real tiles: it gets a model call of its own, the others still share one.
TEST_F(EncodeBatcherTest, AllPaddingRequestIsEncodedAlone) {
  EncodeBatcherOptions o;
  o.max_batch_tiles = 64;
  o.max_wait = milliseconds(20000);  // everything is queued before Shutdown drains it
  auto b = Make(o);
  ASSERT_NE(b, nullptr);
  const at::Tensor a = RandomTiles(16, 2), c = RandomTiles(17, 1);
  const at::Tensor zeros = at::zeros({2, 3, 512, 512});
  at::Tensor zero_mask = at::zeros({2, 512, 512}, at::kBool);
  zero_mask[0].narrow(0, 0, 256).narrow(1, 0, 128).fill_(true);
  Pending pa = Submit(*b, a);
  Pending pz = Submit(*b, zeros, zero_mask);
  Pending pc = Submit(*b, c);
  b->Shutdown();
  ExpectSameAsAlone(Wait(pa), a, {}, "a");
  ExpectSameAsAlone(Wait(pz), zeros, zero_mask, "all padding");
  ExpectSameAsAlone(Wait(pc), c, {}, "c");
  const EncodeBatcherStats s = b->stats();
  EXPECT_EQ(s.model_calls, 2);
  EXPECT_EQ(s.multi_request_calls, 1);
  EXPECT_EQ(s.tiles_encoded, 4);
}

TEST_F(EncodeBatcherTest, InvalidInputIsRefusedAtSubmit) {
  EncodeBatcherOptions o;
  auto b = Make(o);
  ASSERT_NE(b, nullptr);
  at::Tensor nan = RandomTiles(15, 1);
  nan[0][0][3][3] = std::nanf("");
  EXPECT_EQ(Submit(*b, nan).submitted.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Submit(*b, RandomTiles(15, 1), at::full({1, 512, 512}, 2, at::kLong)).submitted.code(),
            absl::StatusCode::kInvalidArgument);  // mask values other than 0/1
  at::Tensor holes = at::ones({1, 512, 512}, at::kLong);
  holes[0].narrow(0, 100, 40).narrow(1, 100, 40).zero_();
  EXPECT_EQ(Submit(*b, RandomTiles(15, 1), holes).submitted.code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Submit(*b, RandomTiles(15, 1, 96)).submitted.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(b->stats().requests_rejected, 4);
  EXPECT_EQ(b->stats().model_calls, 0);
}

// --- embedding cache ---

TEST_F(EncodeBatcherTest, RepeatedRequestIsAnsweredFromTheCacheBitExactly) {
  EncodeBatcherOptions o;
  o.max_wait = milliseconds(0);
  o.cache_bytes = int64_t{64} << 20;
  o.model_revision = "test-revision";
  auto b = Make(o);
  ASSERT_NE(b, nullptr);
  at::Tensor pv = RandomTiles(20, 4);
  pv[2].zero_();  // padding
  Pending first = Submit(*b, pv);
  auto r1 = Wait(first);
  ASSERT_TRUE(r1.ok()) << r1.status();
  EXPECT_EQ(r1->tiles, 3);
  EXPECT_EQ(r1->cached_tiles, 0);
  const EncodeBatcherStats s1 = b->stats();
  EXPECT_EQ(s1.tiles_encoded, 3);

  Pending again = Submit(*b, pv.clone());
  EXPECT_TRUE(again.answered_during_submit);  // no batch, no wait
  auto r2 = Wait(again);
  ASSERT_TRUE(r2.ok()) << r2.status();
  EXPECT_EQ(r2->tiles, 3);
  EXPECT_EQ(r2->cached_tiles, 3);
  EXPECT_EQ(r2->model_calls, 0);
  EXPECT_EQ(r2->real_tile_indices, r1->real_tile_indices);
  EXPECT_TRUE(at::equal(r2->image_hidden_states, r1->image_hidden_states));
  EncodeBatcherStats s2 = b->stats();
  EXPECT_EQ(s2.model_calls, s1.model_calls);
  EXPECT_EQ(s2.tiles_encoded, 3);
  EXPECT_EQ(s2.cache_hit_tiles, 3);

  // One changed pixel in tile 1: that tile misses, the others still hit.
  at::Tensor changed = pv.clone();
  changed[1][2][100][200] += 0.25f;
  Pending third = Submit(*b, changed);
  auto r3 = Wait(third);
  ASSERT_TRUE(r3.ok()) << r3.status();
  EXPECT_EQ(r3->cached_tiles, 2);
  EXPECT_EQ(b->stats().tiles_encoded, 4);
  EXPECT_TRUE(at::equal(r3->image_hidden_states[0], r1->image_hidden_states[0]));
  EXPECT_TRUE(at::equal(r3->image_hidden_states[2], r1->image_hidden_states[2]));
  EXPECT_FALSE(at::equal(r3->image_hidden_states[1], r1->image_hidden_states[1]));
  ExpectSameAsAlone(r3, changed, {}, "changed pixel");

  // The same pixels under another mask are another tile.
  at::Tensor mask = at::ones({4, 512, 512}, at::kBool);
  mask[0].narrow(0, 256, 256).zero_();
  Pending masked = Submit(*b, pv, mask);
  auto r4 = Wait(masked);
  ASSERT_TRUE(r4.ok()) << r4.status();
  EXPECT_EQ(r4->cached_tiles, 2);
  ExpectSameAsAlone(r4, pv, mask, "masked");
}

TEST_F(EncodeBatcherTest, IdenticalTilesInOneBatchAreEncodedOnce) {
  EncodeBatcherOptions o;
  o.max_wait = milliseconds(0);
  o.cache_bytes = int64_t{64} << 20;
  auto b = Make(o);
  ASSERT_NE(b, nullptr);
  const at::Tensor t = RandomTiles(21, 2);
  const at::Tensor pv = at::stack({t[0], t[1], t[0], t[0]});
  Pending p = Submit(*b, pv);
  auto r = Wait(p);
  ExpectSameAsAlone(r, pv, {}, "duplicates");
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(at::equal(r->image_hidden_states[0], r->image_hidden_states[2]));
  const EncodeBatcherStats s = b->stats();
  EXPECT_EQ(s.tiles_encoded, 2);
  EXPECT_EQ(s.duplicate_tiles, 2);
}

TEST_F(EncodeBatcherTest, DisabledCacheEncodesEveryTime) {
  EncodeBatcherOptions o;
  o.max_wait = milliseconds(0);
  o.cache_bytes = 0;
  auto b = Make(o);
  ASSERT_NE(b, nullptr);
  const at::Tensor pv = RandomTiles(22, 2);
  Pending p1 = Submit(*b, pv);
  ASSERT_TRUE(Wait(p1).ok());
  Pending p2 = Submit(*b, pv);
  auto r2 = Wait(p2);
  ASSERT_TRUE(r2.ok());
  EXPECT_EQ(r2->cached_tiles, 0);
  EXPECT_EQ(b->stats().tiles_encoded, 4);
  EXPECT_EQ(b->stats().cache.entries, 0);
}

TEST_F(EncodeBatcherTest, CacheStaysWithinItsByteBound) {
  const int64_t row_bytes = 64 * 32 * 4;  // one tile's [64, 32] float32 embedding
  EncodeBatcherOptions o;
  o.max_wait = milliseconds(0);
  o.cache_bytes = 2 * row_bytes + row_bytes / 2;  // room for two tiles
  auto b = Make(o);
  ASSERT_NE(b, nullptr);
  const at::Tensor pv = RandomTiles(23, 5);
  for (int64_t i = 0; i < 5; ++i) {
    Pending p = Submit(*b, pv[i].unsqueeze(0));
    ASSERT_TRUE(Wait(p).ok());
    const cache::CacheStats c = b->stats().cache;
    EXPECT_LE(c.bytes, o.cache_bytes);
  }
  const cache::CacheStats c = b->stats().cache;
  EXPECT_EQ(c.entries, 2);
  EXPECT_EQ(c.bytes, 2 * row_bytes);
  EXPECT_EQ(c.evictions, 3);
  Pending last = Submit(*b, pv[4].unsqueeze(0));
  auto rl = Wait(last);
  ASSERT_TRUE(rl.ok());
  EXPECT_EQ(rl->cached_tiles, 1);
  Pending first = Submit(*b, pv[0].unsqueeze(0));  // evicted
  auto rf = Wait(first);
  ASSERT_TRUE(rf.ok());
  EXPECT_EQ(rf->cached_tiles, 0);
  EXPECT_EQ(b->stats().tiles_encoded, 6);
}

TEST(TileKeyTest, EveryPartOfTheKeyMatters) {
  at::manual_seed(30);
  const at::Tensor tile = at::rand({3, 64, 64});
  const at::Tensor ones = at::ones({64, 64}, at::kBool);
  const cache::Digest base = TileKey("rev-a", at::kFloat, tile, {});
  EXPECT_EQ(TileKey("rev-a", at::kFloat, tile.clone(), {}), base);
  EXPECT_EQ(TileKey("rev-a", at::kFloat, tile, ones), base);  // all-valid mask == no mask
  EXPECT_NE(TileKey("rev-b", at::kFloat, tile, {}), base);
  EXPECT_NE(TileKey("rev-a", at::kBFloat16, tile, {}), base);
  EXPECT_NE(TileKey("rev-a", at::kFloat, tile.reshape({3, 32, 128}).contiguous(), {}), base);
  at::Tensor changed = tile.clone();
  changed[2][63][63] = std::nextafter(changed[2][63][63].item<float>(), 2.0f);
  EXPECT_NE(TileKey("rev-a", at::kFloat, changed, {}), base);
  at::Tensor partial = ones.clone();
  partial.narrow(0, 32, 32).zero_();
  const cache::Digest masked = TileKey("rev-a", at::kFloat, tile, partial);
  EXPECT_NE(masked, base);
  at::Tensor other = ones.clone();
  other.narrow(1, 32, 32).zero_();
  EXPECT_NE(TileKey("rev-a", at::kFloat, tile, other), masked);
}

}  // namespace
}  // namespace smolserve::vision
