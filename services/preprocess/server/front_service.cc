#include "services/preprocess/server/front_service.h"

#include <chrono>
#include <memory>
#include <utility>

#include <ATen/ATen.h>

#include "absl/strings/str_cat.h"
#include "common/grpc/raw_proto.h"
#include "common/grpc/server_stream.h"
#include "common/grpc/status_util.h"
#include "common/grpc/tensor_proto.h"
#include "common/status/retry_after.h"
#include "services/preprocess/server/chat_convert.h"

namespace smolserve::preprocess {
namespace {

using Clock = std::chrono::steady_clock;

std::string Authorization(const ::grpc::CallbackServerContext& context) {
  const auto& md = context.client_metadata();
  auto it = md.find("authorization");
  if (it == md.end()) return "";
  return std::string(it->second.data(), it->second.size());
}

absl::Status QueueFull(const BoundedExecutor& executor) {
  return WithRetryAfter(absl::ResourceExhaustedError(absl::StrCat(
                            "preprocess: busy (", executor.queued(), " requests waiting)")),
                        1000);
}

}  // namespace

absl::Time EffectiveDeadline(std::chrono::system_clock::time_point client_deadline,
                             absl::Duration default_deadline) {
  const absl::Time cap = absl::Now() + default_deadline;
  if (client_deadline == std::chrono::system_clock::time_point::max()) return cap;
  return std::min(cap, absl::FromChrono(client_deadline));
}

FrontService::FrontService(const FrontServiceOptions& options, const ChatPipeline* pipeline,
                           Admission* admission, BoundedExecutor* executor,
                           metrics::StageMetrics* metrics)
    : options_(options),
      pipeline_(pipeline),
      admission_(admission),
      executor_(executor),
      metrics_(metrics) {}

absl::StatusOr<std::pair<Admission::Ticket, ChatRequest>> FrontService::Accept(
    ::grpc::CallbackServerContext* context, const v1::ChatRequest& request) {
  absl::StatusOr<Admission::Ticket> ticket = admission_->Admit(Authorization(*context));
  if (!ticket.ok()) return ticket.status();
  absl::StatusOr<ChatRequest> chat = ChatRequestFromProto(request);
  if (!chat.ok()) {
    return absl::Status(chat.status().code(), absl::StrCat("preprocess: ", chat.status().message()));
  }
  chat->prepare.tenant = ticket->tenant;
  return std::make_pair(*std::move(ticket), *std::move(chat));
}

::grpc::ServerWriteReactor<::grpc::ByteBuffer>* FrontService::Chat(
    ::grpc::CallbackServerContext* context, const ::grpc::ByteBuffer* raw) {
  auto [reactor, stream] = grpc_util::ServerStream<::grpc::ByteBuffer>::Create();
  auto fail = [&, stream = stream](const absl::Status& status) {
    metrics_->RecordFailure(status.code());
    grpc_util::AddRetryAfterTrailer(status, context);
    stream->Finish(grpc_util::ToGrpcStatus(status));
  };
  auto request = std::make_shared<v1::ChatRequest>();
  if (absl::Status s = grpc_util::ParseRequest(*raw, request.get(), "preprocess"); !s.ok()) {
    fail(s);
    return reactor;
  }
  auto accepted = Accept(context, *request);
  if (!accepted.ok()) {
    fail(accepted.status());
    return reactor;
  }
  // What the task owns: the request, its cancellation and its admission ticket.
  struct Call {
    ChatRequest chat;
    ChatContext ctx;
    CancellationToken cancel;
    Admission::Ticket ticket;
  };
  auto call = std::make_shared<Call>();
  call->chat = std::move(accepted->second);
  call->ticket = std::move(accepted->first);
  call->ctx.received = Clock::now();
  call->ctx.transport = "grpc";
  call->ctx.call.cancel = &call->cancel;
  call->ctx.call.deadline = EffectiveDeadline(context->deadline(), options_.default_deadline);
  call->ctx.call.request_id = request->request_id().empty()
                                  ? absl::StrCat("req-", next_id_.fetch_add(1))
                                  : request->request_id();
  if (absl::Status s = pipeline_->Validate(call->chat, call->ctx); !s.ok()) {
    fail(s);
    return reactor;
  }
  stream->OnCancel([call] { call->cancel.Cancel(); });
  metrics_->num_requests_waiting->Increment();
  metrics_->queue_depth->Increment();
  auto task = [this, call, context, stream = stream]() {
    metrics_->num_requests_waiting->Decrement();
    metrics_->queue_depth->Decrement();
    metrics_->request_queue_time->Observe(
        std::chrono::duration<double>(Clock::now() - call->ctx.received).count());
    absl::StatusOr<ChatResult> result =
        pipeline_->Run(call->chat, call->ctx, [&](int index, const TokenDelta& d) {
          v1::ChatResponse delta;
          delta.mutable_delta()->set_index(static_cast<uint32_t>(index));
          delta.mutable_delta()->set_text(d.text);
          delta.mutable_delta()->mutable_token_ids()->Add(d.token_ids.begin(), d.token_ids.end());
          stream->Push(grpc_util::Serialize(delta));
        });
    if (!result.ok()) {
      grpc_util::AddRetryAfterTrailer(result.status(), context);
      stream->Finish(grpc_util::ToGrpcStatus(result.status()));
      return;
    }
    v1::ChatResponse last;
    ChatResultToProto(*result, last.mutable_result());
    stream->Push(grpc_util::Serialize(last));
    // A batch with failed conversations: every answer went out above; the call ends with
    // the first failure.
    absl::Status first_failure;
    for (const ChatChoice& c : result->choices) {
      if (!c.status.ok()) {
        first_failure = c.status;
        break;
      }
    }
    grpc_util::AddRetryAfterTrailer(first_failure, context);
    stream->Finish(grpc_util::ToGrpcStatus(first_failure));
  };
  if (!executor_->TrySubmit(std::move(task))) {
    metrics_->num_requests_waiting->Decrement();
    metrics_->queue_depth->Decrement();
    fail(QueueFull(*executor_));
  }
  return reactor;
}

::grpc::ServerUnaryReactor* FrontService::Prepare(::grpc::CallbackServerContext* context,
                                                  const ::grpc::ByteBuffer* raw,
                                                  ::grpc::ByteBuffer* response_bytes) {
  auto* reactor = context->DefaultReactor();
  v1::ChatRequest request;
  if (absl::Status s = grpc_util::ParseRequest(*raw, &request, "preprocess"); !s.ok()) {
    reactor->Finish(grpc_util::ToGrpcStatus(s));
    return reactor;
  }
  auto accepted = Accept(context, request);
  if (!accepted.ok()) {
    grpc_util::AddRetryAfterTrailer(accepted.status(), context);
    reactor->Finish(grpc_util::ToGrpcStatus(accepted.status()));
    return reactor;
  }
  auto ticket = std::make_shared<Admission::Ticket>(std::move(accepted->first));
  auto task = [this, response_bytes, reactor, ticket,
               prepare = std::move(accepted->second.prepare)]() {
    v1::PrepareResponse out;
    v1::PrepareResponse* response = &out;
    const auto start = Clock::now();
    auto batch = pipeline_->preprocessor().Prepare(prepare, pipeline_->options().media);
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
      if (status.ok() && batch->pixels.defined()) {
        status.Update(grpc_util::TensorToProto(batch->pixel_values(), response->mutable_pixel_values()));
        status.Update(grpc_util::TensorToProto(batch->pixel_attention_mask,
                                               response->mutable_pixel_attention_mask()));
      }
    }
    response->set_preprocess_ms(
        std::chrono::duration<double, std::milli>(Clock::now() - start).count());
    if (!status.ok()) status = absl::Status(status.code(), absl::StrCat("preprocess: ", status.message()));
    if (status.ok()) *response_bytes = grpc_util::Serialize(out);
    reactor->Finish(grpc_util::ToGrpcStatus(status));
  };
  if (!executor_->TrySubmit(std::move(task))) {
    absl::Status full = QueueFull(*executor_);
    grpc_util::AddRetryAfterTrailer(full, context);
    reactor->Finish(grpc_util::ToGrpcStatus(full));
  }
  return reactor;
}

}  // namespace smolserve::preprocess
