// The front's gRPC adapter (served by the preprocess stage): Front.Chat runs the chat pipeline
// (core/chat_pipeline.h) on the front's bounded pool of workers and streams the answer back;
// Front.Prepare is preprocessing only. The caller's "authorization" metadata goes through the
// same Admission as the HTTP API; the call's deadline (or the default one) and its cancellation
// reach every downstream call.
#ifndef SMOLSERVE_SERVICES_PREPROCESS_SERVER_FRONT_SERVICE_H_
#define SMOLSERVE_SERVICES_PREPROCESS_SERVER_FRONT_SERVICE_H_

#include <atomic>
#include <memory>

#include "absl/time/time.h"
#include "common/concurrency/bounded_executor.h"
#include "common/metrics/stage_metrics.h"
#include "proto/smolserve/v1/front.grpc.pb.h"
#include "services/preprocess/core/admission.h"
#include "services/preprocess/core/chat_pipeline.h"

namespace smolserve::preprocess {

struct FrontServiceOptions {
  // Applied to calls without a deadline (and caps longer ones), so that no request waits on
  // a hung downstream stage forever.
  absl::Duration default_deadline = absl::Seconds(600);
};

// Requests arrive as raw bytes (common/grpc/raw_proto.h): one that does not parse is
// INVALID_ARGUMENT with a message.
class FrontService final
    : public v1::Front::WithRawCallbackMethod_Chat<
          v1::Front::WithRawCallbackMethod_Prepare<v1::Front::CallbackService>> {
 public:
  // Everything passed must outlive the service. `executor` runs the requests (shared with the
  // HTTP API); a full executor refuses with RESOURCE_EXHAUSTED and a retry hint.
  FrontService(const FrontServiceOptions& options, const ChatPipeline* pipeline,
               Admission* admission, BoundedExecutor* executor, metrics::StageMetrics* metrics);

  ::grpc::ServerWriteReactor<::grpc::ByteBuffer>* Chat(::grpc::CallbackServerContext* context,
                                                       const ::grpc::ByteBuffer* raw) override;
  ::grpc::ServerUnaryReactor* Prepare(::grpc::CallbackServerContext* context,
                                      const ::grpc::ByteBuffer* raw,
                                      ::grpc::ByteBuffer* response) override;

 private:
  // Admission and conversion; the failure to answer with when the request cannot run.
  absl::StatusOr<std::pair<Admission::Ticket, ChatRequest>> Accept(
      ::grpc::CallbackServerContext* context, const v1::ChatRequest& request);

  FrontServiceOptions options_;
  const ChatPipeline* pipeline_;
  Admission* admission_;
  BoundedExecutor* executor_;
  metrics::StageMetrics* metrics_;
  std::atomic<uint64_t> next_id_{1};
};

// The request's deadline: the client's, capped at now + `default_deadline`.
absl::Time EffectiveDeadline(std::chrono::system_clock::time_point client_deadline,
                             absl::Duration default_deadline);

}  // namespace smolserve::preprocess

#endif  // SMOLSERVE_SERVICES_PREPROCESS_SERVER_FRONT_SERVICE_H_
