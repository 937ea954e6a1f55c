// The vision stage's gRPC adapter: proto <-> tensors in front of the EncodeBatcher (dynamic
// cross-request batching and the embedding cache, services/vision/core/encode_batcher.h);
// deadlines and cancellation are checked before a request's tiles are encoded.
#ifndef SMOLSERVE_SERVICES_VISION_SERVER_VISION_SERVICE_H_
#define SMOLSERVE_SERVICES_VISION_SERVER_VISION_SERVICE_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "common/metrics/stage_metrics.h"
#include "proto/smolserve/v1/vision.grpc.pb.h"
#include "services/vision/core/encode_batcher.h"
#include "services/vision/core/vision_model.h"

namespace smolserve::vision {

struct VisionServiceOptions {
  int max_queue = 16;                  // requests waiting for the encoder
  int64_t max_queued_tiles = 1024;     // tiles waiting for the encoder
  int64_t max_tiles_per_request = 1024;
  // Largest tile side accepted, pixels (attention memory grows with (side/patch)^4); 0: the
  // model's own tile size (vision_config.image_size).
  int64_t max_tile_side = 0;
  int threads = 2;                     // LibTorch intra-op threads of the encoder worker
  int64_t max_batch_tiles = 8;         // most tiles in one model call
  double batch_wait_ms = 5;            // wait for more tiles after the oldest request arrived
  int64_t embedding_cache_bytes = int64_t{512} << 20;  // 0: no cache
};

// Request proto -> job tensors, the checks Encode makes before the batcher's (TensorFromProto,
// float32 [N,3,H,W] or [B,N,3,H,W], tile side, tile count): INVALID_ARGUMENT /
// RESOURCE_EXHAUSTED on bad or oversized input. Sets *tiles_out to the number of tiles.
absl::Status ParseEncodeRequest(const v1::EncodeRequest& request, int64_t max_tiles,
                                int64_t max_tile_side, EncodeJob* job, int64_t* tiles_out);

// Requests arrive as raw bytes (common/grpc/raw_proto.h): one that does not parse is
// INVALID_ARGUMENT with a message.
class VisionService final
    : public v1::Vision::WithRawCallbackMethod_Encode<v1::Vision::CallbackService> {
 public:
  // `metrics` must outlive the service.
  VisionService(const VisionServiceOptions& options, metrics::StageMetrics* metrics);
  ~VisionService() override;

  // Makes the service answer (before this, calls get UNAVAILABLE). `model_revision` is part
  // of every embedding cache key.
  absl::Status SetModel(std::unique_ptr<VisionModel> model, const std::string& model_revision);
  // Stops taking work and waits for the queued requests to be answered.
  void Shutdown();

  ::grpc::ServerUnaryReactor* Encode(::grpc::CallbackServerContext* context,
                                     const ::grpc::ByteBuffer* raw,
                                     ::grpc::ByteBuffer* response) override;

 private:
  VisionServiceOptions options_;
  metrics::StageMetrics* metrics_;
  std::unique_ptr<VisionModel> model_;
  std::unique_ptr<EncodeBatcher> batcher_;
  std::atomic<bool> ready_{false};
  int64_t max_tile_side_ = 0;  // set with the model, before ready_
  std::string model_revision_;  // set with the model, before ready_; in every EncodeResponse
  std::mutex shutdown_mu_;
  bool shut_down_ = false;
};

}  // namespace smolserve::vision

#endif  // SMOLSERVE_SERVICES_VISION_SERVER_VISION_SERVICE_H_
