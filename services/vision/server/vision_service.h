// The vision stage's gRPC adapter: proto <-> tensors, a bounded queue in front of one
// model worker, deadlines and cancellation checked before the model runs.
#ifndef SMOLSERVE_SERVICES_VISION_SERVER_VISION_SERVICE_H_
#define SMOLSERVE_SERVICES_VISION_SERVER_VISION_SERVICE_H_

#include <atomic>
#include <memory>

#include "common/concurrency/bounded_executor.h"
#include "common/metrics/stage_metrics.h"
#include "proto/smolserve/v1/vision.grpc.pb.h"
#include "services/vision/core/vision_model.h"

namespace smolserve::vision {

struct VisionServiceOptions {
  int max_queue = 16;                  // requests waiting beyond the one running
  int64_t max_tiles_per_request = 1024;
  int threads = 2;                     // LibTorch intra-op threads of the worker
};

class VisionService final : public v1::Vision::CallbackService {
 public:
  // `metrics` must outlive the service.
  VisionService(const VisionServiceOptions& options, metrics::StageMetrics* metrics);
  ~VisionService() override;

  // Makes the service answer (before this, calls get UNAVAILABLE).
  void SetModel(std::unique_ptr<VisionModel> model);
  // Stops taking work and waits for the queue to drain.
  void Shutdown();

  ::grpc::ServerUnaryReactor* Encode(::grpc::CallbackServerContext* context,
                                     const v1::EncodeRequest* request,
                                     v1::EncodeResponse* response) override;

 private:
  VisionServiceOptions options_;
  metrics::StageMetrics* metrics_;
  std::unique_ptr<VisionModel> model_;
  std::atomic<bool> ready_{false};
  BoundedExecutor executor_;
};

}  // namespace smolserve::vision

#endif  // SMOLSERVE_SERVICES_VISION_SERVER_VISION_SERVICE_H_
