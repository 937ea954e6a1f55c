// The continuous-batching engine on the tiny golden model (tests/golden):
//  - every golden row, all submitted together (batched decode, prompts prefilled in chunks
//    of 64 at fixed offsets), generates transformers' 16 greedy ids;
//  - mixed greedy and sampling requests joining a running batch at different times give
//    exactly the tokens each gives alone;
//  - cancelling a running sequence frees its KV budget for a waiting one; admission control
//    (budget, queue bound) and FIFO order.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include "common/model/config.h"
#include "common/model/weights.h"
#include "services/decoder/core/batch_engine.h"
#include "services/decoder/core/generator.h"
#include "services/decoder/core/golden_case.h"
#include "services/decoder/core/text_model.h"

namespace smolserve::decoder {
namespace {

using testing::LoadGoldenCase;

std::unique_ptr<TextModel> LoadModel(const char* dir, TextModelOptions options = {}) {
  auto config = model::LoadModelConfig(dir);
  EXPECT_TRUE(config.ok()) << config.status();
  if (!config.ok()) return nullptr;
  auto store = model::WeightStore::Open(dir);
  EXPECT_TRUE(store.ok()) << store.status();
  if (!store.ok()) return nullptr;
  auto m = TextModel::Create(*config, **store, options);
  EXPECT_TRUE(m.ok()) << m.status();
  return m.ok() ? std::move(*m) : nullptr;
}

// Collects on_done results; Wait() blocks until `n` arrived.
class Results {
 public:
  SequenceCallbacks Callbacks(int key, std::function<absl::Status()> poll = nullptr) {
    SequenceCallbacks cb;
    cb.poll = std::move(poll);
    cb.on_done = [this, key](absl::StatusOr<SequenceResult> r) {
      std::lock_guard<std::mutex> lock(mu_);
      results_.emplace(key, std::move(r));
      order_.push_back(key);
      cv_.notify_all();
    };
    return cb;
  }
  void Wait(size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    ASSERT_TRUE(cv_.wait_for(lock, std::chrono::seconds(300), [&] { return results_.size() >= n; }))
        << "timed out with " << results_.size() << " of " << n << " results";
  }
  absl::StatusOr<SequenceResult> Get(int key) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = results_.find(key);
    if (it == results_.end()) return absl::NotFoundError("no result");
    return it->second;
  }
  std::vector<int> order() {
    std::lock_guard<std::mutex> lock(mu_);
    return order_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<int, absl::StatusOr<SequenceResult>> results_;
  std::vector<int> order_;
};

struct Row {
  std::string name;
  std::vector<int64_t> ids;
  at::Tensor images;  // [n, S, D] or undefined
  std::vector<int64_t> expected;
};

// The golden rows, unpadded, with each row's own image features.
std::vector<Row> GoldenRows(int64_t image_token_id, int64_t S) {
  std::vector<Row> rows;
  for (const std::string& name : testing::DecoderCaseNames()) {
    auto c = LoadGoldenCase(name);
    EXPECT_TRUE(c.ok()) << c.status();
    if (!c.ok()) continue;
    int64_t feature_row = 0;
    for (size_t b = 0; b < c->input_ids.size(); ++b) {
      Row r;
      r.name = name + "/" + std::to_string(b);
      int64_t images = 0;
      for (size_t i = 0; i < c->input_ids[b].size(); ++i) {
        if (!c->attention_mask.empty() && c->attention_mask[b][i] == 0) continue;
        r.ids.push_back(c->input_ids[b][i]);
        if (c->input_ids[b][i] == image_token_id) ++images;
      }
      if (images > 0) {
        r.images = c->image_hidden_states.narrow(0, feature_row, images / S);
        feature_row += images / S;
      }
      r.expected = c->generated_ids[b];
      rows.push_back(std::move(r));
    }
  }
  return rows;
}

GenerateRequest Greedy(const std::vector<int64_t>& ids, const at::Tensor& images,
                       int64_t max_new) {
  GenerateRequest r;
  r.input_ids = {ids};
  r.image_hidden_states = images;
  r.max_new_tokens = max_new;
  r.ignore_eos = true;
  return r;
}

TEST(BatchEngineTest, EveryGoldenRowBatchedGivesTransformersGreedyIds) {
  at::set_num_threads(2);
  auto m = LoadModel(testing::kTinyModelDir);
  ASSERT_NE(m, nullptr);
  const auto rows = GoldenRows(m->dims().image_token_id, m->dims().image_seq_len);
  ASSERT_GE(rows.size(), 12u);
  BatchEngineOptions opts;
  opts.max_running = 8;
  opts.prefill_chunk_tokens = 64;  // several chunks per image prompt
  auto engine = BatchEngine::Create(*m, opts);
  ASSERT_TRUE(engine.ok()) << engine.status();
  Results results;
  for (size_t i = 0; i < rows.size(); ++i) {
    ASSERT_TRUE((*engine)->Submit(Greedy(rows[i].ids, rows[i].images, 16),
                                  results.Callbacks(static_cast<int>(i)))
                    .ok());
  }
  results.Wait(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    auto r = results.Get(static_cast<int>(i));
    ASSERT_TRUE(r.ok()) << rows[i].name << ": " << r.status();
    EXPECT_EQ(r->row.token_ids, rows[i].expected) << rows[i].name;
    EXPECT_EQ(r->row.finish_reason, FinishReason::kLength);
    EXPECT_EQ(r->row.prompt_tokens, static_cast<int64_t>(rows[i].ids.size()));
  }
  const BatchEngineStats s = (*engine)->stats();
  EXPECT_GT(s.max_batch_rows, 4) << "sequences were not decoded together";
  EXPECT_GT(s.prefill_chunks, static_cast<int64_t>(rows.size())) << "no prompt was chunked";
  EXPECT_EQ(s.kv_bytes_in_use, 0);
}

// Requests of every kind: greedy, sampled (different settings and seeds), with repetition
// penalty, with and without images, different lengths.
std::vector<GenerateRequest> MixedRequests(const std::vector<Row>& rows) {
  std::vector<GenerateRequest> out;
  for (size_t i = 0; i < rows.size(); ++i) {
    GenerateRequest r = Greedy(rows[i].ids, rows[i].images, 12 + 5 * (i % 4));
    switch (i % 4) {
      case 0:
        break;  // greedy
      case 1:
        r.sampling.do_sample = true;
        r.sampling.temperature = 0.9;
        r.sampling.top_k = 20;
        r.sampling.seed = 1000 + i;
        break;
      case 2:
        r.sampling.do_sample = true;
        r.sampling.temperature = 1.3;
        r.sampling.top_k = 0;
        r.sampling.top_p = 0.9;
        r.sampling.seed = 2000 + i;
        break;
      case 3:
        r.sampling.repetition_penalty = 1.3;
        break;
    }
    out.push_back(std::move(r));
  }
  return out;
}

TEST(BatchEngineTest, MixedGreedyAndSamplingBatchedEqualsAlone) {
  at::set_num_threads(2);
  auto m = LoadModel(testing::kTinyModelDir);
  ASSERT_NE(m, nullptr);
  const auto rows = GoldenRows(m->dims().image_token_id, m->dims().image_seq_len);
  const std::vector<GenerateRequest> reqs = MixedRequests(rows);
  BatchEngineOptions opts;
  opts.prefill_chunk_tokens = 48;

  // Alone: one at a time.
  std::vector<std::vector<int64_t>> alone(reqs.size());
  {
    auto engine = BatchEngine::Create(*m, opts);
    ASSERT_TRUE(engine.ok());
    for (size_t i = 0; i < reqs.size(); ++i) {
      Results results;
      ASSERT_TRUE((*engine)->Submit(reqs[i], results.Callbacks(0)).ok());
      results.Wait(1);
      auto r = results.Get(0);
      ASSERT_TRUE(r.ok()) << r.status();
      alone[i] = r->row.token_ids;
    }
    EXPECT_EQ((*engine)->stats().max_batch_rows, 1);
  }
  // Together: submitted from another thread in three waves, so later ones join a running
  // batch between decode steps.
  auto engine = BatchEngine::Create(*m, opts);
  ASSERT_TRUE(engine.ok());
  Results results;
  std::thread submitter([&] {
    for (size_t i = 0; i < reqs.size(); ++i) {
      ASSERT_TRUE((*engine)->Submit(reqs[i], results.Callbacks(static_cast<int>(i))).ok());
      if (i % 5 == 4) std::this_thread::sleep_for(std::chrono::milliseconds(30));
    }
  });
  submitter.join();
  results.Wait(reqs.size());
  for (size_t i = 0; i < reqs.size(); ++i) {
    auto r = results.Get(static_cast<int>(i));
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->row.token_ids, alone[i]) << rows[i].name << " (kind " << i % 4 << ")";
  }
  EXPECT_GT((*engine)->stats().max_batch_rows, 4);
}

TEST(BatchEngineTest, Bf16EngineMatchesGenerator) {
  at::set_num_threads(2);
  TextModelOptions o;
  o.dtype = at::kBFloat16;
  auto m = LoadModel(testing::kTinyModelBf16Dir, o);
  ASSERT_NE(m, nullptr);
  const auto rows = GoldenRows(m->dims().image_token_id, m->dims().image_seq_len);
  BatchEngineOptions opts;
  opts.prefill_chunk_tokens = 4096;  // one chunk: the same prefill as Generator's
  auto engine = BatchEngine::Create(*m, opts);
  ASSERT_TRUE(engine.ok());
  Results results;
  const size_t n = std::min<size_t>(rows.size(), 4);
  for (size_t i = 0; i < n; ++i) {
    ASSERT_TRUE((*engine)->Submit(Greedy(rows[i].ids, rows[i].images, 8),
                                  results.Callbacks(static_cast<int>(i)))
                    .ok());
  }
  results.Wait(n);
  for (size_t i = 0; i < n; ++i) {
    auto alone = Generator(*m).Generate(Greedy(rows[i].ids, rows[i].images, 8));
    ASSERT_TRUE(alone.ok()) << alone.status();
    auto r = results.Get(static_cast<int>(i));
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->row.token_ids, alone->rows[0].token_ids) << rows[i].name;
  }
}

TEST(BatchEngineTest, CancelFreesKvBudgetForTheWaitingSequence) {
  at::set_num_threads(2);
  auto m = LoadModel(testing::kTinyModelDir);
  ASSERT_NE(m, nullptr);
  const std::vector<int64_t> prompt = {1, 2, 3, 4, 5, 6, 7, 8};
  const int64_t max_new = 2000;
  BatchEngineOptions opts;
  // Room for one such sequence only.
  opts.kv_cache_budget_bytes = m->CacheBytes(1, prompt.size() + max_new) * 3 / 2;
  opts.max_running = 2;
  opts.max_waiting = 1;  // at most 3 sequences in the engine
  auto engine = BatchEngine::Create(*m, opts);
  ASSERT_TRUE(engine.ok());

  // Too large for the whole budget: refused at once.
  absl::Status big = (*engine)->Submit(Greedy(prompt, at::Tensor(), 5000), {});
  EXPECT_EQ(big.code(), absl::StatusCode::kResourceExhausted) << big;

  std::atomic<bool> cancel_a{false};
  std::atomic<int> a_tokens{0};
  Results results;
  GenerateRequest a = Greedy(prompt, at::Tensor(), max_new);
  a.on_token = [&](int64_t, int64_t) {
    ++a_tokens;
    return StreamAction::kContinue;
  };
  ASSERT_TRUE((*engine)
                  ->Submit(std::move(a), results.Callbacks(0, [&]() -> absl::Status {
                    return cancel_a ? absl::CancelledError("client left") : absl::OkStatus();
                  }))
                  .ok());
  const auto t0 = std::chrono::steady_clock::now();
  while (a_tokens < 20 && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(60)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_TRUE((*engine)->Submit(Greedy(prompt, at::Tensor(), max_new), results.Callbacks(1)).ok());
  ASSERT_TRUE((*engine)->Submit(Greedy(prompt, at::Tensor(), 5), results.Callbacks(2)).ok());
  // Queue bound: one running + two waiting = max_running (16) + max_waiting (2) is not
  // reached yet... so bound the engine by slots instead: see below.
  // A runs; B waits for KV budget; C would fit beside A but waits behind B (FIFO: no
  // overtaking).
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  BatchEngineStats s = (*engine)->stats();
  EXPECT_EQ(s.running, 1);
  EXPECT_EQ(s.waiting, 2);
  EXPECT_EQ(s.kv_bytes_in_use, m->CacheBytes(1, prompt.size() + max_new));

  cancel_a = true;  // the client leaves: A ends at the next iteration, its KV goes to B
  results.Wait(1);
  auto ra = results.Get(0);
  EXPECT_EQ(ra.status().code(), absl::StatusCode::kCancelled);
  EXPECT_LT(a_tokens.load(), max_new);
  results.Wait(2);  // C (5 tokens) finishes long before B
  s = (*engine)->stats();
  EXPECT_EQ(s.waiting, 0);
  EXPECT_EQ(s.kv_bytes_in_use, m->CacheBytes(1, prompt.size() + max_new));  // B's
  (*engine)->Shutdown();  // drains: B finishes
  results.Wait(3);
  ASSERT_TRUE(results.Get(1).ok());
  ASSERT_TRUE(results.Get(2).ok());
  EXPECT_EQ(results.Get(1)->row.token_ids.size(), static_cast<size_t>(max_new));
  EXPECT_GT(results.Get(1)->queue_seconds, 0.0);
  EXPECT_EQ(results.order(), (std::vector<int>{0, 2, 1}));
  EXPECT_EQ((*engine)->stats().kv_bytes_in_use, 0);
  EXPECT_EQ((*engine)->Submit(Greedy(prompt, at::Tensor(), 5), {}).code(),
            absl::StatusCode::kUnavailable);
}

TEST(BatchEngineTest, StreamActionsAndBadRequests) {
  at::set_num_threads(2);
  auto m = LoadModel(testing::kTinyModelDir);
  ASSERT_NE(m, nullptr);
  auto engine = BatchEngine::Create(*m, {});
  ASSERT_TRUE(engine.ok());
  Results results;
  GenerateRequest r = Greedy({1, 2, 3}, at::Tensor(), 50);
  int seen = 0;
  r.on_token = [&](int64_t row, int64_t) {
    EXPECT_EQ(row, 0);
    return ++seen == 3 ? StreamAction::kCancelRow : StreamAction::kContinue;
  };
  ASSERT_TRUE((*engine)->Submit(std::move(r), results.Callbacks(0)).ok());
  results.Wait(1);
  auto out = results.Get(0);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->row.finish_reason, FinishReason::kCancelled);
  EXPECT_EQ(out->row.token_ids.size(), 3u);

  GenerateRequest two_rows = Greedy({1, 2}, at::Tensor(), 4);
  two_rows.input_ids.push_back({3, 4});
  EXPECT_EQ((*engine)->Submit(two_rows, {}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*engine)->Submit(Greedy({1, -5}, at::Tensor(), 4), {}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*engine)->Submit(Greedy({1, 2}, at::Tensor(), 9000), {}).code(),
            absl::StatusCode::kInvalidArgument);  // beyond max_position_embeddings
  const int64_t image_token = m->dims().image_token_id;
  EXPECT_EQ((*engine)->Submit(Greedy({1, image_token, 2}, at::Tensor(), 4), {}).code(),
            absl::StatusCode::kInvalidArgument);  // <image> without features
}


namespace prefix {

struct Run {
  std::vector<int64_t> ids;
  std::vector<float> first_logits;
  int64_t cached = 0;
};

// Runs `r` alone on `engine` and waits for it.
Run RunAlone(BatchEngine& engine, GenerateRequest r) {
  Run out;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  SequenceCallbacks cb;
  cb.on_first_logits = [&](absl::Span<const float> l) { out.first_logits.assign(l.begin(), l.end()); };
  cb.on_done = [&](absl::StatusOr<SequenceResult> res) {
    EXPECT_TRUE(res.ok()) << res.status();
    if (res.ok()) {
      out.ids = res->row.token_ids;
      out.cached = res->cached_prompt_tokens;
    }
    std::lock_guard<std::mutex> lock(mu);
    done = true;
    cv.notify_all();
  };
  const absl::Status submitted = engine.Submit(std::move(r), std::move(cb));
  EXPECT_TRUE(submitted.ok()) << submitted;
  if (!submitted.ok()) return out;
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return done; });
  return out;
}

// The longest golden row with images.
Row ImageRow(const TextModel& m) {
  Row best;
  for (Row& r : GoldenRows(m.dims().image_token_id, m.dims().image_seq_len)) {
    if (r.images.defined() && r.ids.size() > best.ids.size()) best = r;
  }
  return best;
}

void ExpectSame(const Run& a, const Run& b, const std::string& what) {
  EXPECT_EQ(a.ids, b.ids) << what;
  ASSERT_EQ(a.first_logits.size(), b.first_logits.size()) << what;
  EXPECT_TRUE(a.first_logits == b.first_logits) << what << ": logits differ";
}

}  // namespace prefix

// A prompt whose beginning was prefilled before reuses those KV columns (whole chunks, image
// features part of the key) and gives bit-identical logits and ids.
TEST(BatchEngineTest, PrefixCacheHitsGiveIdenticalLogitsAndIds) {
  at::set_num_threads(2);
  auto m = LoadModel(testing::kTinyModelDir);
  ASSERT_NE(m, nullptr);
  const Row row = prefix::ImageRow(*m);
  ASSERT_TRUE(row.images.defined());
  const int64_t L = row.ids.size(), chunk = 4;
  const int64_t first_image =
      std::find(row.ids.begin(), row.ids.end(), m->dims().image_token_id) - row.ids.begin();
  ASSERT_GT(L, 3 * chunk);
  ASSERT_GE(first_image, chunk) << "the test wants text before the image";
  BatchEngineOptions off_opts;
  off_opts.prefill_chunk_tokens = chunk;
  off_opts.prefix_cache = false;
  BatchEngineOptions on_opts = off_opts;
  on_opts.prefix_cache = true;
  auto off = BatchEngine::Create(*m, off_opts);
  auto on = BatchEngine::Create(*m, on_opts);
  ASSERT_TRUE(off.ok() && on.ok());

  // The same prompt twice: the second reuses every whole chunk before its last row.
  const prefix::Run ref = prefix::RunAlone(**off, Greedy(row.ids, row.images, 12));
  EXPECT_EQ(ref.cached, 0);
  const prefix::Run first = prefix::RunAlone(**on, Greedy(row.ids, row.images, 12));
  EXPECT_EQ(first.cached, 0);
  prefix::ExpectSame(ref, first, "first run");
  const prefix::Run again = prefix::RunAlone(**on, Greedy(row.ids, row.images, 12));
  EXPECT_EQ(again.cached, (L - 1) / chunk * chunk);
  prefix::ExpectSame(ref, again, "prefix hit");

  // A second turn: the first prompt, its answer and a new question.
  std::vector<int64_t> turn2 = row.ids;
  turn2.insert(turn2.end(), ref.ids.begin(), ref.ids.end());
  turn2.insert(turn2.end(), row.ids.end() - 7, row.ids.end());
  // The random test model may generate the <image> id: text only after the first prompt.
  for (size_t i = row.ids.size(); i < turn2.size(); ++i) {
    if (turn2[i] == m->dims().image_token_id) turn2[i] = row.ids[0];
  }
  const prefix::Run turn2_ref = prefix::RunAlone(**off, Greedy(turn2, row.images, 8));
  const prefix::Run turn2_on = prefix::RunAlone(**on, Greedy(turn2, row.images, 8));
  EXPECT_EQ(turn2_on.cached, (L - 1) / chunk * chunk);
  prefix::ExpectSame(turn2_ref, turn2_on, "second turn");

  // The same tokens with another image: only the chunks before the first image match.
  const at::Tensor other = row.images.flip(0).mul(0.5).add(0.1).contiguous();
  const prefix::Run other_ref = prefix::RunAlone(**off, Greedy(row.ids, other, 12));
  const prefix::Run other_on = prefix::RunAlone(**on, Greedy(row.ids, other, 12));
  EXPECT_EQ(other_on.cached, first_image / chunk * chunk);
  prefix::ExpectSame(other_ref, other_on, "another image");
  EXPECT_NE(other_ref.first_logits, ref.first_logits);

  const BatchEngineStats s = (*on)->stats();
  EXPECT_EQ(s.prefix_hit_tokens, again.cached + turn2_on.cached + other_on.cached);
  EXPECT_EQ(s.prefix_query_tokens, 3 * L + static_cast<int64_t>(turn2.size()));
  EXPECT_GT(s.prefix_cache_bytes, 0);
  EXPECT_EQ(s.kv_bytes_in_use, 0);
  EXPECT_EQ((*off)->stats().prefix_cache_bytes, 0);
}

// Kept prefixes live inside the KV budget: they are evicted (least recently used first) when a
// sequence needs the room, and never make a sequence wait or fail.
TEST(BatchEngineTest, PrefixCacheStaysWithinTheKvBudget) {
  at::set_num_threads(2);
  auto m = LoadModel(testing::kTinyModelDir);
  ASSERT_NE(m, nullptr);
  const Row row = prefix::ImageRow(*m);
  const int64_t L = row.ids.size(), chunk = 16, new_tokens = 6;
  const int64_t kept = (L - 1) / chunk * chunk;
  BatchEngineOptions o;
  o.prefill_chunk_tokens = chunk;
  // Room for one running sequence and one kept prefix.
  o.kv_cache_budget_bytes = m->CacheBytes(1, L + new_tokens) + m->PrefixBytes(kept);
  auto engine = BatchEngine::Create(*m, o);
  ASSERT_TRUE(engine.ok());
  const at::Tensor other = row.images.mul(-1).contiguous();

  EXPECT_EQ(prefix::RunAlone(**engine, Greedy(row.ids, row.images, new_tokens)).cached, 0);
  EXPECT_EQ((*engine)->stats().prefix_cache_entries, 1);
  EXPECT_EQ(prefix::RunAlone(**engine, Greedy(row.ids, row.images, new_tokens)).cached, kept);
  // Another image: its prefix replaces the first one (no room for both).
  prefix::RunAlone(**engine, Greedy(row.ids, other, new_tokens));
  BatchEngineStats s = (*engine)->stats();
  EXPECT_EQ(s.prefix_cache_entries, 1);
  EXPECT_LE(s.prefix_cache_bytes, o.kv_cache_budget_bytes);
  EXPECT_EQ(prefix::RunAlone(**engine, Greedy(row.ids, other, new_tokens)).cached, kept);
  // The first image's prefix was evicted: only the text before the image is found again.
  const int64_t first_image =
      std::find(row.ids.begin(), row.ids.end(), m->dims().image_token_id) - row.ids.begin();
  EXPECT_EQ(prefix::RunAlone(**engine, Greedy(row.ids, row.images, new_tokens)).cached,
            first_image / chunk * chunk);
  s = (*engine)->stats();
  EXPECT_EQ(s.kv_bytes_in_use, 0);
  EXPECT_LE(s.prefix_cache_bytes, o.kv_cache_budget_bytes);
}

}  // namespace
}  // namespace smolserve::decoder
