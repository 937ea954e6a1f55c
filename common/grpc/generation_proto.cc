#include "common/grpc/generation_proto.h"

namespace smolserve::grpc_util {

GenerationParams GenerationFromProto(const v1::GenerationParams& p) {
  GenerationParams g;
  if (p.has_max_new_tokens()) g.max_new_tokens = p.max_new_tokens();
  if (p.has_temperature()) g.temperature = p.temperature();
  if (p.has_top_p()) g.top_p = p.top_p();
  if (p.has_top_k()) g.top_k = p.top_k();
  if (p.has_repetition_penalty()) g.repetition_penalty = p.repetition_penalty();
  if (p.has_seed()) g.seed = p.seed();
  g.ignore_eos = p.ignore_eos();
  g.stop.assign(p.stop().begin(), p.stop().end());
  return g;
}

void GenerationToProto(const GenerationParams& g, v1::GenerationParams* out) {
  out->Clear();
  // Values are validated before they are sent; max_new_tokens / top_k fit uint32 by the limits.
  if (g.max_new_tokens) out->set_max_new_tokens(static_cast<uint32_t>(*g.max_new_tokens));
  if (g.temperature) out->set_temperature(static_cast<float>(*g.temperature));
  if (g.top_p) out->set_top_p(static_cast<float>(*g.top_p));
  if (g.top_k) out->set_top_k(static_cast<uint32_t>(*g.top_k));
  if (g.repetition_penalty) out->set_repetition_penalty(static_cast<float>(*g.repetition_penalty));
  if (g.seed) out->set_seed(*g.seed);
  out->set_ignore_eos(g.ignore_eos);
  for (const std::string& s : g.stop) out->add_stop(s);
}

v1::FinishReason FinishReasonToProto(FinishReason r) {
  switch (r) {
    case FinishReason::kStop: return v1::FINISH_REASON_STOP;
    case FinishReason::kLength: return v1::FINISH_REASON_LENGTH;
    case FinishReason::kCancelled: return v1::FINISH_REASON_CANCELLED;
  }
  return v1::FINISH_REASON_UNSPECIFIED;
}

std::optional<FinishReason> FinishReasonFromProto(v1::FinishReason r) {
  switch (r) {
    case v1::FINISH_REASON_STOP: return FinishReason::kStop;
    case v1::FINISH_REASON_LENGTH: return FinishReason::kLength;
    case v1::FINISH_REASON_CANCELLED: return FinishReason::kCancelled;
    default: return std::nullopt;
  }
}

}  // namespace smolserve::grpc_util
