// Dynamic batching for the vision encoder, with a per-tile embedding cache.
//
// Requests ([N, C, T, T] float32 tiles, optional [N, T, T] mask) are checked and split into
// tiles at Submit. Each real tile is first looked up in the embedding cache (key: TileKey);
// a request whose tiles all hit is answered at once, on the submitting thread. The others
// wait in a bounded queue (tiles and requests; a full queue refuses at Submit with
// RESOURCE_EXHAUSTED). One worker thread takes, in arrival order, the queued tiles of the
// same shape from as many requests as fit in `max_batch_tiles` (a larger request is split
// over several model calls), waiting at most `max_wait` after the oldest queued request
// arrived for the batch to fill, runs VisionModel::Encode once on their concatenation and
// routes each row back to its request. Identical tiles in one batch are encoded once.
//
// Results equal encoding each request alone (same rows, same order; float32 within GEMM
// summation-order differences). A request without any real tile (all padding) keeps its
// first tile, as VisionModel::Encode does, and that tile is encoded in a model call of its
// own (next to real tiles, Encode would drop it).
//
// Cancellation and deadlines are checked each time the worker is about to take a request's
// tiles: such a request is answered CANCELLED / DEADLINE_EXCEEDED and the rest of its tiles
// are never encoded. A failing model call fails exactly the requests with tiles in it
// (INTERNAL, naming the batch); the worker goes on. Shutdown() stops new work, answers every
// queued request (draining), then joins the worker.
//
// No gRPC, no flags; the owner maps the callbacks onto its RPCs and metrics.
#ifndef SMOLSERVE_SERVICES_VISION_CORE_ENCODE_BATCHER_H_
#define SMOLSERVE_SERVICES_VISION_CORE_ENCODE_BATCHER_H_

#include <ATen/core/Tensor.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/cache/lru_cache.h"
#include "common/cache/sha256.h"
#include "services/vision/core/vision_model.h"

namespace smolserve::vision {

struct EncodeBatcherOptions {
  // at::set_num_threads on the worker (OpenMP thread counts are per calling thread).
  int threads = 1;
  // Most tiles in one model call (>= 1).
  int64_t max_batch_tiles = 8;
  // How long after the oldest queued request arrived the worker waits for more tiles before
  // running a batch that is not full (0: take what is queued).
  std::chrono::microseconds max_wait{5000};
  // Queue bounds: tiles waiting to be encoded (cache hits do not count) and requests
  // with tiles not yet in a model call. Both >= 1.
  int64_t max_queued_tiles = 1024;
  int max_queued_requests = 16;
  // Embedding cache budget in bytes (0 disables the cache and the hashing).
  int64_t cache_bytes = 0;
  // Part of every cache key: the model's revision (see model_revision.h).
  std::string model_revision;
};

// One model call, reported to EncodeBatcherOptions' observer.
struct BatchInfo {
  int64_t tiles = 0;     // tiles encoded (rows of the model call)
  int64_t requests = 0;  // requests with tiles in it
  double encode_ms = 0;
  absl::Status status;
};

struct EncodeJob {
  at::Tensor pixel_values;          // float32 [N, C, T, T] or [B, N, C, T, T]
  at::Tensor pixel_attention_mask;  // [N, T, T] (or [B, N, T, T]) bool/integer 0|1, or undefined
  // Polled by the worker before it takes this request's tiles; true drops the request with
  // CANCELLED. Must be cheap and must not call into the batcher.
  std::function<bool()> is_cancelled;
  // Past it, the request is dropped with DEADLINE_EXCEEDED before its tiles are encoded.
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
  // Called once, on the worker, when the first of its tiles enters a model call.
  std::function<void()> on_start;
};

struct EncodeResult {
  // [n_real, S, D] in the model dtype, one row per real tile in input order, exactly what
  // VisionModel::Encode returns for the request alone.
  at::Tensor image_hidden_states;
  std::vector<int64_t> real_tile_indices;  // as VisionOutput::real_tile_indices
  int64_t tiles = 0;         // rows of image_hidden_states
  int64_t cached_tiles = 0;  // rows answered from the embedding cache
  int64_t model_calls = 0;   // model calls that held some of its tiles
  double queue_ms = 0;       // Submit to its first model call (or to its answer)
  double encode_ms = 0;      // summed time of the model calls that held its tiles
};

using EncodeCallback = std::function<void(absl::StatusOr<EncodeResult>)>;

struct EncodeBatcherStats {
  int64_t requests_submitted = 0;  // accepted by Submit
  int64_t requests_rejected = 0;   // refused by Submit (any reason)
  int64_t requests_ok = 0;
  int64_t requests_failed = 0;     // model call failures
  int64_t requests_cancelled = 0;
  int64_t requests_deadline_exceeded = 0;
  int64_t model_calls = 0;
  int64_t failed_model_calls = 0;
  int64_t tiles_encoded = 0;            // rows run through the model
  int64_t max_tiles_per_call = 0;
  int64_t max_requests_per_call = 0;
  int64_t multi_request_calls = 0;      // model calls holding tiles of >= 2 requests
  int64_t cache_hit_tiles = 0;          // tiles answered from the cache
  int64_t cache_miss_tiles = 0;         // tiles not in the cache at Submit (or never looked up)
  int64_t duplicate_tiles = 0;          // tiles that shared a row with an identical tile
  int64_t queued_requests = 0;          // now
  int64_t queued_tiles = 0;             // now
  cache::CacheStats cache;
};

// Cache key of one tile: SHA-256 over length-prefixed fields: a domain string, the model
// revision, the model dtype, the tile shape [C, H, W], its float32 pixel bytes and its mask
// (all-valid tiles, with or without a mask, share one form). `pixels`: float32 [C, H, W]
// contiguous CPU; `mask`: bool [H, W] contiguous CPU or undefined.
cache::Digest TileKey(absl::string_view model_revision, at::ScalarType model_dtype,
                      const at::Tensor& pixels, const at::Tensor& mask);

class EncodeBatcher {
 public:
  // `model` must outlive the batcher. `observer` (may be empty) is called on the worker after
  // every model call.
  static absl::StatusOr<std::unique_ptr<EncodeBatcher>> Create(
      const VisionModel* model, const EncodeBatcherOptions& options,
      std::function<void(const BatchInfo&)> observer = {});
  ~EncodeBatcher();  // Shutdown()
  EncodeBatcher(const EncodeBatcher&) = delete;
  EncodeBatcher& operator=(const EncodeBatcher&) = delete;

  // Accepts the request (OK; `done` is then called exactly once, on the worker, or before
  // Submit returns when every tile was in the cache) or refuses it (the error; `done` is
  // never called): INVALID_ARGUMENT for bad input (VisionModel::PlanTiles' checks, a mask
  // value other than 0/1), RESOURCE_EXHAUSTED when the queue is full or the request alone
  // has more tiles than max_queued_tiles, UNAVAILABLE after Shutdown().
  absl::Status Submit(EncodeJob job, EncodeCallback done);

  // Refuses new work, answers everything queued (encoding it; cancelled and expired
  // requests are dropped as usual), then joins the worker. Idempotent.
  void Shutdown();

  EncodeBatcherStats stats() const;
  const EncodeBatcherOptions& options() const { return options_; }

 private:
  struct Request;
  struct Batch;
  using Clock = std::chrono::steady_clock;

  EncodeBatcher(const VisionModel* model, const EncodeBatcherOptions& options,
                std::function<void(const BatchInfo&)> observer);
  void Worker();
  // Under mu_: waits for the batching window, then moves tiles into `batch` and the
  // requests to drop into `dropped`. Returns false when stopping with nothing queued.
  bool CollectLocked(std::unique_lock<std::mutex>& lock, Batch& batch,
                     std::vector<std::pair<std::shared_ptr<Request>, absl::Status>>& dropped,
                     std::vector<std::shared_ptr<Request>>& finished);
  void RunBatch(Batch& batch, std::vector<std::shared_ptr<Request>>& finished);
  void Finish(const std::shared_ptr<Request>& request, absl::Status status);
  void RemoveQueuedLocked(const std::shared_ptr<Request>& request);

  const VisionModel* model_;
  const EncodeBatcherOptions options_;
  std::function<void(const BatchInfo&)> observer_;
  std::unique_ptr<cache::LruCache<at::Tensor>> cache_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Request>> queue_;  // requests with tiles not yet in a batch
  int64_t queued_tiles_ = 0;
  // Wall time per encoded tile, a moving average over the model calls (0 until the first):
  // Submit refuses work that the queue ahead of it would keep past its deadline.
  double ms_per_tile_ = 0;
  bool stopping_ = false;
  EncodeBatcherStats stats_;
  std::thread worker_;
  std::mutex join_mu_;
};

}  // namespace smolserve::vision

#endif  // SMOLSERVE_SERVICES_VISION_CORE_ENCODE_BATCHER_H_
