#include "tools/smolvlm/local_pipeline.h"

#include <mutex>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>

#include "absl/strings/str_cat.h"
#include "common/hub/hub_download.h"
#include "common/model/weights.h"
#include "common/status/status_macros.h"

namespace smolserve::cli {

absl::StatusOr<std::unique_ptr<LocalPipeline>> LocalPipeline::Load(const LocalPipelineOptions& o) {
  std::unique_ptr<LocalPipeline> p(new LocalPipeline());
  ASSIGN_OR_RETURN(p->model_dir_, hub::ResolveOrDownloadModel(o.model));
  ASSIGN_OR_RETURN(p->config_, model::LoadModelConfig(p->model_dir_));
  preprocess::PreprocessorOptions pre;
  pre.model_dir = p->model_dir_;
  pre.limits = o.limits;
  ASSIGN_OR_RETURN(p->preprocessor_, preprocess::Preprocessor::Create(pre));
  ASSIGN_OR_RETURN(auto weights, model::WeightStore::Open(p->model_dir_));
  vision::VisionOptions vo;
  vo.dtype = o.vision_dtype;
  ASSIGN_OR_RETURN(p->vision_, vision::VisionModel::Create(p->config_, *weights, vo));
  ASSIGN_OR_RETURN(p->decoder_, decoder::LoadDecoderModel(p->model_dir_, o.decoder, weights.get()));
  RETURN_IF_ERROR(weights->CheckAllUsed());
  decoder::BatchEngineOptions eo;
  eo.kv_cache_budget_bytes = o.kv_cache_budget_bytes;
  eo.prefix_cache = o.prefix_cache;
  eo.thread_init = [threads = at::get_num_threads()] { at::set_num_threads(threads); };
  ASSIGN_OR_RETURN(p->engine_, decoder::BatchEngine::Create(*p->decoder_->model, std::move(eo)));
  p->vision_client_ = std::make_unique<LocalVisionClient>(p->vision_.get());
  p->decoder_client_ =
      std::make_unique<LocalDecoderClient>(p->engine_.get(), p->decoder_.get(), o.decoder_limits);
  preprocess::ChatPipelineOptions po;
  po.generation = o.decoder_limits.generation;
  po.log_requests = false;
  if (o.media_cache_bytes > 0) {
    p->media_cache_ = std::make_unique<preprocess::MediaCache>(o.media_cache_bytes);
  }
  p->pipeline_ = std::make_unique<preprocess::ChatPipeline>(
      po, p->preprocessor_.get(), p->vision_client_.get(), p->decoder_client_.get(),
      p->media_cache_.get(), /*conversation_pool=*/nullptr, /*metrics=*/nullptr);
  return p;
}

LocalPipeline::~LocalPipeline() {
  if (engine_ != nullptr) engine_->Shutdown();
}

absl::StatusOr<LocalRun> LocalPipeline::Run(const preprocess::ChatRequest& request,
                                            const preprocess::MediaAccess& access) {
  LocalRun run;
  std::vector<at::Tensor> images;
  std::mutex logits_mu;
  std::vector<at::Tensor> logits;
  vision_client_->on_output = [&](const at::Tensor& t) { images.push_back(t); };
  decoder_client_->on_first_logits = [&](absl::Span<const float> row) {
    at::Tensor t = at::empty({static_cast<int64_t>(row.size())}, at::kFloat);
    std::copy(row.begin(), row.end(), t.data_ptr<float>());
    std::lock_guard<std::mutex> lock(logits_mu);
    logits.push_back(t);
  };
  preprocess::ChatContext ctx;
  ctx.transport = "cli";
  ctx.call.request_id = "cli";
  ctx.media = &access;
  auto result = pipeline_->Run(request, ctx, [](int, const TokenDelta&) {});
  vision_client_->on_output = nullptr;
  decoder_client_->on_first_logits = nullptr;
  if (!result.ok()) return result.status();
  run.result = *std::move(result);
  c10::InferenceMode guard;
  if (!images.empty()) run.image_hidden_states = at::cat(images, 0);
  {
    std::lock_guard<std::mutex> lock(logits_mu);
    if (!logits.empty()) run.logits_last = at::stack(logits, 0);
  }
  for (const preprocess::ChatChoice& c : run.result.choices) {
    run.text_with_special.push_back(preprocessor_->tokenizer().Decode(c.token_ids, false));
  }
  return run;
}

}  // namespace smolserve::cli
