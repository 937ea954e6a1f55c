// The decoder stage's gRPC adapter: Generate streams tokens as they are produced. Requests
// wait in a bounded queue for the generation worker; a client that cancels or disconnects
// stops its generation at the next token.
#ifndef SMOLSERVE_SERVICES_DECODER_SERVER_DECODER_SERVICE_H_
#define SMOLSERVE_SERVICES_DECODER_SERVER_DECODER_SERVICE_H_

#include <atomic>
#include <memory>

#include "common/concurrency/bounded_executor.h"
#include "common/metrics/stage_metrics.h"
#include "common/model/config.h"
#include "proto/smolserve/v1/decoder.grpc.pb.h"
#include "services/decoder/core/generator.h"
#include "services/decoder/core/text_model.h"
#include "services/preprocess/core/tokenizer/tokenizer.h"

namespace smolserve::decoder {

struct DecoderServiceOptions {
  int max_queue = 16;                    // requests waiting beyond the running one
  int threads = 2;                       // LibTorch intra-op threads of the worker
  int64_t default_max_new_tokens = 256;  // when neither request nor generation_config says
  int64_t max_new_tokens_limit = 4096;
  int64_t max_prompt_tokens = 8192;
};

struct DecoderModel {
  std::unique_ptr<TextModel> model;
  std::unique_ptr<preprocess::Tokenizer> tokenizer;
  model::GenerationConfig generation_config;
};

// Builds a core GenerateRequest from the wire parameters (validation included).
absl::Status FillGenerateRequest(const v1::GenerationParams& params,
                                 const model::GenerationConfig& defaults,
                                 const DecoderServiceOptions& options, GenerateRequest* out);

class DecoderService final : public v1::Decoder::CallbackService {
 public:
  // `metrics` must outlive the service.
  DecoderService(const DecoderServiceOptions& options, metrics::StageMetrics* metrics);
  ~DecoderService() override;

  void SetModel(std::unique_ptr<DecoderModel> model);
  void Shutdown();
  int queued() const { return executor_.queued(); }
  int running() const { return executor_.running(); }

  ::grpc::ServerWriteReactor<v1::GenerateResponse>* Generate(
      ::grpc::CallbackServerContext* context, const v1::GenerateRequest* request) override;

 private:
  DecoderServiceOptions options_;
  metrics::StageMetrics* metrics_;
  std::unique_ptr<DecoderModel> model_;
  std::atomic<bool> ready_{false};
  BoundedExecutor executor_;
};

}  // namespace smolserve::decoder

#endif  // SMOLSERVE_SERVICES_DECODER_SERVER_DECODER_SERVICE_H_
