// The three stages inside this process for `smolvlm bench --in-process`: the same service
// classes (VisionService, DecoderService, FrontService), gRPC server bootstrap
// (grpc_util::ServerRunner) and model loading as the stage binaries' main.cc, each on its
// own 127.0.0.1 ephemeral port, the front talking to the other two over real gRPC
// channels. Metrics are collected into private registries (no /metrics endpoint).
#ifndef SMOLSERVE_TOOLS_SMOLVLM_BENCH_STAGES_H_
#define SMOLSERVE_TOOLS_SMOLVLM_BENCH_STAGES_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "services/preprocess/core/limits.h"

namespace smolserve::cli {

struct InProcessStagesOptions {
  std::string model;            // folder or org/name[@revision]
  std::string dtype = "auto";   // auto, f32 or bf16 (common/runtime/dtype.h)
  std::string weights;          // the decoder's --weights: "" (the dtype), f32, bf16 or int8
  int threads = 0;              // LibTorch threads of each stage's worker; 0: the CPU quota
  int max_queue = 16;           // vision/decoder queue (the front's is 32 or more)
  int front_workers = 4;        // requests the front processes at once
  bool prefix_cache = true;     // the decoder's (--prefix_cache)
  int64_t media_cache_bytes = -1;  // the front's media cache (-1: its default)
  preprocess::MediaLimits limits;
};

class InProcessStages {
 public:
  // Starts vision and decoder (models loaded), then the front; returns once all serve.
  static absl::StatusOr<std::unique_ptr<InProcessStages>> Start(const InProcessStagesOptions& options);
  ~InProcessStages();  // stops the front first, then vision and decoder

  const std::string& front_address() const;
  int threads() const;
  double load_ms() const;

  struct Impl;  // defined in the .cc (keeps LibTorch and gRPC out of this header)

 private:
  explicit InProcessStages(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace smolserve::cli

#endif  // SMOLSERVE_TOOLS_SMOLVLM_BENCH_STAGES_H_
