// The public front (served by the preprocess stage): Chat runs Prepare -> Vision.Encode ->
// Decoder.Generate and streams the tokens back; Prepare is preprocessing only. Work runs on
// a bounded pool of workers, never on gRPC threads; deadlines and cancellation propagate to
// the downstream calls. Chat keeps a media cache: a media item seen before (same bytes, or
// the same client id, with the same processor options) is neither decoded nor sent to the
// vision stage again; its cached embeddings go to the decoder in their place.
#ifndef SMOLSERVE_SERVICES_PREPROCESS_SERVER_FRONT_SERVICE_H_
#define SMOLSERVE_SERVICES_PREPROCESS_SERVER_FRONT_SERVICE_H_

#include <atomic>
#include <memory>

#include "common/concurrency/bounded_executor.h"
#include "common/metrics/stage_metrics.h"
#include "proto/smolserve/v1/decoder.grpc.pb.h"
#include "proto/smolserve/v1/front.grpc.pb.h"
#include "proto/smolserve/v1/vision.grpc.pb.h"
#include "services/preprocess/core/media_cache.h"
#include "services/preprocess/core/preprocessor.h"

namespace smolserve::preprocess {

struct FrontServiceOptions {
  int workers = 4;       // requests processed at once
  int max_queue = 32;    // requests waiting beyond those; more get RESOURCE_EXHAUSTED
  MediaAccess media;     // server-side paths: allowed only under media.allowed_root
  // Bound of the media cache (per media item: its preprocessing metadata and embeddings,
  // so identical media are neither decoded nor encoded again); 0 disables it.
  int64_t media_cache_bytes = 256ll << 20;
};

class FrontService final : public v1::Front::CallbackService {
 public:
  // `metrics` must outlive the service.
  FrontService(const FrontServiceOptions& options, std::unique_ptr<Preprocessor> preprocessor,
               std::shared_ptr<::grpc::Channel> vision, std::shared_ptr<::grpc::Channel> decoder,
               metrics::StageMetrics* metrics);
  ~FrontService() override;
  void Shutdown();

  ::grpc::ServerWriteReactor<v1::ChatResponse>* Chat(::grpc::CallbackServerContext* context,
                                                     const v1::ChatRequest* request) override;
  ::grpc::ServerUnaryReactor* Prepare(::grpc::CallbackServerContext* context,
                                      const v1::ChatRequest* request,
                                      v1::PrepareResponse* response) override;

 private:
  FrontServiceOptions options_;
  metrics::StageMetrics* metrics_;
  std::unique_ptr<Preprocessor> preprocessor_;
  std::unique_ptr<MediaCache> media_cache_;  // null when disabled
  std::unique_ptr<v1::Vision::Stub> vision_;
  std::unique_ptr<v1::Decoder::Stub> decoder_;
  std::atomic<uint64_t> next_id_{1};
  BoundedExecutor executor_;
};

}  // namespace smolserve::preprocess

#endif  // SMOLSERVE_SERVICES_PREPROCESS_SERVER_FRONT_SERVICE_H_
