#include "services/decoder/core/batch_engine.h"

#include <algorithm>
#include <chrono>
#include <optional>
#include <random>
#include <utility>

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <c10/util/Exception.h>

#include "absl/strings/str_cat.h"
#include "common/status/status_macros.h"
#include "services/decoder/core/logits_processor.h"

namespace smolserve::decoder {

using Clock = std::chrono::steady_clock;

namespace {
double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}
}  // namespace

struct BatchEngine::Sequence {
  GenerateRequest request;
  SequenceCallbacks callbacks;
  at::Tensor embeds;  // [1, L, D] prompt embeddings (image features merged)
  int64_t prompt_len = 0;
  int64_t capacity = 0;
  int64_t kv_bytes = 0;
  Clock::time_point submitted, admitted, first_token;

  std::optional<KvCache> cache;
  std::vector<PrefixDigest> digests;  // of the reusable prompt blocks (prefix cache on)
  int64_t prefilled = 0;
  bool decoding = false;  // prefill done, next_token pending
  int64_t next_token = -1;
  std::vector<int64_t> history;  // prompt + generated, for the repetition penalty
  std::mt19937_64 rng;
  SequenceResult result;
};

absl::StatusOr<std::unique_ptr<BatchEngine>> BatchEngine::Create(const TextModel& model,
                                                                 BatchEngineOptions options) {
  if (options.max_running < 1) return absl::InvalidArgumentError("max_running must be >= 1");
  if (options.prefill_chunk_tokens < 1) {
    return absl::InvalidArgumentError("prefill_chunk_tokens must be >= 1");
  }
  if (options.kv_cache_budget_bytes < 1) {
    return absl::InvalidArgumentError("kv_cache_budget_bytes must be >= 1");
  }
  if (options.max_waiting < 0) return absl::InvalidArgumentError("max_waiting must be >= 0");
  ASSIGN_OR_RETURN(DecodeScratch scratch,
                   model.NewDecodeScratch(options.max_running + options.prefill_chunk_tokens,
                                          /*max_logit_rows=*/options.max_running + 1));
  return std::unique_ptr<BatchEngine>(
      new BatchEngine(model, std::move(options), std::move(scratch)));
}

BatchEngine::BatchEngine(const TextModel& model, BatchEngineOptions options,
                         DecodeScratch scratch)
    : model_(model), options_(std::move(options)), scratch_(std::move(scratch)) {
  stats_.kv_budget_bytes = options_.kv_cache_budget_bytes;
  if (options_.prefix_cache) {
    prefix_cache_ = std::make_unique<PrefixCache>(options_.prefill_chunk_tokens);
  }
  thread_ = std::thread([this] { Loop(); });
}

BatchEngine::~BatchEngine() { Shutdown(); }

void BatchEngine::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

BatchEngineStats BatchEngine::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

absl::Status BatchEngine::Submit(GenerateRequest request, SequenceCallbacks callbacks) {
  const TextModelDims& dims = model_.dims();
  RETURN_IF_ERROR(ValidateGenerateRequest(request, dims));
  if (request.input_ids.size() != 1 || !request.attention_mask.empty()) {
    return absl::InvalidArgumentError(
        "the batch engine takes one prompt row per request, without an attention mask");
  }
  const int64_t L = request.input_ids[0].size();
  if (L < 1) return absl::InvalidArgumentError("input_ids is empty");
  const int64_t capacity = L + request.max_new_tokens;
  if (capacity > dims.max_positions) {
    return absl::InvalidArgumentError(absl::StrCat(
        "prompt of ", L, " tokens + max_new_tokens ", request.max_new_tokens, " exceeds ",
        "max_position_embeddings ", dims.max_positions));
  }
  auto seq = std::make_unique<Sequence>();
  seq->prompt_len = L;
  seq->capacity = capacity;
  seq->kv_bytes = model_.CacheBytes(1, capacity);
  if (seq->kv_bytes > options_.kv_cache_budget_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "prompt of ", L, " tokens + ", request.max_new_tokens, " new tokens needs ",
        seq->kv_bytes >> 20, " MiB of KV cache, over the budget of ",
        options_.kv_cache_budget_bytes >> 20, " MiB"));
  }
  {
    c10::InferenceMode guard;
    at::Tensor ids = at::tensor(request.input_ids[0], at::TensorOptions().dtype(at::kLong))
                         .view({1, L});
    ASSIGN_OR_RETURN(at::Tensor embeds, model_.EmbedInputs(ids, request.image_hidden_states));
    seq->embeds = embeds.to(at::kFloat).contiguous();
    if (options_.prefix_cache) {
      seq->digests = BlockDigests(seq->embeds, options_.prefill_chunk_tokens);
    }
  }
  request.image_hidden_states = at::Tensor();  // merged into embeds
  seq->history = request.input_ids[0];
  seq->rng.seed(request.sampling.seed.has_value() ? *request.sampling.seed
                                                  : std::random_device{}());
  seq->result.row.prompt_tokens = L;
  seq->request = std::move(request);
  seq->callbacks = std::move(callbacks);
  seq->submitted = Clock::now();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return absl::UnavailableError("the decoder is shutting down");
    // At most max_running + max_waiting sequences in the engine (running or waiting).
    if (static_cast<int64_t>(waiting_.size()) + stats_.running >=
        options_.max_running + options_.max_waiting) {
      return absl::ResourceExhaustedError(
          absl::StrCat("queue full (", waiting_.size(), " waiting)"));
    }
    waiting_.push_back(std::move(seq));
    stats_.waiting = waiting_.size();
  }
  cv_.notify_all();
  return absl::OkStatus();
}

void BatchEngine::Finish(std::unique_ptr<Sequence> seq, absl::StatusOr<SequenceResult> result) {
  const bool was_admitted = seq->cache.has_value() || seq->admitted != Clock::time_point();
  seq->cache.reset();  // frees the KV memory before anyone hears about it
  seq->embeds = at::Tensor();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (was_admitted) {
      stats_.kv_bytes_in_use -= seq->kv_bytes;
      --stats_.running;
    }
    ++stats_.completed;
  }
  if (seq->callbacks.on_done) seq->callbacks.on_done(std::move(result));
}

bool BatchEngine::Advance(Sequence& seq, float* logits_row) {
  const int64_t V = model_.dims().vocab_size;
  GenerateRequest& r = seq.request;
  RowResult& row = seq.result.row;
  if (row.token_ids.empty() && seq.callbacks.on_first_logits) {
    seq.callbacks.on_first_logits(absl::Span<const float>(logits_row, V));
  }
  const int64_t token =
      SelectNextToken(absl::Span<float>(logits_row, V), seq.history, r.sampling, seq.rng);
  row.token_ids.push_back(token);
  row.completion_tokens = row.token_ids.size();
  seq.history.push_back(token);
  if (row.token_ids.size() == 1) seq.first_token = Clock::now();
  const StreamAction action = r.on_token ? r.on_token(0, token) : StreamAction::kContinue;
  const std::optional<FinishReason> reason = RecordToken(r, row, token, action);
  if (reason.has_value()) {
    row.finish_reason = *reason;
    return true;
  }
  seq.next_token = token;
  return false;
}

void BatchEngine::AdmitWaiting(std::vector<std::unique_ptr<Sequence>>& admitted) {
  const int64_t budget = options_.kv_cache_budget_bytes;
  while (!waiting_.empty() &&
         static_cast<int64_t>(running_.size() + admitted.size()) < options_.max_running) {
    const int64_t need = waiting_.front()->kv_bytes;
    const int64_t over = stats_.kv_bytes_in_use + stats_.prefix_cache_bytes + need - budget;
    if (over > 0 && prefix_cache_ != nullptr) {
      prefix_cache_->Evict(over);
      stats_.prefix_cache_bytes = prefix_cache_->bytes();
      stats_.prefix_cache_entries = prefix_cache_->entries();
    }
    if (stats_.kv_bytes_in_use + stats_.prefix_cache_bytes + need > budget) break;
    stats_.kv_bytes_in_use += need;
    admitted.push_back(std::move(waiting_.front()));
    waiting_.pop_front();
  }
  stats_.waiting = waiting_.size();
  stats_.running += admitted.size();
}

absl::Status BatchEngine::StartSequence(Sequence& seq) {
  if (prefix_cache_ == nullptr) return absl::OkStatus();
  std::optional<PrefixCache::Hit> hit = prefix_cache_->Lookup(seq.digests);
  const int64_t reused = hit.has_value() ? hit->length : 0;
  if (reused > 0) {
    RETURN_IF_ERROR(model_.LoadPrefix(*hit->prefix, reused, *seq.cache));
    seq.prefilled = reused;
    seq.result.cached_prompt_tokens = reused;
  }
  std::lock_guard<std::mutex> lock(mu_);
  stats_.prefix_query_tokens += seq.prompt_len;
  stats_.prefix_hit_tokens += reused;
  return absl::OkStatus();
}

void BatchEngine::KeepPrefix(Sequence& seq) {
  if (prefix_cache_ == nullptr || prefix_cache_->Covers(seq.digests)) return;
  const int64_t length = static_cast<int64_t>(seq.digests.size()) * options_.prefill_chunk_tokens;
  const int64_t bytes = model_.PrefixBytes(length);
  {
    // Room within the KV budget, made by evicting older prefixes (never running sequences).
    std::lock_guard<std::mutex> lock(mu_);
    const int64_t over = stats_.kv_bytes_in_use + prefix_cache_->bytes() + bytes -
                         options_.kv_cache_budget_bytes;
    if (over > 0) prefix_cache_->Evict(over);
    stats_.prefix_cache_bytes = prefix_cache_->bytes();
    stats_.prefix_cache_entries = prefix_cache_->entries();
    if (stats_.kv_bytes_in_use + prefix_cache_->bytes() + bytes > options_.kv_cache_budget_bytes) {
      return;
    }
  }
  absl::StatusOr<KvPrefix> prefix = model_.CopyPrefix(*seq.cache, length);
  if (!prefix.ok()) return;  // out of memory: serve on without keeping it
  prefix_cache_->Insert(seq.digests, std::make_shared<const KvPrefix>(*std::move(prefix)));
  std::lock_guard<std::mutex> lock(mu_);
  stats_.prefix_cache_bytes = prefix_cache_->bytes();
  stats_.prefix_cache_entries = prefix_cache_->entries();
}

void BatchEngine::Loop() {
  if (options_.thread_init) options_.thread_init();
  c10::InferenceMode guard;
  while (true) {
    std::vector<std::unique_ptr<Sequence>> admitted, dropped;
    std::vector<absl::Status> dropped_status;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !waiting_.empty() || !running_.empty(); });
      if (stopping_ && waiting_.empty() && running_.empty()) return;
      // Sequences whose client left while they waited leave the queue now.
      for (auto it = waiting_.begin(); it != waiting_.end();) {
        absl::Status st = (*it)->callbacks.poll ? (*it)->callbacks.poll() : absl::OkStatus();
        if (!st.ok()) {
          dropped.push_back(std::move(*it));
          dropped_status.push_back(std::move(st));
          it = waiting_.erase(it);
        } else {
          ++it;
        }
      }
      AdmitWaiting(admitted);
    }
    for (size_t i = 0; i < dropped.size(); ++i) Finish(std::move(dropped[i]), dropped_status[i]);

    const auto now = Clock::now();
    for (auto& seq : admitted) {
      seq->admitted = now;
      seq->result.queue_seconds = Seconds(seq->submitted, now);
      absl::StatusOr<KvCache> cache =
          model_.NewCache(1, seq->capacity, /*with_scratch=*/false);
      if (!cache.ok()) {
        Finish(std::move(seq), cache.status());
        continue;
      }
      seq->cache.emplace(*std::move(cache));
      if (absl::Status st = StartSequence(*seq); !st.ok()) {
        Finish(std::move(seq), st);
        continue;
      }
      if (seq->callbacks.on_start) seq->callbacks.on_start();
      running_.push_back(std::move(seq));
    }

    // Running sequences whose client left or whose deadline passed end now.
    for (auto& seq : running_) {
      if (!seq->callbacks.poll) continue;
      absl::Status st = seq->callbacks.poll();
      if (!st.ok()) Finish(std::move(seq), st);
    }
    running_.erase(std::remove(running_.begin(), running_.end(), nullptr), running_.end());

    // One pass over the weights: a token for every generating sequence, plus the next
    // prompt chunk of the oldest sequence still prefilling.
    std::vector<StepRow> rows;
    std::vector<Sequence*> row_seq;  // per row that returns logits
    for (auto& seq : running_) {
      if (!seq->decoding) continue;
      rows.push_back(StepRow{&*seq->cache, seq->next_token, nullptr, true});
      row_seq.push_back(seq.get());
    }
    Sequence* prefilling = nullptr;
    int64_t chunk = 0;
    for (auto& seq : running_) {
      if (seq->decoding) continue;
      prefilling = seq.get();
      chunk = std::min(options_.prefill_chunk_tokens, seq->prompt_len - seq->prefilled);
      const float* emb = seq->embeds.data_ptr<float>() + seq->prefilled * model_.dims().hidden_size;
      const bool completes = seq->prefilled + chunk == seq->prompt_len;
      for (int64_t j = 0; j < chunk; ++j) {
        const bool last = completes && j + 1 == chunk;
        rows.push_back(StepRow{&*seq->cache, -1, emb + j * model_.dims().hidden_size, last});
        if (last) row_seq.push_back(seq.get());
      }
      break;
    }
    if (rows.empty()) continue;
    const auto d0 = Clock::now();
    absl::StatusOr<at::Tensor> logits = model_.Step(rows, scratch_);
    const auto d1 = Clock::now();
    const int64_t decode_rows = rows.size() - chunk;
    {
      std::lock_guard<std::mutex> lock(mu_);
      stats_.step_seconds += Seconds(d0, d1);
      if (decode_rows > 0) ++stats_.decode_steps;
      stats_.decode_rows += decode_rows;
      stats_.max_batch_rows = std::max<int64_t>(stats_.max_batch_rows, decode_rows);
      if (prefilling != nullptr) ++stats_.prefill_chunks;
    }
    if (prefilling != nullptr) {
      prefilling->prefilled += chunk;
      prefilling->result.prefill_seconds += Seconds(d0, d1);
      ++prefilling->result.prefill_chunks;
      if (prefilling->prefilled == prefilling->prompt_len && logits.ok()) {
        KeepPrefix(*prefilling);
        prefilling->embeds = at::Tensor();
        prefilling->decoding = true;
      }
    }
    const int64_t V = model_.dims().vocab_size;
    for (auto& seq : running_) {
      const size_t i = std::find(row_seq.begin(), row_seq.end(), seq.get()) - row_seq.begin();
      const bool in_step = i < row_seq.size() || seq.get() == prefilling;
      if (!in_step) continue;
      if (!logits.ok()) {
        Finish(std::move(seq), logits.status());
        continue;
      }
      if (i == row_seq.size()) continue;  // a prefill chunk that does not end the prompt
      if (Advance(*seq, logits->data_ptr<float>() + i * V)) {
        seq->result.decode_seconds = Seconds(seq->first_token, Clock::now());
        SequenceResult result = seq->result;
        Finish(std::move(seq), std::move(result));
      }
    }
    running_.erase(std::remove(running_.begin(), running_.end(), nullptr), running_.end());
    {
      std::lock_guard<std::mutex> lock(mu_);
      stats_.select_seconds += Seconds(d1, Clock::now());
    }
  }
}

}  // namespace smolserve::decoder
