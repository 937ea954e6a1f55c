// The decoder stage's gRPC adapter: Generate streams tokens as they are produced. The serving
// behaviour (parameters, limits, detokenization, stop strings, cancellation) is the core's
// (core/generation_stream.h); this file maps it to the wire and records the stage's metrics.
// Requests wait in the engine's bounded FIFO queue for a running slot and KV budget, then
// decode together with the others; a client that cancels or disconnects, or whose deadline
// passes, leaves the batch at the next iteration and frees its KV cache.
#ifndef SMOLSERVE_SERVICES_DECODER_SERVER_DECODER_SERVICE_H_
#define SMOLSERVE_SERVICES_DECODER_SERVER_DECODER_SERVICE_H_

#include <atomic>
#include <memory>
#include <string>

#include "common/metrics/stage_metrics.h"
#include "proto/smolserve/v1/decoder.grpc.pb.h"
#include "services/decoder/core/batch_engine.h"
#include "services/decoder/core/decoder_model.h"
#include "services/decoder/core/generation_stream.h"

namespace smolserve::decoder {

struct DecoderServiceOptions {
  int max_queue = 64;                    // requests waiting for a running slot / KV budget
  int threads = 2;                       // LibTorch intra-op threads of the engine
  int max_running = 16;                  // sequences decoded together
  int64_t prefill_chunk_tokens = 256;    // prompt tokens prefilled between decode steps
  int64_t kv_cache_budget_bytes = int64_t{2} << 30;
  bool prefix_cache = true;              // BatchEngineOptions::prefix_cache
  DecoderLimits limits;                  // max_new_tokens, stop strings, prompt length
};

// Requests arrive as raw bytes (common/grpc/raw_proto.h): one that does not parse is
// INVALID_ARGUMENT with a message.
class DecoderService final
    : public v1::Decoder::WithRawCallbackMethod_Generate<v1::Decoder::CallbackService> {
 public:
  // `metrics` must outlive the service.
  DecoderService(const DecoderServiceOptions& options, metrics::StageMetrics* metrics);
  ~DecoderService() override;

  // Starts the engine on `model`; the service answers from then on. `model_revision`
  // (common/model/model_revision.h; "" unknown) is compared with each request's
  // vision_model_revision: image embeddings of another revision get FAILED_PRECONDITION.
  absl::Status SetModel(std::unique_ptr<DecoderModel> model, const std::string& model_revision);
  // Refuses new requests and lets the queued and running ones finish.
  void Shutdown();
  BatchEngineStats engine_stats() const;

  ::grpc::ServerWriteReactor<::grpc::ByteBuffer>* Generate(
      ::grpc::CallbackServerContext* context, const ::grpc::ByteBuffer* raw) override;

 private:
  DecoderServiceOptions options_;
  std::string model_revision_;  // set before ready_
  metrics::StageMetrics* metrics_;
  std::unique_ptr<DecoderModel> model_;
  std::unique_ptr<BatchEngine> engine_;
  std::atomic<bool> ready_{false};
};

// BatchEngineOptions from the stage's options (also used by in-process stages).
BatchEngineOptions EngineOptions(const DecoderServiceOptions& options);

}  // namespace smolserve::decoder

#endif  // SMOLSERVE_SERVICES_DECODER_SERVER_DECODER_SERVICE_H_
