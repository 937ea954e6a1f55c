#include "services/preprocess/server/grpc_stage_clients.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/grpc/generation_proto.h"
#include "common/grpc/status_util.h"
#include "common/grpc/tensor_proto.h"
#include "common/status/status_macros.h"

namespace smolserve::preprocess {
namespace {

void SetDeadline(const CallContext& ctx, ::grpc::ClientContext* cc) {
  if (ctx.deadline != absl::InfiniteFuture()) cc->set_deadline(absl::ToChronoTime(ctx.deadline));
}

// Cancels `cc` when the request is cancelled; unregisters when destroyed (before `cc`).
CancellationToken::Registration LinkCancel(const CallContext& ctx, ::grpc::ClientContext* cc) {
  if (ctx.cancel == nullptr) return {};
  return ctx.cancel->OnCancel([cc] { cc->TryCancel(); });
}

}  // namespace

GrpcVisionClient::GrpcVisionClient(std::shared_ptr<::grpc::Channel> channel)
    : stub_(v1::Vision::NewStub(std::move(channel))) {}

absl::StatusOr<EncodeOutcome> GrpcVisionClient::Encode(const EncodeTiles& tiles,
                                                       const CallContext& ctx) {
  v1::EncodeRequest request;
  RETURN_IF_ERROR(grpc_util::TensorToProto(tiles.pixels, request.mutable_pixel_values()));
  RETURN_IF_ERROR(
      grpc_util::TensorToProto(tiles.pixel_attention_mask, request.mutable_pixel_attention_mask()));
  const at::Tensor formulas = tiles.formulas.contiguous();
  request.set_tile_formulas(formulas.data_ptr<uint8_t>(), static_cast<size_t>(formulas.numel()));
  v1::PixelNormalization* n = request.mutable_normalization();
  n->set_rescale_factor(tiles.normalize.rescale_factor);
  for (int c = 0; c < 3; ++c) {
    n->add_mean(tiles.normalize.mean[c]);
    n->add_std(tiles.normalize.std[c]);
  }
  v1::EncodeResponse response;
  ::grpc::ClientContext cc;
  SetDeadline(ctx, &cc);
  ::grpc::Status status;
  {
    CancellationToken::Registration link = LinkCancel(ctx, &cc);
    status = stub_->Encode(&cc, request, &response);
  }
  if (!status.ok()) return grpc_util::FromGrpcCall(status, cc);
  EncodeOutcome out;
  out.wire_bytes = static_cast<int64_t>(response.image_hidden_states().data().size());
  out.cached_tiles = static_cast<int>(response.cached_tiles());
  out.model_revision = response.model_revision();
  ASSIGN_OR_RETURN(out.image_hidden_states,
                   grpc_util::TensorFromProto(response.image_hidden_states(), "image_hidden_states"));
  return out;
}

GrpcDecoderClient::GrpcDecoderClient(std::shared_ptr<::grpc::Channel> channel)
    : stub_(v1::Decoder::NewStub(std::move(channel))) {}

absl::StatusOr<GenerationOutcome> GrpcDecoderClient::Generate(
    const GenerateCall& call, const CallContext& ctx,
    const std::function<void(const TokenDelta&)>& on_delta) {
  v1::GenerateRequest request;
  request.mutable_input_ids()->Add(call.input_ids.begin(), call.input_ids.end());
  if (call.image_hidden_states.defined()) {
    RETURN_IF_ERROR(grpc_util::TensorToProto(call.image_hidden_states,
                                             request.mutable_image_hidden_states()));
  }
  grpc_util::GenerationToProto(call.generation, request.mutable_generation());
  request.set_request_id(ctx.request_id);
  request.set_vision_model_revision(call.vision_model_revision);
  ::grpc::ClientContext cc;
  SetDeadline(ctx, &cc);
  GenerationOutcome out;
  bool finished = false;
  ::grpc::Status status;
  {
    CancellationToken::Registration link = LinkCancel(ctx, &cc);
    std::unique_ptr<::grpc::ClientReader<v1::GenerateResponse>> reader =
        stub_->Generate(&cc, request);
    v1::GenerateResponse msg;
    while (reader->Read(&msg)) {
      if (msg.token_ids_size() > 0 || !msg.text().empty()) {
        on_delta(TokenDelta{{msg.token_ids().begin(), msg.token_ids().end()}, msg.text()});
      }
      if (auto reason = grpc_util::FinishReasonFromProto(msg.finish_reason())) {
        finished = true;
        out.finish_reason = *reason;
        out.prompt_tokens = msg.usage().prompt_tokens();
        out.completion_tokens = msg.usage().completion_tokens();
        out.cached_prompt_tokens = msg.usage().cached_prompt_tokens();
        out.queue_ms = msg.queue_ms();
        out.prefill_ms = msg.prefill_ms();
        out.decode_ms = msg.decode_ms();
        out.model_revision = msg.model_revision();
      }
    }
    status = reader->Finish();
  }
  if (!status.ok()) return grpc_util::FromGrpcCall(status, cc);
  if (!finished) return absl::InternalError("the stream ended without a result");
  return out;
}

}  // namespace smolserve::preprocess
