#include "services/vision/core/encode_batcher.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <exception>
#include <unordered_map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status/exception_status.h"
#include "common/status/retry_after.h"

namespace smolserve::vision {
namespace {

using Clock = std::chrono::steady_clock;

double Ms(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

constexpr char kKeyDomain[] = "smolserve.vision.tile_embedding.v1";

}  // namespace

cache::Digest TileKey(absl::string_view model_revision, at::ScalarType model_dtype,
                      const at::Tensor& pixels, const at::Tensor& mask) {
  cache::Sha256 h;
  h.UpdateField(kKeyDomain);
  h.UpdateField(model_revision);
  h.UpdateField(c10::toString(model_dtype));
  h.UpdateInt(pixels.dim());
  for (int64_t s : pixels.sizes()) h.UpdateInt(s);
  h.UpdateField(pixels.data_ptr(), pixels.nbytes());
  if (!mask.defined() || mask.all().item<bool>()) {
    h.UpdateField("mask:all-valid");
  } else {
    h.UpdateField("mask:bool");
    h.UpdateField(mask.data_ptr(), mask.nbytes());
  }
  return h.Final();
}

// One accepted request. After Submit hands it to the queue only the worker touches it.
struct EncodeBatcher::Request {
  EncodeJob job;
  EncodeCallback done;
  Clock::time_point submitted;
  at::Tensor pixels;         // float32 [num, C, H, W], contiguous CPU
  at::Tensor mask;           // bool [num, H, W], contiguous CPU, or undefined
  std::vector<int64_t> shape;  // {C, H, W}: only equal shapes share a model call
  TilePlan plan;
  std::vector<cache::Digest> keys;  // per real tile; empty when the cache is off
  std::vector<int64_t> todo;        // rows (indices into the real tiles) left to encode
  size_t next = 0;                  // todo[next..] are not yet in a batch
  int64_t remaining = 0;            // rows not yet filled
  at::Tensor out;                   // [n_real, S, D], allocated with the first row
  int64_t cached = 0;
  int64_t model_calls = 0;
  bool started = false;
  bool finished = false;
  double queue_ms = 0;
  double encode_ms = 0;

  int64_t unscheduled() const { return static_cast<int64_t>(todo.size() - next); }
  int64_t n_real() const { return static_cast<int64_t>(plan.real_tile_indices.size()); }
  // Pixels/mask of real tile `row` (views).
  at::Tensor tile(int64_t row) const { return pixels[plan.real_tile_indices[row]]; }
  at::Tensor tile_mask(int64_t row) const {
    return mask.defined() ? mask[plan.real_tile_indices[row]] : at::Tensor();
  }
  void Fill(int64_t row, const at::Tensor& value) {
    if (!out.defined()) out = at::empty({n_real(), value.size(0), value.size(1)}, value.options());
    out[row].copy_(value);
    --remaining;
  }
};

// Tiles of one model call. Each row fills one or more (request, row) slots: identical tiles
// share a row.
struct EncodeBatcher::Batch {
  struct Slot {
    std::shared_ptr<Request> request;
    int64_t row;
  };
  std::vector<at::Tensor> pixels;  // [C, H, W] each
  std::vector<at::Tensor> masks;   // [H, W] bool or undefined
  bool any_mask = false;
  std::vector<std::vector<Slot>> slots;
  std::vector<cache::Digest> keys;  // per row, when the cache is on
  std::unordered_map<cache::Digest, int64_t, cache::DigestHash> row_of_key;
  std::vector<std::shared_ptr<Request>> requests;  // distinct, in order of arrival
  int64_t size() const { return static_cast<int64_t>(pixels.size()); }
};

absl::StatusOr<std::unique_ptr<EncodeBatcher>> EncodeBatcher::Create(
    const VisionModel* model, const EncodeBatcherOptions& options,
    std::function<void(const BatchInfo&)> observer) {
  if (model == nullptr) return absl::InvalidArgumentError("encode batcher: no model");
  if (options.threads < 1) return absl::InvalidArgumentError("encode batcher: threads must be >= 1");
  if (options.max_batch_tiles < 1) {
    return absl::InvalidArgumentError("encode batcher: max_batch_tiles must be >= 1");
  }
  if (options.max_wait.count() < 0) {
    return absl::InvalidArgumentError("encode batcher: max_wait must be >= 0");
  }
  if (options.max_queued_tiles < 1 || options.max_queued_requests < 1) {
    return absl::InvalidArgumentError(
        "encode batcher: max_queued_tiles and max_queued_requests must be >= 1");
  }
  if (options.cache_bytes < 0) {
    return absl::InvalidArgumentError("encode batcher: cache_bytes must be >= 0");
  }
  return std::unique_ptr<EncodeBatcher>(new EncodeBatcher(model, options, std::move(observer)));
}

EncodeBatcher::EncodeBatcher(const VisionModel* model, const EncodeBatcherOptions& options,
                             std::function<void(const BatchInfo&)> observer)
    : model_(model), options_(options), observer_(std::move(observer)) {
  if (options_.cache_bytes > 0) {
    cache_ = std::make_unique<cache::LruCache<at::Tensor>>(options_.cache_bytes);
  }
  worker_ = std::thread([this] { Worker(); });
}

EncodeBatcher::~EncodeBatcher() { Shutdown(); }

void EncodeBatcher::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  std::lock_guard<std::mutex> join_lock(join_mu_);
  if (worker_.joinable()) worker_.join();
}

EncodeBatcherStats EncodeBatcher::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  EncodeBatcherStats s = stats_;
  s.queued_requests = static_cast<int64_t>(queue_.size());
  s.queued_tiles = queued_tiles_;
  if (cache_) s.cache = cache_->stats();
  return s;
}

absl::Status EncodeBatcher::Submit(EncodeJob job, EncodeCallback done) {
  if (!done) return absl::InvalidArgumentError("encode batcher: no callback");
  auto refuse = [this](absl::Status s) {
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.requests_rejected;
    return s;
  };
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) {
      ++stats_.requests_rejected;
      return absl::UnavailableError("vision: shutting down");
    }
  }
  c10::InferenceMode guard;
  auto r = std::make_shared<Request>();
  r->submitted = Clock::now();
  try {
    absl::StatusOr<TilePlan> plan = model_->PlanTiles(job.pixel_values, job.pixel_attention_mask);
    if (!plan.ok()) return refuse(plan.status());
    r->plan = *std::move(plan);
    const at::Tensor& pv = job.pixel_values;
    const int64_t c = pv.size(-3), h = pv.size(-2), w = pv.size(-1);
    r->shape = {c, h, w};
    r->pixels = pv.reshape({-1, c, h, w}).to(at::kCPU).contiguous();
    if (job.pixel_attention_mask.defined()) {
      at::Tensor m = job.pixel_attention_mask.reshape({-1, h, w}).to(at::kCPU);
      if (m.scalar_type() != at::kBool) {
        if (m.ne(0).logical_and(m.ne(1)).any().item<bool>()) {
          return refuse(absl::InvalidArgumentError(
              "vision encoder: pixel_attention_mask values must be 0 or 1"));
        }
        m = m.ne(0);
      }
      r->mask = m.contiguous();
    }
    const int64_t n_real = r->n_real();
    r->remaining = n_real;
    if (cache_) {
      r->keys.reserve(n_real);
      for (int64_t row = 0; row < n_real; ++row) {
        r->keys.push_back(
            TileKey(options_.model_revision, model_->options().dtype, r->tile(row), r->tile_mask(row)));
        if (std::shared_ptr<const at::Tensor> hit = cache_->Get(r->keys.back())) {
          r->Fill(row, *hit);
          ++r->cached;
        } else {
          r->todo.push_back(row);
        }
      }
    } else {
      for (int64_t row = 0; row < n_real; ++row) r->todo.push_back(row);
    }
  } catch (const std::exception& e) {
    const c10::Error* ce = dynamic_cast<const c10::Error*>(&e);
    return refuse(absl::InternalError(absl::StrCat(
        "vision: preparing the request: ", ce != nullptr ? ce->what_without_backtrace() : e.what())));
  }
  r->job = std::move(job);
  r->done = std::move(done);

  const int64_t misses = r->unscheduled();
  if (misses == 0) {  // every tile from the cache: answer now
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++stats_.requests_submitted;
      stats_.cache_hit_tiles += r->cached;
    }
    Finish(r, absl::OkStatus());
    return absl::OkStatus();
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) {
      ++stats_.requests_rejected;
      return absl::UnavailableError("vision: shutting down");
    }
    if (misses > options_.max_queued_tiles) {
      ++stats_.requests_rejected;
      return absl::ResourceExhaustedError(
          absl::StrCat("vision: ", misses, " tiles to encode in one request, over the queue's ",
                       options_.max_queued_tiles, "-tile limit"));
    }
    if (static_cast<int64_t>(queue_.size()) >= options_.max_queued_requests ||
        queued_tiles_ + misses > options_.max_queued_tiles) {
      ++stats_.requests_rejected;
      // A refusal for load: the caller may retry (on another replica) shortly.
      return WithRetryAfter(absl::ResourceExhaustedError(absl::StrCat(
                                "vision: queue full (", queue_.size(), " requests, ", queued_tiles_,
                                " tiles waiting; limits ", options_.max_queued_requests,
                                " requests, ", options_.max_queued_tiles, " tiles)")),
                            500);
    }
    // Admission by time: shed at once what would only wait in the queue until its deadline.
    if (ms_per_tile_ > 0 && r->job.deadline != Clock::time_point::max()) {
      const double left_ms = Ms(Clock::now(), r->job.deadline);
      const double own_ms = static_cast<double>(misses) * ms_per_tile_;
      const double wait_ms = static_cast<double>(queued_tiles_) * ms_per_tile_;
      if (own_ms > left_ms) {
        ++stats_.requests_rejected;
        return absl::DeadlineExceededError(absl::StrCat(
            "vision: ", misses, " tiles need about ", static_cast<int64_t>(own_ms),
            " ms to encode here, more than the ", static_cast<int64_t>(std::max(0.0, left_ms)),
            " ms left before the deadline"));
      }
      if (wait_ms + own_ms > left_ms) {
        ++stats_.requests_rejected;
        return WithRetryAfter(absl::ResourceExhaustedError(absl::StrCat(
                                  "vision: busy (", queued_tiles_, " tiles waiting, about ",
                                  static_cast<int64_t>(wait_ms), " ms): this request would pass "
                                  "its deadline in the queue")),
                              static_cast<int64_t>(std::min(wait_ms, 30000.0)));
      }
    }
    ++stats_.requests_submitted;
    stats_.cache_hit_tiles += r->cached;
    queue_.push_back(r);
    queued_tiles_ += misses;
  }
  cv_.notify_one();
  return absl::OkStatus();
}

void EncodeBatcher::RemoveQueuedLocked(const std::shared_ptr<Request>& request) {
  auto it = std::find(queue_.begin(), queue_.end(), request);
  if (it == queue_.end()) return;
  queued_tiles_ -= (*it)->unscheduled();
  (*it)->next = (*it)->todo.size();
  queue_.erase(it);
}

void EncodeBatcher::Finish(const std::shared_ptr<Request>& r, absl::Status status) {
  if (r->finished) return;
  r->finished = true;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!status.ok()) RemoveQueuedLocked(r);
    switch (status.code()) {
      case absl::StatusCode::kOk: ++stats_.requests_ok; break;
      case absl::StatusCode::kCancelled: ++stats_.requests_cancelled; break;
      case absl::StatusCode::kDeadlineExceeded: ++stats_.requests_deadline_exceeded; break;
      default: ++stats_.requests_failed; break;
    }
  }
  if (!r->started) r->queue_ms = Ms(r->submitted, Clock::now());
  EncodeCallback done = std::move(r->done);
  if (!status.ok()) {
    r->out.reset();
    done(std::move(status));
    return;
  }
  EncodeResult result;
  result.image_hidden_states = std::move(r->out);
  result.real_tile_indices = r->plan.real_tile_indices;
  result.tiles = r->n_real();
  result.cached_tiles = r->cached;
  result.model_calls = r->model_calls;
  result.queue_ms = r->queue_ms;
  result.encode_ms = r->encode_ms;
  done(std::move(result));
}

bool EncodeBatcher::CollectLocked(
    std::unique_lock<std::mutex>& lock, Batch& batch,
    std::vector<std::pair<std::shared_ptr<Request>, absl::Status>>& dropped,
    std::vector<std::shared_ptr<Request>>& finished) {
  cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
  if (queue_.empty()) return false;  // stopping, nothing left

  // Batching window. A shape group (requests with tiles of one shape, in arrival order) is
  // ready when it holds max_batch_tiles tiles, when max_wait has passed since its oldest
  // request arrived, when it starts with a request that must run alone, or when draining.
  // The first ready group in arrival order is batched; until one is, wait.
  std::vector<int64_t> anchor;
  for (;;) {
    const Clock::time_point now = Clock::now();
    std::vector<std::pair<const std::vector<int64_t>*, int64_t>> groups;  // shape, tiles
    for (const auto& q : queue_) {
      auto g = std::find_if(groups.begin(), groups.end(),
                            [&](const auto& e) { return *e.first == q->shape; });
      if (g == groups.end()) {
        if (stopping_ || q->plan.no_real_tile || now >= q->submitted + options_.max_wait) {
          anchor = q->shape;
          break;
        }
        groups.emplace_back(&q->shape, 0);
        g = groups.end() - 1;
      }
      g->second += q->unscheduled();
      if (g->second >= options_.max_batch_tiles) {
        anchor = *g->first;
        break;
      }
    }
    if (!anchor.empty()) break;
    cv_.wait_until(lock, queue_.front()->submitted + options_.max_wait);
  }

  const Clock::time_point now = Clock::now();
  bool solo = false;
  for (auto it = queue_.begin(); it != queue_.end() && !solo && batch.size() < options_.max_batch_tiles;) {
    const std::shared_ptr<Request>& r = *it;
    absl::Status drop;
    if (r->job.is_cancelled && r->job.is_cancelled()) {
      drop = absl::CancelledError("vision: cancelled before encoding");
    } else if (now >= r->job.deadline) {
      drop = absl::DeadlineExceededError("vision: deadline passed while queued");
    }
    if (!drop.ok()) {
      queued_tiles_ -= r->unscheduled();
      r->next = r->todo.size();
      dropped.emplace_back(r, std::move(drop));
      it = queue_.erase(it);
      continue;
    }
    if (r->shape != anchor) {
      ++it;
      continue;
    }
    if (r->plan.no_real_tile) {
      if (batch.size() > 0) {  // it runs alone, in a later call
        ++it;
        continue;
      }
      solo = true;
    }
    bool in_batch = false;
    while (r->next < r->todo.size() && batch.size() < options_.max_batch_tiles) {
      const int64_t row = r->todo[r->next++];
      --queued_tiles_;
      if (cache_) {
        const cache::Digest& key = r->keys[row];
        // Encoded since this request arrived (an earlier batch)?
        if (cache_->Contains(key)) {
          std::shared_ptr<const at::Tensor> hit = cache_->Get(key);
          bool filled = false;
          try {
            if (hit != nullptr) {
              r->Fill(row, *hit);
              filled = true;
            }
          } catch (const std::exception&) {
            // Could not copy the cached row (allocation): encode the tile instead.
          }
          if (filled) {
            ++r->cached;
            ++stats_.cache_hit_tiles;
            continue;
          }
        }
        ++stats_.cache_miss_tiles;
        auto found = batch.row_of_key.find(key);
        if (found != batch.row_of_key.end()) {  // an identical tile is already in this batch
          batch.slots[found->second].push_back({r, row});
          ++stats_.duplicate_tiles;
          if (!in_batch) batch.requests.push_back(r);
          in_batch = true;
          continue;
        }
        batch.row_of_key.emplace(key, batch.size());
        batch.keys.push_back(key);
      } else {
        ++stats_.cache_miss_tiles;
      }
      batch.pixels.push_back(r->tile(row));
      batch.masks.push_back(r->tile_mask(row));
      batch.any_mask = batch.any_mask || r->mask.defined();
      batch.slots.push_back({{r, row}});
      if (!in_batch) batch.requests.push_back(r);
      in_batch = true;
    }
    // Answered entirely from the cache while it waited.
    if (r->remaining == 0 && !in_batch) finished.push_back(r);
    if (r->next == r->todo.size()) {
      it = queue_.erase(it);
    } else {
      ++it;
    }
  }
  return true;
}

void EncodeBatcher::RunBatch(Batch& batch, std::vector<std::shared_ptr<Request>>& finished) {
  const int64_t n = batch.size();
  for (const auto& r : batch.requests) {
    ++r->model_calls;
    if (!r->started) {
      r->started = true;
      r->queue_ms = Ms(r->submitted, Clock::now());
      if (r->job.on_start) r->job.on_start();
    }
  }
  const Clock::time_point t0 = Clock::now();
  absl::Status status;
  at::Tensor features;
  try {
    const at::Tensor pixels = at::stack(batch.pixels);
    at::Tensor mask;
    if (batch.any_mask) {
      std::vector<at::Tensor> masks;
      masks.reserve(n);
      for (int64_t i = 0; i < n; ++i) {
        masks.push_back(batch.masks[i].defined()
                            ? batch.masks[i]
                            : at::ones({pixels.size(2), pixels.size(3)}, at::kBool));
      }
      mask = at::stack(masks);
    }
    absl::StatusOr<VisionOutput> out = model_->Encode(pixels, mask);
    if (!out.ok()) {
      status = out.status();
    } else if (static_cast<int64_t>(out->real_tile_indices.size()) != n ||
               out->image_hidden_states.size(0) != n) {
      // Every row was a real tile (or a lone kept padding tile) for PlanTiles.
      status = absl::InternalError(absl::StrCat("encoder kept ", out->real_tile_indices.size(),
                                                " of ", n, " tiles"));
    } else {
      features = std::move(out->image_hidden_states);
    }
  } catch (const std::exception& e) {
    status = StatusFromException(e, "encoder");
  }
  const double ms = Ms(t0, Clock::now());
  if (!status.ok()) {
    status = absl::Status(status.code(),
                          absl::StrCat("vision: encoder batch of ", n, " tiles from ",
                                       batch.requests.size(), " request(s) failed: ",
                                       status.message()));
  }
  for (const auto& r : batch.requests) r->encode_ms += ms;
  if (status.ok() && n > 0) {
    std::lock_guard<std::mutex> lock(mu_);
    const double per_tile = ms / static_cast<double>(n);
    ms_per_tile_ = ms_per_tile_ == 0 ? per_tile : 0.7 * ms_per_tile_ + 0.3 * per_tile;
  }
  if (status.ok()) {
    try {
      for (int64_t i = 0; i < n; ++i) {
        const at::Tensor row = features[i];
        for (const Batch::Slot& slot : batch.slots[i]) slot.request->Fill(slot.row, row);
        if (cache_) {
          // A copy of its own: a cached row must not keep the whole batch tensor alive.
          auto value = std::make_shared<const at::Tensor>(row.clone());
          cache_->Put(batch.keys[i], value, static_cast<int64_t>(value->nbytes()));
        }
      }
    } catch (const std::exception& e) {
      status = absl::InternalError(absl::StrCat("vision: routing encoder outputs: ", e.what()));
    }
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.model_calls;
    if (!status.ok()) ++stats_.failed_model_calls;
    stats_.tiles_encoded += n;
    stats_.max_tiles_per_call = std::max(stats_.max_tiles_per_call, n);
    const int64_t reqs = static_cast<int64_t>(batch.requests.size());
    stats_.max_requests_per_call = std::max(stats_.max_requests_per_call, reqs);
    if (reqs >= 2) ++stats_.multi_request_calls;
  }
  if (observer_) observer_(BatchInfo{n, static_cast<int64_t>(batch.requests.size()), ms, status});
  for (const auto& r : batch.requests) {
    if (!status.ok()) {
      Finish(r, status);
    } else if (r->remaining == 0) {
      finished.push_back(r);
    }
  }
}

void EncodeBatcher::Worker() {
  at::set_num_threads(options_.threads);
  c10::InferenceMode guard;
  for (;;) {
    Batch batch;
    std::vector<std::pair<std::shared_ptr<Request>, absl::Status>> dropped;
    std::vector<std::shared_ptr<Request>> finished;
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (!CollectLocked(lock, batch, dropped, finished)) return;
    }
    for (auto& [r, status] : dropped) Finish(r, std::move(status));
    if (batch.size() > 0) RunBatch(batch, finished);
    for (const auto& r : finished) Finish(r, absl::OkStatus());
  }
}

}  // namespace smolserve::vision
