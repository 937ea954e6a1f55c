#include "services/preprocess/core/chat_pipeline.h"

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status/exception_status.h"
#include "common/status/retry_after.h"
#include "common/status/status_macros.h"
#include "nlohmann/json.hpp"

namespace smolserve::preprocess {
namespace {

using Clock = std::chrono::steady_clock;

double Ms(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

// The error as the client should see it: the stage that failed is named once.
absl::Status WithStage(const absl::Status& s, absl::string_view stage) {
  if (s.ok()) return s;
  for (const char* known : {"preprocess:", "vision:", "decoder:"}) {
    if (absl::StartsWith(s.message(), known)) return s;
  }
  absl::Status out(s.code(), absl::StrCat(stage, ": ", s.message()));
  s.ForEachPayload([&](absl::string_view url, const absl::Cord& payload) {
    out.SetPayload(url, payload);
  });
  return out;
}

// Waits up to `d`, returning early when the request is cancelled.
void SleepUnlessCancelled(absl::Duration d, const CallContext& ctx) {
  const absl::Time end = absl::Now() + d;
  while (!ctx.cancelled() && absl::Now() < end) {
    absl::SleepFor(std::min(absl::Milliseconds(20), end - absl::Now()));
  }
}

// Runs `call` again while a stage refuses it for load (a status with a retry hint), nothing
// was streamed yet, and the deadline leaves time: at most every hint x 2^attempt (capped).
template <typename Fn>
auto RetryOnOverload(bool enabled, const CallContext& ctx, const bool* streamed, Fn&& call)
    -> decltype(call()) {
  for (int attempt = 0;; ++attempt) {
    auto result = call();
    if (result.ok() || !enabled || (streamed != nullptr && *streamed)) return result;
    const std::optional<int64_t> hint = RetryAfterMs(result.status());
    if (!hint.has_value() || ctx.cancelled()) return result;
    const absl::Duration wait = absl::Milliseconds(std::max<int64_t>(*hint, 50)) * (1 << std::min(attempt, 4));
    if (absl::Now() + wait >= ctx.deadline) return result;
    SleepUnlessCancelled(wait, ctx);
  }
}

std::string Truncated(absl::string_view s, size_t n) {
  if (s.size() <= n) return std::string(s);
  return absl::StrCat(s.substr(0, n), "...");
}

}  // namespace

struct ChatPipeline::Conversation {
  absl::Status status;
  ChatChoice choice;
  double vision_ms = 0, prefill_ms = 0, decode_ms = 0;
  int64_t embedding_bytes = 0;
  int cached_tiles = 0;
  std::string vision_model_revision;  // of the embeddings sent to the decoder
};

struct ChatPipeline::Shared {
  const DeltaSink* sink = nullptr;
  Clock::time_point started;
  double preprocess_ms = 0;
  PreparedBatch batch;
  std::vector<std::shared_ptr<const CachedMedia>> hits;  // media cache hits, by media index
  std::vector<Conversation> conversations;
  std::mutex mu;  // serialises the sink; guards the first-token time
  std::optional<Clock::time_point> first_token;
};

ChatPipeline::ChatPipeline(ChatPipelineOptions options, const Preprocessor* preprocessor,
                           VisionClient* vision, DecoderClient* decoder, MediaCache* media_cache,
                           BoundedExecutor* conversation_pool, metrics::StageMetrics* metrics)
    : options_(std::move(options)),
      preprocessor_(preprocessor),
      vision_(vision),
      decoder_(decoder),
      media_cache_(media_cache),
      pool_(conversation_pool),
      metrics_(metrics) {}

absl::Status ChatPipeline::Validate(const ChatRequest& request, const ChatContext& ctx) const {
  const auto& convs = request.prepare.conversations;
  if (convs.empty()) return absl::InvalidArgumentError("preprocess: request has no conversation");
  if (static_cast<int>(convs.size()) > options_.max_conversations) {
    return absl::ResourceExhaustedError(absl::StrCat("preprocess: request has ", convs.size(),
                                                     " conversations, over the limit of ",
                                                     options_.max_conversations));
  }
  int64_t text_bytes = 0;
  for (size_t b = 0; b < convs.size(); ++b) {
    if (convs[b].empty()) {
      return absl::InvalidArgumentError(absl::StrCat("preprocess: conversation ", b, " is empty"));
    }
    if (static_cast<int>(convs[b].size()) > options_.max_messages) {
      return absl::ResourceExhaustedError(absl::StrCat("preprocess: conversation ", b, " has ",
                                                       convs[b].size(), " messages, over the limit of ",
                                                       options_.max_messages));
    }
    for (const Message& m : convs[b]) {
      text_bytes += m.role.size();
      for (const ContentItem& item : m.content) text_bytes += item.text.size();
    }
  }
  if (text_bytes > options_.max_text_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat("preprocess: request text of ", text_bytes,
                                                     " bytes is over the limit of ",
                                                     options_.max_text_bytes));
  }
  if (static_cast<int>(ctx.call.request_id.size()) > options_.max_request_id_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("preprocess: request_id is longer than ",
                                                   options_.max_request_id_bytes, " bytes"));
  }
  return WithStage(ValidateGenerationParams(request.generation, options_.generation),
                   "preprocess");
}

absl::StatusOr<ChatResult> ChatPipeline::Run(const ChatRequest& request, const ChatContext& ctx,
                                             const DeltaSink& sink) const {
  Shared shared;
  shared.sink = &sink;
  shared.started = Clock::now();
  if (metrics_ != nullptr) metrics_->num_requests_running->Increment();
  absl::Status status = Validate(request, ctx);
  if (status.ok()) {
    absl::StatusOr<PreparedBatch> batch = Prepare(request, ctx, shared);
    shared.preprocess_ms = Ms(shared.started, Clock::now());
    if (!batch.ok()) {
      status = batch.status();
    } else {
      shared.batch = *std::move(batch);
      RunConversations(request, ctx, shared);
      // The request fails as a whole only when no conversation finished.
      bool any_ok = false;
      for (const Conversation& c : shared.conversations) any_ok = any_ok || c.status.ok();
      for (const Conversation& c : shared.conversations) {
        if (!c.status.ok() && !any_ok) {
          status = c.status;
          break;
        }
      }
    }
  }
  if (status.ok() && ctx.call.cancelled()) status = absl::CancelledError("cancelled by the client");
  ChatResult result = Assemble(ctx, shared);
  Record(request, ctx, shared, status, &result);
  if (metrics_ != nullptr) metrics_->num_requests_running->Decrement();
  if (!status.ok()) return status;
  return result;
}

absl::StatusOr<PreparedBatch> ChatPipeline::Prepare(const ChatRequest& request,
                                                    const ChatContext& ctx, Shared& shared) const {
  MediaAccess access = ctx.media != nullptr ? *ctx.media : options_.media;
  access.deadline = ctx.call.deadline;
  CancellationToken* cancel = ctx.call.cancel;
  access.cancelled = [cancel] { return cancel != nullptr && cancel->cancelled(); };
  MediaLookup lookup;
  if (media_cache_ != nullptr) {
    lookup = [this, &shared](int index, const MediaKeys& keys) -> std::optional<MediaInfo> {
      if (static_cast<int>(shared.hits.size()) <= index) shared.hits.resize(index + 1);
      shared.hits[index] = media_cache_->Find(keys);
      if (shared.hits[index] != nullptr &&
          shared.hits[index]->model_revision != VisionRevision()) {
        shared.hits[index] = nullptr;  // embeddings of an older vision model: encode again
      }
      if (shared.hits[index] == nullptr) return std::nullopt;
      return shared.hits[index]->info;
    };
  }
  absl::StatusOr<PreparedBatch> batch = preprocessor_->Prepare(request.prepare, access, lookup);
  if (!batch.ok()) return WithStage(batch.status(), "preprocess");
  shared.hits.resize(batch->media.size());
  if (metrics_ != nullptr) {
    int tiles = 0, frames = 0;
    for (const MediaInfo& m : batch->media) {
      (m.kind == MediaInfo::Kind::kVideo ? frames : tiles) += m.num_tiles;
      if (m.from_cache) {
        metrics_->media_cache_hits->Increment();
        continue;
      }
      if (media_cache_ != nullptr) metrics_->media_cache_misses->Increment();
      (m.kind == MediaInfo::Kind::kImage ? metrics_->media_decode_image
                                         : metrics_->media_decode_video)
          ->Observe(m.decode_ms / 1e3);
    }
    if (tiles > 0) metrics_->tiles_per_request->Observe(tiles);
    if (frames > 0) metrics_->frames_per_request->Observe(frames);
  }
  return batch;
}

void ChatPipeline::RunConversations(const ChatRequest& request, const ChatContext& ctx,
                                    Shared& shared) const {
  const int B = static_cast<int>(shared.batch.input_ids.size());
  shared.conversations.resize(B);
  if (B == 1 || pool_ == nullptr) {
    for (int b = 0; b < B; ++b) RunConversation(b, request, ctx, shared);
    return;
  }
  // A mutex-guarded count, not absl::BlockingCounter: every conversation's writes must be
  // visibly ordered before Assemble reads them, also to ThreadSanitizer (Debian's Abseil is not
  // instrumented, so the atomics inside BlockingCounter look like no synchronisation at all).
  std::mutex mu;
  std::condition_variable cv;
  int remaining = B - 1;
  for (int b = 1; b < B; ++b) {
    std::function<void()> task = [this, b, &request, &ctx, &shared, &mu, &cv, &remaining] {
      RunConversation(b, request, ctx, shared);
      std::lock_guard<std::mutex> lock(mu);
      if (--remaining == 0) cv.notify_all();
    };
    if (!pool_->TrySubmit(task)) task();  // the pool is busy: this thread runs it
  }
  RunConversation(0, request, ctx, shared);
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return remaining == 0; });
}

absl::StatusOr<at::Tensor> ChatPipeline::ConversationEmbeddings(int b, const ChatContext& ctx,
                                                                Shared& shared,
                                                                Conversation& conv) const {
  const PreparedBatch& batch = shared.batch;
  std::vector<int> items;  // this conversation's media, in prompt order
  int n = 0, n_encode = 0;
  for (size_t i = 0; i < batch.media.size(); ++i) {
    const MediaInfo& m = batch.media[i];
    if (m.conversation != b) continue;
    items.push_back(static_cast<int>(i));
    n += m.num_tiles;
    if (!m.from_cache) n_encode += m.num_tiles;
  }
  conv.cached_tiles = n - n_encode;
  if (n == 0) return at::Tensor();
  at::Tensor fresh;  // the vision stage's answer for the items not in the media cache
  if (n_encode > 0) {
    EncodeTiles tiles;
    tiles.pixels = batch.pixels[b].narrow(0, 0, n_encode);
    tiles.formulas = batch.tile_formula[b].narrow(0, 0, n_encode);
    tiles.normalize = batch.normalize;
    tiles.pixel_attention_mask = batch.pixel_attention_mask[b].narrow(0, 0, n_encode);
    CallContext call = ctx.call;
    const auto v0 = Clock::now();
    const bool batch_retries = shared.batch.input_ids.size() > 1;
    absl::StatusOr<EncodeOutcome> encoded = RetryOnOverload(
        batch_retries, call, nullptr, [&] { return vision_->Encode(tiles, call); });
    conv.vision_ms = Ms(v0, Clock::now());
    if (!encoded.ok()) return WithStage(encoded.status(), "vision");
    conv.embedding_bytes = encoded->wire_bytes;
    conv.vision_model_revision = encoded->model_revision;
    NoteVisionRevision(encoded->model_revision);
    conv.cached_tiles += encoded->cached_tiles;
    fresh = encoded->image_hidden_states;
    if (!fresh.defined() || fresh.dim() != 3 || fresh.size(0) != n_encode) {
      return absl::InternalError(absl::StrCat("vision: returned ",
                                              fresh.defined() && fresh.dim() > 0 ? fresh.size(0) : 0,
                                              " embeddings for ", n_encode, " tiles"));
    }
  }
  if (n_encode == n && media_cache_ == nullptr) return fresh;
  // In prompt order: cached items' rows and the fresh rows (stored in the cache as they pass).
  std::vector<at::Tensor> parts;
  int64_t offset = 0;
  try {
    for (int i : items) {
      const MediaInfo& m = batch.media[i];
      if (m.from_cache) {
        const std::string& cached = shared.hits[i]->model_revision;
        if (n_encode > 0 && cached != conv.vision_model_revision) {
          return absl::UnavailableError(absl::StrCat(
              "preprocess: the vision model changed during the request (cached embeddings of "
              "revision '", cached, "', the vision stage now serves '", conv.vision_model_revision,
              "'); retry"));
        }
        conv.vision_model_revision = cached;
        parts.push_back(shared.hits[i]->embeddings);
        continue;
      }
      at::Tensor rows = fresh.narrow(0, offset, m.num_tiles);
      offset += m.num_tiles;
      if (media_cache_ != nullptr && !m.keys.empty()) {
        auto entry = std::make_shared<CachedMedia>();
        entry->info = m;
        entry->embeddings = rows.clone();
        entry->model_revision = conv.vision_model_revision;
        media_cache_->Store(m.keys, std::move(entry));
      }
      parts.push_back(rows);
    }
    if (n_encode == n) return fresh;
    // One dtype for the decoder: the vision stage's current one.
    const at::ScalarType dtype = fresh.defined() ? fresh.scalar_type() : parts[0].scalar_type();
    for (at::Tensor& p : parts) {
      if (p.scalar_type() != dtype) p = p.to(dtype);
      if (p.dim() != 3 || p.size(1) != parts[0].size(1) || p.size(2) != parts[0].size(2)) {
        return absl::FailedPreconditionError(
            "preprocess: cached image embeddings do not match the vision stage's shape");
      }
    }
    return at::cat(parts, 0);
  } catch (const std::exception& e) {
    return StatusFromException(e, "preprocess: assembling image embeddings");
  }
}

void ChatPipeline::RunConversation(int b, const ChatRequest& request, const ChatContext& ctx,
                                   Shared& shared) const {
  Conversation& conv = shared.conversations[b];
  conv.choice.index = b;
  absl::StatusOr<at::Tensor> embeddings = ConversationEmbeddings(b, ctx, shared, conv);
  if (!embeddings.ok()) {
    conv.status = embeddings.status();
    return;
  }
  GenerateCall call;
  const auto& ids = shared.batch.input_ids[b];
  const auto& mask = shared.batch.attention_mask[b];
  for (size_t i = 0; i < ids.size(); ++i) {
    if (mask[i]) call.input_ids.push_back(ids[i]);
  }
  call.image_hidden_states = *std::move(embeddings);
  call.vision_model_revision = conv.vision_model_revision;
  call.generation = request.generation;
  if (request.distinct_seeds && call.generation.seed) *call.generation.seed += b;
  CallContext cc = ctx.call;
  if (shared.batch.input_ids.size() > 1) cc.request_id = absl::StrCat(cc.request_id, "/", b);
  bool streamed = false;
  auto on_delta = [&](const TokenDelta& d) {
    streamed = true;
    conv.choice.text += d.text;
    conv.choice.token_ids.insert(conv.choice.token_ids.end(), d.token_ids.begin(), d.token_ids.end());
    if (d.text.empty() && d.token_ids.empty()) return;
    std::lock_guard<std::mutex> lock(shared.mu);
    if (!shared.first_token) {
      shared.first_token = Clock::now();
      if (metrics_ != nullptr) {
        metrics_->time_to_first_token->Observe(Ms(ctx.received, *shared.first_token) / 1e3);
      }
    }
    (*shared.sink)(b, d);
  };
  const bool batch_retries = shared.batch.input_ids.size() > 1;
  absl::StatusOr<GenerationOutcome> outcome = RetryOnOverload(
      batch_retries, cc, &streamed, [&] { return decoder_->Generate(call, cc, on_delta); });
  if (!outcome.ok()) {
    conv.status = WithStage(outcome.status(), "decoder");
    // The decoder refuses image embeddings of another model revision: during a rolling update
    // the two stages can be on different revisions for a while. That is the service's state,
    // not the request's fault: retryable (UNAVAILABLE, HTTP 503 with Retry-After).
    // (Recognised by the decoder's message naming the revision this call sent.)
    if (outcome.status().code() == absl::StatusCode::kFailedPrecondition &&
        !call.vision_model_revision.empty() && !streamed &&
        absl::StrContains(outcome.status().message(),
                          absl::StrCat("'", call.vision_model_revision.substr(0, 80), "'"))) {
      conv.status = WithRetryAfter(
          absl::UnavailableError(absl::StrCat(
              conv.status.message(),
              " (the stages serve different model revisions, as during a rolling update; retry)")),
          1000);
    }
    return;
  }
  conv.choice.finish_reason = outcome->finish_reason;
  conv.choice.usage.prompt_tokens = outcome->prompt_tokens;
  conv.choice.usage.completion_tokens = outcome->completion_tokens;
  conv.choice.usage.cached_prompt_tokens = outcome->cached_prompt_tokens;
  conv.prefill_ms = outcome->prefill_ms;
  conv.decode_ms = outcome->decode_ms;
  conv.choice.model_revision = outcome->model_revision;
  NoteDecoderRevision(outcome->model_revision);
}

std::string ChatPipeline::VisionRevision() const {
  std::lock_guard<std::mutex> lock(revision_mu_);
  return revisions_.vision;
}

ServedRevisions ChatPipeline::LatestRevisions() const {
  std::lock_guard<std::mutex> lock(revision_mu_);
  return revisions_;
}

void ChatPipeline::NoteVisionRevision(const std::string& revision) const {
  std::lock_guard<std::mutex> lock(revision_mu_);
  revisions_.vision = revision;
}

void ChatPipeline::NoteDecoderRevision(const std::string& revision) const {
  if (revision.empty()) return;
  std::lock_guard<std::mutex> lock(revision_mu_);
  revisions_.decoder = revision;
}

ChatResult ChatPipeline::Assemble(const ChatContext& ctx, Shared& shared) const {
  ChatResult result;
  result.request_id = ctx.call.request_id;
  ChatTimings& t = result.timings;
  t.queue_ms = Ms(ctx.received, shared.started);
  t.preprocess_ms = shared.preprocess_ms;
  t.tiles = shared.batch.num_real_tiles();
  for (Conversation& c : shared.conversations) {
    c.choice.status = c.status;
    t.vision_ms = std::max(t.vision_ms, c.vision_ms);
    t.prefill_ms = std::max(t.prefill_ms, c.prefill_ms);
    t.decode_ms = std::max(t.decode_ms, c.decode_ms);
    t.embedding_bytes += c.embedding_bytes;
    t.cached_tiles += c.cached_tiles;
    if (result.model_revision.empty()) result.model_revision = c.choice.model_revision;
    result.choices.push_back(std::move(c.choice));
  }
  for (const MediaInfo& m : shared.batch.media) {
    if (m.conversation >= static_cast<int>(result.choices.size())) continue;
    ChatUsage& u = result.choices[m.conversation].usage;
    (m.kind == MediaInfo::Kind::kVideo ? u.video_frames : u.image_tiles) += m.num_tiles;
  }
  const auto now = Clock::now();
  if (shared.first_token) t.time_to_first_token_ms = Ms(ctx.received, *shared.first_token);
  t.total_ms = Ms(ctx.received, now);
  return result;
}

void ChatPipeline::Record(const ChatRequest& request, const ChatContext& ctx, const Shared& shared,
                          const absl::Status& status, const ChatResult* result) const {
  const ChatTimings& t = result->timings;
  if (metrics_ != nullptr) {
    metrics_->e2e_request_latency->Observe(t.total_ms / 1e3);
    metrics_->embedding_bytes_received->Increment(static_cast<double>(t.embedding_bytes));
    if (status.ok()) {
      for (const ChatChoice& c : result->choices) {
        if (c.status.ok()) {
          metrics_->RecordSuccess(std::string(FinishReasonName(c.finish_reason)));
        } else {
          metrics_->RecordFailure(c.status.code());
        }
      }
    } else {
      metrics_->RecordFailure(status.code());
    }
    if (media_cache_ != nullptr) {
      metrics_->media_cache_bytes->Set(static_cast<double>(media_cache_->stats().bytes));
    }
  }
  if (!options_.log_requests) return;
  // Built with a JSON library: client-controlled text cannot forge fields or records, and is
  // bounded in length.
  nlohmann::ordered_json line = {
      {"stage", "preprocess"},
      {"transport", ctx.transport},
      {"request_id", Truncated(ctx.call.request_id, 128)},
      {"tenant", Truncated(request.prepare.tenant, 64)},
      {"conversations", request.prepare.conversations.size()},
      {"tiles", t.tiles},
      {"cached_tiles", t.cached_tiles},
      {"queue_ms", t.queue_ms},
      {"preprocess_ms", t.preprocess_ms},
      {"vision_ms", t.vision_ms},
      {"prefill_ms", t.prefill_ms},
      {"decode_ms", t.decode_ms},
      {"ttft_ms", t.time_to_first_token_ms},
      {"total_ms", t.total_ms},
      {"embedding_bytes", t.embedding_bytes},
      {"status", absl::StatusCodeToString(status.code())},
  };
  if (!status.ok()) line["error"] = Truncated(status.message(), 512);
  int failed = 0;
  for (const ChatChoice& c : result->choices) failed += !c.status.ok();
  if (status.ok() && failed > 0) line["failed_conversations"] = failed;
  const std::string text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  std::fprintf(stderr, "%s\n", text.c_str());
}

}  // namespace smolserve::preprocess
