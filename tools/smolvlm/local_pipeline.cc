#include "tools/smolvlm/local_pipeline.h"

#include <chrono>

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include "absl/strings/str_cat.h"
#include "common/model/weights.h"
#include "common/status/status_macros.h"
#include "services/decoder/server/decoder_service.h"

namespace smolserve::cli {
namespace {

using Clock = std::chrono::steady_clock;
double MsSince(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

}  // namespace

absl::StatusOr<std::unique_ptr<LocalPipeline>> LocalPipeline::Load(const LocalPipelineOptions& o) {
  std::unique_ptr<LocalPipeline> p(new LocalPipeline());
  ASSIGN_OR_RETURN(p->model_dir_, model::ResolveModelDir(o.model));
  ASSIGN_OR_RETURN(p->config_, model::LoadModelConfig(p->model_dir_));
  auto gen = model::LoadGenerationConfig(p->model_dir_);
  if (gen.ok()) p->generation_config_ = *gen;
  else if (gen.status().code() != absl::StatusCode::kNotFound) return gen.status();
  preprocess::PreprocessorOptions pre;
  pre.model_dir = p->model_dir_;
  pre.limits = o.limits;
  ASSIGN_OR_RETURN(p->preprocessor_, preprocess::Preprocessor::Create(pre));
  ASSIGN_OR_RETURN(auto weights, model::WeightStore::Open(p->model_dir_));
  vision::VisionOptions vo;
  vo.dtype = o.dtype;
  ASSIGN_OR_RETURN(p->vision_, vision::VisionModel::Create(p->config_, *weights, vo));
  decoder::TextModelOptions to;
  to.dtype = o.dtype;
  ASSIGN_OR_RETURN(p->text_, decoder::TextModel::Create(p->config_, *weights, to));
  RETURN_IF_ERROR(weights->CheckAllUsed());
  return p;
}

absl::StatusOr<LocalRun> LocalPipeline::Run(const preprocess::PrepareRequest& request,
                                            const preprocess::MediaAccess& access,
                                            const v1::GenerationParams& generation) const {
  c10::InferenceMode guard;
  LocalRun run;
  auto t = Clock::now();
  ASSIGN_OR_RETURN(run.prepared, preprocessor_->Prepare(request, access));
  run.preprocess_ms = MsSince(t);

  if (run.prepared.pixel_values.defined()) {
    t = Clock::now();
    ASSIGN_OR_RETURN(auto out, vision_->Encode(run.prepared.pixel_values,
                                               run.prepared.pixel_attention_mask));
    run.image_hidden_states = out.image_hidden_states;
    run.vision_ms = MsSince(t);
  }

  decoder::GenerateRequest g;
  decoder::DecoderServiceOptions limits;
  RETURN_IF_ERROR(decoder::FillGenerateRequest(generation, generation_config_, limits, &g));
  for (size_t b = 0; b < run.prepared.input_ids.size(); ++b) {
    g.input_ids.emplace_back(run.prepared.input_ids[b].begin(), run.prepared.input_ids[b].end());
    g.attention_mask.emplace_back(run.prepared.attention_mask[b].begin(),
                                  run.prepared.attention_mask[b].end());
  }
  g.image_hidden_states = run.image_hidden_states;
  const auto& tokenizer = preprocessor_->tokenizer();
  g.detokenize = [&tokenizer](absl::Span<const int64_t> ids) {
    std::vector<int32_t> v(ids.begin(), ids.end());
    return tokenizer.Decode(v, /*skip_special_tokens=*/true);
  };
  g.on_logits = [&run](int64_t step, const at::Tensor& logits) {
    if (step == 0) run.logits_last = logits.to(at::kFloat).clone();
  };
  ASSIGN_OR_RETURN(run.generated, decoder::Generator(*text_).Generate(g));
  run.prefill_ms = run.generated.prefill_seconds * 1e3;
  run.decode_ms = run.generated.decode_seconds * 1e3;
  for (const auto& row : run.generated.rows) {
    std::vector<int32_t> ids(row.token_ids.begin(), row.token_ids.end());
    run.text.push_back(tokenizer.Decode(ids, true));
    run.text_with_special.push_back(tokenizer.Decode(ids, false));
  }
  return run;
}

}  // namespace smolserve::cli
