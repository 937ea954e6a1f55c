// The front's chat flow, once, for every transport: validate the request (before any media is
// read), prepare it (media read, decoded and tiled, prompt rendered and tokenized; the media
// cache consulted), encode each conversation's fresh tiles on the vision stage, generate on the
// decoder stage while streaming the answer, and assemble the result. The gRPC Front.Chat, the
// HTTP chat-completions API and the CLI's `smolvlm run` all call Run(); they differ only in
// their StageClients (gRPC or in-process) and in how they encode what Run streams and returns.
//
// Conversations of a batch run concurrently on a bounded pool shared by all requests (the
// calling thread runs one, and any the pool refuses); their deltas reach the sink one at a
// time. Cancellation and the deadline (ChatContext) reach every downstream call. A single
// conversation refused by a stage for load fails at once (the client is told to retry);
// the conversations of a batch, once it runs, retry such refusals (honouring the stage's
// retry hint, within the deadline) so that a batch is not lost half way, and a batch whose
// conversations partly fail still returns the answers of those that finished.
//
// Threads: Run and Validate may be called from any number of threads at once.
#ifndef SMOLSERVE_SERVICES_PREPROCESS_CORE_CHAT_PIPELINE_H_
#define SMOLSERVE_SERVICES_PREPROCESS_CORE_CHAT_PIPELINE_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/concurrency/bounded_executor.h"
#include "common/generation/generation_params.h"
#include "common/generation/generation_result.h"
#include "common/metrics/stage_metrics.h"
#include "services/preprocess/core/media_cache.h"
#include "services/preprocess/core/preprocessor.h"
#include "services/preprocess/core/request.h"
#include "services/preprocess/core/stage_clients.h"

namespace smolserve::preprocess {

struct ChatUsage {
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  int64_t cached_prompt_tokens = 0;  // prompt tokens whose KV came from the decoder's cache
  int image_tiles = 0;
  int video_frames = 0;
};

struct ChatChoice {
  int index = 0;  // conversation
  // Not OK: this conversation of a batch failed (the others' answers are still delivered).
  absl::Status status;
  std::string text;
  std::vector<int32_t> token_ids;
  FinishReason finish_reason = FinishReason::kLength;
  ChatUsage usage;
  std::string model_revision;  // of the decoder that generated it ("" unknown)
};

struct ChatTimings {
  double queue_ms = 0;  // received -> Run started (the transport's queue)
  double preprocess_ms = 0;
  double vision_ms = 0;   // slowest conversation's vision call
  double prefill_ms = 0;  // slowest conversation's prefill
  double decode_ms = 0;
  double time_to_first_token_ms = 0;  // received -> first delta with text or tokens
  double total_ms = 0;
  int64_t embedding_bytes = 0;  // received from the vision stage
  int tiles = 0;                // tiles + frames of the request
  int cached_tiles = 0;         // from the media cache or the vision stage's cache
};

struct ChatResult {
  std::vector<ChatChoice> choices;  // one per conversation, in order
  ChatTimings timings;
  std::string request_id;
  std::string model_revision;  // the first answered conversation's decoder revision ("" unknown)
};

// The model revisions the stages reported in their latest answers ("" none yet).
struct ServedRevisions {
  std::string vision;
  std::string decoder;
};

struct ChatContext {
  CallContext call;  // deadline, cancellation and request id for every downstream call
  std::chrono::steady_clock::time_point received = std::chrono::steady_clock::now();
  std::string transport = "grpc";  // for the log line: "grpc", "http", "cli"
  // Replaces the pipeline's media access for this request (the CLI: the request file's folder).
  const MediaAccess* media = nullptr;
};

// A piece of conversation `index`'s answer. Calls are serialised (never concurrent) and in
// order per conversation; they must not block for long.
using DeltaSink = std::function<void(int index, const TokenDelta& delta)>;

struct ChatPipelineOptions {
  GenerationLimits generation;
  int max_conversations = 16;  // conversations per request
  int max_messages = 256;      // messages per conversation
  int64_t max_text_bytes = 1 << 20;  // text of all messages together, checked before tokenizing
  int max_request_id_bytes = 128;
  MediaAccess media;           // server-side paths and the media URL fetcher
  bool log_requests = true;    // one JSON line per request on stderr
};

class ChatPipeline {
 public:
  // Everything passed must outlive the pipeline. `media_cache`, `conversation_pool` and
  // `metrics` may be null (no cache; conversations one after another; no metrics).
  ChatPipeline(ChatPipelineOptions options, const Preprocessor* preprocessor, VisionClient* vision,
               DecoderClient* decoder, MediaCache* media_cache, BoundedExecutor* conversation_pool,
               metrics::StageMetrics* metrics);

  // What can be refused without reading any media: the number of conversations and messages,
  // the text's size, the generation parameters and the request id. INVALID_ARGUMENT, or
  // RESOURCE_EXHAUSTED for a request over a size limit.
  absl::Status Validate(const ChatRequest& request, const ChatContext& ctx) const;

  // Validate, then the whole flow. Errors carry the stage that failed ("preprocess: image 0
  // (...): ...", "vision: ...", "decoder: ...") and its code; CANCELLED when ctx.call.cancel
  // was raised. A result is returned when at least one conversation finished; the choices of
  // those that failed carry their status.
  absl::StatusOr<ChatResult> Run(const ChatRequest& request, const ChatContext& ctx,
                                 const DeltaSink& sink) const;

  // The model revisions the vision and decoder stages reported in their latest answers
  // (what /v1/models shows; during a rolling update, whichever replica answered last).
  ServedRevisions LatestRevisions() const;

  const Preprocessor& preprocessor() const { return *preprocessor_; }
  const ChatPipelineOptions& options() const { return options_; }
  MediaCache* media_cache() const { return media_cache_; }

 private:
  struct Shared;
  struct Conversation;
  absl::StatusOr<PreparedBatch> Prepare(const ChatRequest& request, const ChatContext& ctx,
                                        Shared& shared) const;
  void RunConversations(const ChatRequest& request, const ChatContext& ctx, Shared& shared) const;
  void RunConversation(int b, const ChatRequest& request, const ChatContext& ctx,
                       Shared& shared) const;
  absl::StatusOr<at::Tensor> ConversationEmbeddings(int b, const ChatContext& ctx, Shared& shared,
                                                    Conversation& conv) const;
  ChatResult Assemble(const ChatContext& ctx, Shared& shared) const;
  void Record(const ChatRequest& request, const ChatContext& ctx, const Shared& shared,
              const absl::Status& status, const ChatResult* result) const;

  ChatPipelineOptions options_;
  const Preprocessor* preprocessor_;
  VisionClient* vision_;
  DecoderClient* decoder_;
  MediaCache* media_cache_;
  // The vision stage's model revision as its last answer reported it.
  std::string VisionRevision() const;
  void NoteVisionRevision(const std::string& revision) const;
  void NoteDecoderRevision(const std::string& revision) const;
  mutable std::mutex revision_mu_;
  mutable ServedRevisions revisions_;  // guarded by revision_mu_
  BoundedExecutor* pool_;
  metrics::StageMetrics* metrics_;
};

}  // namespace smolserve::preprocess

#endif  // SMOLSERVE_SERVICES_PREPROCESS_CORE_CHAT_PIPELINE_H_
