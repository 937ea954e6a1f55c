#include "services/preprocess/server/front_service.h"

#include <chrono>
#include <cstdio>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include <ATen/ATen.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/grpc/server_stream.h"
#include "common/grpc/status_util.h"
#include "common/grpc/tensor_proto.h"
#include "services/preprocess/server/chat_convert.h"

namespace smolserve::preprocess {
namespace {

using Clock = std::chrono::steady_clock;

double Ms(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

absl::Status WithStage(const absl::Status& s, absl::string_view stage) {
  if (s.ok()) return s;
  for (const char* known : {"preprocess:", "vision:", "decoder:"}) {
    if (absl::StartsWith(s.message(), known)) return s;
  }
  return absl::Status(s.code(), absl::StrCat(stage, ": ", s.message()));
}

// A downstream failure as the client should see it: the stage is named, and a stage that
// cannot be reached is UNAVAILABLE.
absl::Status Downstream(const ::grpc::Status& s, absl::string_view stage) {
  return WithStage(grpc_util::FromGrpcStatus(s), stage);
}

struct ConversationResult {
  absl::Status status;
  v1::Choice choice;
  double vision_ms = 0, prefill_ms = 0, decode_ms = 0;
  uint64_t embedding_bytes = 0;
  uint32_t cached_tiles = 0;  // the front's media cache + the vision stage's own cache
};

// The image_hidden_states of one conversation for the decoder, in prompt order: the rows of
// items found in the media cache (`hits`, by media index) and the vision stage's answer for
// the others (`encoded`: rows of the uncached items, in order, or null when there are none).
// Stores the fresh items' rows in `cache` when given.
absl::Status AssembleEmbeddings(const PreparedBatch& batch, const std::vector<int>& items,
                                const std::vector<std::shared_ptr<const CachedMedia>>& hits,
                                v1::Tensor* encoded, MediaCache* cache, v1::Tensor* out) {
  int64_t fresh_tiles = 0;
  bool any_cached = false;
  for (int i : items) {
    if (batch.media[i].from_cache) {
      any_cached = true;
    } else {
      fresh_tiles += batch.media[i].num_tiles;
    }
  }
  at::Tensor fresh;
  if (fresh_tiles > 0) {
    if (encoded == nullptr) return absl::InternalError("no embeddings for the encoded media");
    auto t = grpc_util::TensorFromProto(*encoded, "vision: image_hidden_states");
    if (!t.ok()) return t.status();
    fresh = *std::move(t);
    if (fresh.dim() != 3 || fresh.size(0) != fresh_tiles) {
      return absl::InternalError(absl::StrCat("vision: returned ", fresh.dim() > 0 ? fresh.size(0) : 0,
                                              " embeddings for ", fresh_tiles, " tiles"));
    }
  }
  std::vector<at::Tensor> parts;
  int64_t offset = 0;
  try {
    for (int i : items) {
      const MediaInfo& m = batch.media[i];
      if (m.from_cache) {
        parts.push_back(hits[i]->embeddings);
        continue;
      }
      at::Tensor rows = fresh.narrow(0, offset, m.num_tiles);
      offset += m.num_tiles;
      if (cache != nullptr && !m.keys.empty()) {
        auto entry = std::make_shared<CachedMedia>();
        entry->info = m;
        entry->embeddings = rows.clone();
        cache->Store(m.keys, std::move(entry));
      }
      parts.push_back(rows);
    }
    if (!any_cached) {  // all fresh: pass the vision stage's tensor on as it came
      *out = std::move(*encoded);
      return absl::OkStatus();
    }
    // One dtype for the decoder: the vision stage's current one.
    const at::ScalarType dtype = fresh.defined() ? fresh.scalar_type() : parts[0].scalar_type();
    for (auto& p : parts) {
      if (p.scalar_type() != dtype) p = p.to(dtype);
      if (p.dim() != 3 || p.size(1) != parts[0].size(1) || p.size(2) != parts[0].size(2)) {
        return absl::FailedPreconditionError(
            "cached image embeddings do not match the vision stage's shape");
      }
    }
    return grpc_util::TensorToProto(at::cat(parts, 0), out);
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("assembling image embeddings: ", e.what_without_backtrace()));
  }
}

}  // namespace

FrontService::FrontService(const FrontServiceOptions& options,
                           std::unique_ptr<Preprocessor> preprocessor,
                           std::shared_ptr<::grpc::Channel> vision,
                           std::shared_ptr<::grpc::Channel> decoder,
                           metrics::StageMetrics* metrics)
    : options_(options),
      metrics_(metrics),
      preprocessor_(std::move(preprocessor)),
      vision_(v1::Vision::NewStub(vision)),
      decoder_(v1::Decoder::NewStub(decoder)),
      executor_(options.workers, options.max_queue) {
  if (options.media_cache_bytes > 0) {
    media_cache_ = std::make_unique<MediaCache>(options.media_cache_bytes);
  }
}

FrontService::~FrontService() { Shutdown(); }

void FrontService::Shutdown() { executor_.Shutdown(); }

::grpc::ServerWriteReactor<v1::ChatResponse>* FrontService::Chat(
    ::grpc::CallbackServerContext* context, const v1::ChatRequest* request) {
  auto [reactor, stream] = grpc_util::ServerStream<v1::ChatResponse>::Create();
  auto parsed = ToPrepareRequest(*request);
  if (!parsed.ok()) {
    stream->Finish(grpc_util::ToGrpcStatus(WithStage(parsed.status(), "preprocess")));
    return reactor;
  }
  const std::string request_id = request->request_id().empty()
                                     ? absl::StrCat("req-", next_id_.fetch_add(1))
                                     : request->request_id();
  const auto received = Clock::now();
  metrics_->num_requests_waiting->Increment();
  metrics_->queue_depth->Increment();
  auto task = [this, context, request, stream, prepare = *std::move(parsed), request_id,
               received]() {
    metrics_->num_requests_waiting->Decrement();
    metrics_->queue_depth->Decrement();
    metrics_->num_requests_running->Increment();
    metrics_->request_queue_time->Observe(Ms(received, Clock::now()) / 1e3);
    std::atomic<bool> first_token_seen{false};
    Clock::time_point first_token;
    absl::Status status;
    v1::StageTimings timings;
    std::vector<ConversationResult> results;
    int tiles = 0;
    const auto started = Clock::now();
    // Media cache hits, by media index (what the preprocessor took from the cache).
    std::vector<std::shared_ptr<const CachedMedia>> hits;
    MediaLookup lookup;
    if (media_cache_ != nullptr) {
      lookup = [this, &hits](int index, const MediaKeys& keys) -> std::optional<MediaInfo> {
        if (static_cast<int>(hits.size()) <= index) hits.resize(index + 1);
        hits[index] = media_cache_->Find(keys);
        if (hits[index] == nullptr) return std::nullopt;
        return hits[index]->info;
      };
    }
    auto batch = preprocessor_->Prepare(prepare, options_.media, lookup);
    const auto prepared = Clock::now();
    timings.set_preprocess_ms(Ms(started, prepared));
    if (!batch.ok()) {
      status = WithStage(batch.status(), "preprocess");
    } else {
      tiles = batch->num_real_tiles();
      timings.set_tiles(static_cast<uint32_t>(tiles));
      hits.resize(batch->media.size());
      int frames = 0;
      for (const auto& m : batch->media) {
        if (m.kind == MediaInfo::Kind::kVideo) frames += m.num_tiles;
        if (m.from_cache) {
          metrics_->media_cache_hits->Increment();
          continue;
        }
        if (media_cache_ != nullptr) metrics_->media_cache_misses->Increment();
        if (m.kind == MediaInfo::Kind::kImage) {
          metrics_->media_decode_image->Observe(m.decode_ms / 1e3);
        } else {
          metrics_->media_decode_video->Observe(m.decode_ms / 1e3);
        }
      }
      if (tiles - frames > 0) metrics_->tiles_per_request->Observe(tiles - frames);
      if (frames > 0) metrics_->frames_per_request->Observe(frames);
      const int B = static_cast<int>(batch->input_ids.size());
      results.resize(B);
      std::mutex first_mu;
      auto run_one = [&](int b) {
        ConversationResult& r = results[b];
        // This conversation's media, in prompt order; vision gets the arrays of those not
        // found in the media cache (packed at the start of its pixel row).
        std::vector<int> items;
        int n = 0, n_encode = 0;
        for (size_t i = 0; i < batch->media.size(); ++i) {
          const MediaInfo& m = batch->media[i];
          if (m.conversation != b) continue;
          items.push_back(static_cast<int>(i));
          n += m.num_tiles;
          if (!m.from_cache) n_encode += m.num_tiles;
        }
        r.cached_tiles = static_cast<uint32_t>(n - n_encode);
        v1::GenerateRequest gen;
        v1::EncodeResponse resp;
        if (n_encode > 0) {
          v1::EncodeRequest enc;
          at::Tensor pv = batch->pixel_values[b].narrow(0, 0, n_encode);
          at::Tensor pm = batch->pixel_attention_mask[b].narrow(0, 0, n_encode);
          if (auto s = grpc_util::TensorToProto(pv, enc.mutable_pixel_values()); !s.ok()) {
            r.status = s;
            return;
          }
          if (auto s = grpc_util::TensorToProto(pm, enc.mutable_pixel_attention_mask()); !s.ok()) {
            r.status = s;
            return;
          }
          auto ctx = ::grpc::ClientContext::FromCallbackServerContext(*context);
          const auto v0 = Clock::now();
          ::grpc::Status gs = vision_->Encode(ctx.get(), enc, &resp);
          r.vision_ms = Ms(v0, Clock::now());
          if (!gs.ok()) {
            r.status = Downstream(gs, "vision");
            return;
          }
          r.embedding_bytes = resp.image_hidden_states().data().size();
          r.cached_tiles += resp.cached_tiles();
        }
        if (n > 0) {
          if (n_encode == n && media_cache_ == nullptr) {
            *gen.mutable_image_hidden_states() = std::move(*resp.mutable_image_hidden_states());
          } else if (auto s = AssembleEmbeddings(*batch, items, hits,
                                                 n_encode > 0 ? resp.mutable_image_hidden_states() : nullptr,
                                                 media_cache_.get(), gen.mutable_image_hidden_states());
                     !s.ok()) {
            r.status = WithStage(s, "preprocess");
            return;
          }
        }
        // Decoder: the unpadded prompt.
        const auto& ids = batch->input_ids[b];
        const auto& mask = batch->attention_mask[b];
        for (size_t i = 0; i < ids.size(); ++i)
          if (mask[i]) gen.add_input_ids(ids[i]);
        *gen.mutable_generation() = request->generation();
        gen.set_request_id(B > 1 ? absl::StrCat(request_id, "/", b) : request_id);
        auto ctx = ::grpc::ClientContext::FromCallbackServerContext(*context);
        auto reader = decoder_->Generate(ctx.get(), gen);
        v1::GenerateResponse msg;
        r.choice.set_index(b);
        while (reader->Read(&msg)) {
          if (msg.token_ids_size() > 0 || !msg.text().empty()) {
            {
              std::lock_guard<std::mutex> lock(first_mu);
              if (!first_token_seen.exchange(true)) {
                first_token = Clock::now();
                metrics_->time_to_first_token->Observe(Ms(received, first_token) / 1e3);
              }
            }
            v1::ChatResponse delta;
            delta.mutable_delta()->set_index(b);
            delta.mutable_delta()->set_text(msg.text());
            for (int32_t t : msg.token_ids()) {
              delta.mutable_delta()->add_token_ids(t);
              r.choice.add_token_ids(t);
            }
            r.choice.mutable_text()->append(msg.text());
            stream->Push(std::move(delta));
          }
          if (msg.finish_reason() != v1::FINISH_REASON_UNSPECIFIED) {
            r.choice.set_finish_reason(msg.finish_reason());
            *r.choice.mutable_usage() = msg.usage();
            r.choice.mutable_usage()->set_image_tiles(n);
            r.prefill_ms = msg.prefill_ms();
            r.decode_ms = msg.decode_ms();
          }
        }
        ::grpc::Status gs = reader->Finish();
        if (!gs.ok()) r.status = Downstream(gs, "decoder");
      };
      if (B == 1) {
        run_one(0);
      } else {
        std::vector<std::thread> threads;
        for (int b = 0; b < B; ++b) threads.emplace_back(run_one, b);
        for (auto& t : threads) t.join();
      }
      for (const auto& r : results) {
        if (!r.status.ok() && status.ok()) status = r.status;
        timings.set_vision_ms(std::max(timings.vision_ms(), r.vision_ms));
        timings.set_prefill_ms(std::max(timings.prefill_ms(), r.prefill_ms));
        timings.set_decode_ms(std::max(timings.decode_ms(), r.decode_ms));
        timings.set_embedding_bytes(timings.embedding_bytes() + r.embedding_bytes);
        timings.set_cached_tiles(timings.cached_tiles() + r.cached_tiles);
      }
      if (media_cache_ != nullptr) {
        metrics_->media_cache_bytes->Set(static_cast<double>(media_cache_->stats().bytes));
      }
      for (const auto& m : batch->media) {
        if (m.kind == MediaInfo::Kind::kVideo) {
          auto& u = *results[m.conversation].choice.mutable_usage();
          u.set_video_frames(u.video_frames() + m.num_tiles);
        }
      }
    }
    const auto done = Clock::now();
    metrics_->num_requests_running->Decrement();
    metrics_->e2e_request_latency->Observe(Ms(received, done) / 1e3);
    metrics_->embedding_bytes_received->Increment(static_cast<double>(timings.embedding_bytes()));
    if (first_token_seen) timings.set_time_to_first_token_ms(Ms(received, first_token));
    timings.set_total_ms(Ms(received, done));
    if (status.ok() && stream->cancelled()) status = absl::CancelledError("cancelled by the client");
    std::fprintf(stderr,
                 "{\"stage\":\"preprocess\",\"rpc\":\"Chat\",\"request_id\":\"%s\","
                 "\"conversations\":%d,\"tiles\":%d,\"cached_tiles\":%u,\"queue_ms\":%.1f,"
                 "\"preprocess_ms\":%.1f,"
                 "\"vision_ms\":%.1f,\"prefill_ms\":%.1f,\"decode_ms\":%.1f,\"ttft_ms\":%.1f,"
                 "\"total_ms\":%.1f,\"embedding_bytes\":%llu,\"status\":\"%s\"}\n",
                 request_id.c_str(), request->conversations_size(), tiles, timings.cached_tiles(),
                 Ms(received, started),
                 timings.preprocess_ms(), timings.vision_ms(), timings.prefill_ms(),
                 timings.decode_ms(), timings.time_to_first_token_ms(), timings.total_ms(),
                 static_cast<unsigned long long>(timings.embedding_bytes()),
                 absl::StatusCodeToString(status.code()).c_str());
    if (status.ok()) {
      for (const auto& r : results) {
        switch (r.choice.finish_reason()) {
          case v1::FINISH_REASON_STOP: metrics_->RecordSuccess("stop"); break;
          case v1::FINISH_REASON_LENGTH: metrics_->RecordSuccess("length"); break;
          default: metrics_->RecordSuccess("ok"); break;
        }
      }
    } else {
      metrics_->RecordFailure(status.code());
    }
    if (status.ok()) {
      v1::ChatResponse last;
      auto* result = last.mutable_result();
      for (auto& r : results) *result->add_choices() = std::move(r.choice);
      *result->mutable_timings() = timings;
      result->set_request_id(request_id);
      stream->Push(std::move(last));
    }
    stream->Finish(grpc_util::ToGrpcStatus(status));
  };
  if (!executor_.TrySubmit(std::move(task))) {
    metrics_->num_requests_waiting->Decrement();
    metrics_->queue_depth->Decrement();
    metrics_->RecordFailure(absl::StatusCode::kResourceExhausted);
    stream->Finish(::grpc::Status(::grpc::StatusCode::RESOURCE_EXHAUSTED,
                                  absl::StrCat("preprocess: queue full (", executor_.queued(),
                                               " waiting)")));
  }
  return reactor;
}

::grpc::ServerUnaryReactor* FrontService::Prepare(::grpc::CallbackServerContext* context,
                                                  const v1::ChatRequest* request,
                                                  v1::PrepareResponse* response) {
  auto* reactor = context->DefaultReactor();
  auto parsed = ToPrepareRequest(*request);
  if (!parsed.ok()) {
    reactor->Finish(grpc_util::ToGrpcStatus(WithStage(parsed.status(), "preprocess")));
    return reactor;
  }
  auto task = [this, response, reactor, prepare = *std::move(parsed)]() {
    const auto start = Clock::now();
    auto batch = preprocessor_->Prepare(prepare, options_.media);
    absl::Status status = batch.status();
    if (status.ok()) {
      for (size_t b = 0; b < batch->input_ids.size(); ++b) {
        response->add_prompt(batch->prompt_expanded[b]);
        std::vector<int32_t> ids;
        for (size_t i = 0; i < batch->input_ids[b].size(); ++i)
          if (batch->attention_mask[b][i]) ids.push_back(batch->input_ids[b][i]);
        at::Tensor t = at::from_blob(ids.data(), {static_cast<int64_t>(ids.size())}, at::kInt);
        status.Update(grpc_util::TensorToProto(t, response->add_input_ids()));
      }
      if (status.ok() && batch->pixel_values.defined()) {
        status.Update(grpc_util::TensorToProto(batch->pixel_values, response->mutable_pixel_values()));
        status.Update(grpc_util::TensorToProto(batch->pixel_attention_mask,
                                               response->mutable_pixel_attention_mask()));
      }
    }
    response->set_preprocess_ms(Ms(start, Clock::now()));
    reactor->Finish(grpc_util::ToGrpcStatus(WithStage(status, "preprocess")));
  };
  if (!executor_.TrySubmit(std::move(task))) {
    reactor->Finish(::grpc::Status(::grpc::StatusCode::RESOURCE_EXHAUSTED, "preprocess: queue full"));
  }
  return reactor;
}

}  // namespace smolserve::preprocess
