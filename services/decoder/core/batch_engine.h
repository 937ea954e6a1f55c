// Continuous (iteration-level) batching over a TextModel: many single-prompt generations share
// one engine thread. Between two iterations new sequences join and finished or cancelled ones
// leave. Each iteration is one pass over the weights (TextModel::Step) with a token for every
// sequence that is generating plus the next prompt chunk (at most prefill_chunk_tokens) of the
// oldest sequence still prefilling, so a long prompt never stalls the running streams for
// more than one chunk and a short one costs them almost nothing.
//
// Memory: every sequence gets its own KV cache sized prompt + max_new_tokens when it is
// admitted; the sum is held under a byte budget. Admission is FIFO: the oldest waiting
// sequence is admitted as soon as a running slot and its KV bytes are free (later sequences
// never overtake it). A sequence that alone needs more than the budget, or a full waiting
// queue, is refused at Submit with RESOURCE_EXHAUSTED; nothing is allocated beyond the budget.
//
// Prefix caching (prefix_cache, on by default): when a prompt's prefill completes, its KV
// columns are kept (prefix_cache.h) and a later prompt that starts with the same input rows
// (same tokens and the same image features) loads them and prefills only the rest. Kept
// prefixes count against the KV budget and are evicted least recently used first when an
// admission needs their bytes; results are identical with and without a hit.
//
// Results: with the float32 fast path a sequence's tokens do not depend on what else runs
// with it (batch-invariant kernels, per-sequence random generators), so batched generation
// equals running each request alone, greedy or sampled. Prompts are prefilled in chunks at
// fixed offsets (multiples of prefill_chunk_tokens), whatever the load.
//
// Threads: Submit and Shutdown may be called from any thread; every callback runs on the
// engine thread and must not block.
#ifndef SMOLSERVE_SERVICES_DECODER_CORE_BATCH_ENGINE_H_
#define SMOLSERVE_SERVICES_DECODER_CORE_BATCH_ENGINE_H_

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "services/decoder/core/generator.h"
#include "services/decoder/core/prefix_cache.h"
#include "services/decoder/core/text_model.h"

namespace smolserve::decoder {

struct BatchEngineOptions {
  int64_t max_running = 16;                          // sequences in the running batch
  int64_t prefill_chunk_tokens = 256;                // prompt tokens per iteration
  int64_t kv_cache_budget_bytes = int64_t{2} << 30;  // all running sequences' KV caches
  // Admission queue bound: at most max_running + max_waiting sequences are in the engine
  // (running or waiting); more are refused with RESOURCE_EXHAUSTED.
  int64_t max_waiting = 64;
  // Reuse the KV columns of earlier prompts (whole prefill chunks of identical input rows).
  bool prefix_cache = true;
  // Runs first on the engine thread (e.g. at::set_num_threads: OpenMP counts are per thread).
  std::function<void()> thread_init;
};

struct SequenceResult {
  RowResult row;
  double queue_seconds = 0;    // submit -> admitted
  double prefill_seconds = 0;  // time spent in this sequence's prefill chunks
  double decode_seconds = 0;   // first token -> finished
  int64_t prefill_chunks = 0;
  int64_t cached_prompt_tokens = 0;  // prompt rows loaded from the prefix cache
};

struct SequenceCallbacks {
  // Polled on the engine thread before every iteration while the sequence waits or runs; a
  // non-OK status ends it at once with that status (client gone: CANCELLED; deadline:
  // DEADLINE_EXCEEDED) and frees its KV cache. May be empty.
  std::function<absl::Status()> poll;
  // Called on the engine thread when the sequence is admitted (leaves the waiting queue and
  // gets its KV cache). May be empty.
  std::function<void()> on_start;
  // Called exactly once on the engine thread: the finished row, or the error that ended it.
  std::function<void(absl::StatusOr<SequenceResult>)> on_done;
  // Observer of the float32 logits the first token is chosen from (the prompt's last
  // position), on the engine thread, before any processing. For dumps and tests. May be empty.
  std::function<void(absl::Span<const float> logits)> on_first_logits;
};

struct BatchEngineStats {
  int64_t waiting = 0;
  int64_t running = 0;
  int64_t kv_bytes_in_use = 0;
  int64_t kv_budget_bytes = 0;
  int64_t decode_steps = 0;     // passes with at least one generating sequence
  int64_t decode_rows = 0;      // sequences summed over decode steps
  int64_t prefill_chunks = 0;
  int64_t max_batch_rows = 0;   // largest decode step so far
  int64_t completed = 0;        // on_done calls
  int64_t prefix_cache_bytes = 0;     // kept prefixes (within kv_budget_bytes)
  int64_t prefix_cache_entries = 0;
  int64_t prefix_query_tokens = 0;    // prompt tokens of admitted sequences (cache on)
  int64_t prefix_hit_tokens = 0;      // of which loaded from the cache
  double step_seconds = 0;      // in TextModel::Step
  double select_seconds = 0;    // choosing tokens and running the stream callbacks
};

class BatchEngine {
 public:
  // Starts the engine thread. `model` must outlive the engine. INVALID_ARGUMENT for bad
  // options; RESOURCE_EXHAUSTED when the decode scratch cannot be allocated.
  static absl::StatusOr<std::unique_ptr<BatchEngine>> Create(const TextModel& model,
                                                             BatchEngineOptions options);
  ~BatchEngine();  // Shutdown()

  // Queues one generation. `request` must have one prompt row and no attention mask;
  // request.on_token (row 0) streams tokens, request.on_logits is not called. Errors (the
  // request is not queued and on_done is never called): INVALID_ARGUMENT for a malformed
  // request (as Generator, plus prompt + max_new_tokens beyond max_position_embeddings),
  // RESOURCE_EXHAUSTED when the waiting queue is full or the sequence alone needs more KV
  // cache than the budget, UNAVAILABLE after Shutdown.
  absl::Status Submit(GenerateRequest request, SequenceCallbacks callbacks);

  // Refuses new work, lets every queued and running sequence finish, joins the thread.
  void Shutdown();

  BatchEngineStats stats() const;
  const BatchEngineOptions& options() const { return options_; }

 private:
  struct Sequence;
  BatchEngine(const TextModel& model, BatchEngineOptions options, DecodeScratch scratch);
  void Loop();
  // Ends `seq` (engine thread): releases its KV bytes and calls on_done.
  void Finish(std::unique_ptr<Sequence> seq, absl::StatusOr<SequenceResult> result);
  // Chooses and records the next token of `seq` from its logits row; true when it finished.
  bool Advance(Sequence& seq, float* logits_row);
  // Admission helpers (engine thread). Admit: the FIFO head under the slot and KV budgets,
  // evicting kept prefixes for room. Start: its cache, with a cached prefix loaded.
  void AdmitWaiting(std::vector<std::unique_ptr<Sequence>>& admitted);  // mu_ held
  absl::Status StartSequence(Sequence& seq);
  // Keeps the prompt's KV columns once its prefill completed.
  void KeepPrefix(Sequence& seq);

  const TextModel& model_;
  const BatchEngineOptions options_;
  DecodeScratch scratch_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::deque<std::unique_ptr<Sequence>> waiting_;  // guarded by mu_
  BatchEngineStats stats_;                         // guarded by mu_
  std::vector<std::unique_ptr<Sequence>> running_;  // engine thread only
  std::unique_ptr<PrefixCache> prefix_cache_;       // engine thread (bytes mirrored in stats_)
  std::thread thread_;
};

}  // namespace smolserve::decoder

#endif  // SMOLSERVE_SERVICES_DECODER_CORE_BATCH_ENGINE_H_
