#include "tools/smolvlm/local_stages.h"

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>

#include <c10/core/InferenceMode.h>

#include "common/status/status_macros.h"

namespace smolserve::cli {

absl::StatusOr<preprocess::EncodeOutcome> LocalVisionClient::Encode(
    const preprocess::EncodeTiles& tiles, const preprocess::CallContext& ctx) {
  if (ctx.cancelled()) return absl::CancelledError("cancelled");
  c10::InferenceMode guard;
  const at::Tensor formulas = tiles.formulas.contiguous();
  ASSIGN_OR_RETURN(at::Tensor pixel_values,
                   pixels::NormalizeTiles(tiles.pixels, absl::MakeConstSpan(formulas.data_ptr<uint8_t>(),
                                                                            static_cast<size_t>(formulas.numel())),
                                          tiles.normalize));
  ASSIGN_OR_RETURN(vision::VisionOutput out, model_->Encode(pixel_values, tiles.pixel_attention_mask));
  if (on_output) on_output(out.image_hidden_states);
  preprocess::EncodeOutcome outcome;
  outcome.image_hidden_states = std::move(out.image_hidden_states);
  return outcome;
}

namespace {

// The engine thread's deltas, handed to the caller's thread in order.
struct Channel {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<TokenDelta> deltas;
  std::optional<absl::StatusOr<GenerationOutcome>> done;
};

}  // namespace

absl::StatusOr<GenerationOutcome> LocalDecoderClient::Generate(
    const preprocess::GenerateCall& call, const preprocess::CallContext& ctx,
    const std::function<void(const TokenDelta&)>& on_delta) {
  auto channel = std::make_shared<Channel>();
  decoder::StreamInput input;
  input.input_ids = call.input_ids;
  input.image_hidden_states = call.image_hidden_states;
  input.generation = call.generation;
  decoder::StreamCallbacks cb;
  CancellationToken* cancel = ctx.cancel;
  const absl::Time deadline = ctx.deadline;
  cb.poll = [cancel, deadline]() -> absl::Status {
    if (cancel != nullptr && cancel->cancelled()) return absl::CancelledError("cancelled");
    if (absl::Now() > deadline) return absl::DeadlineExceededError("deadline exceeded");
    return absl::OkStatus();
  };
  cb.on_delta = [channel](TokenDelta d) {
    std::lock_guard<std::mutex> lock(channel->mu);
    channel->deltas.push_back(std::move(d));
    channel->cv.notify_one();
  };
  cb.on_done = [channel](absl::StatusOr<GenerationOutcome> r) {
    std::lock_guard<std::mutex> lock(channel->mu);
    channel->done = std::move(r);
    channel->cv.notify_one();
  };
  cb.on_first_logits = on_first_logits;
  RETURN_IF_ERROR(decoder::SubmitStream(*engine_, *model_, limits_, std::move(input), std::move(cb)));
  std::unique_lock<std::mutex> lock(channel->mu);
  while (true) {
    channel->cv.wait(lock, [&] { return !channel->deltas.empty() || channel->done.has_value(); });
    while (!channel->deltas.empty()) {
      TokenDelta d = std::move(channel->deltas.front());
      channel->deltas.pop_front();
      lock.unlock();
      on_delta(d);
      lock.lock();
    }
    if (channel->done.has_value() && channel->deltas.empty()) return *std::move(channel->done);
  }
}

}  // namespace smolserve::cli
