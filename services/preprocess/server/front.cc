#include "services/preprocess/server/front.h"

#include <utility>

#include "common/status/status_macros.h"

namespace smolserve::preprocess {

absl::StatusOr<std::unique_ptr<Front>> Front::Create(
    const FrontOptions& o, metrics::StageMetrics* metrics,
    std::function<void(bool ready, const std::string& why)> on_health) {
  std::unique_ptr<Front> f(new Front());
  f->media_budget_ = std::make_unique<ByteBudget>(o.media_memory_bytes);
  PreprocessorOptions preprocessor = o.preprocessor;
  preprocessor.media_budget = f->media_budget_.get();
  ASSIGN_OR_RETURN(f->preprocessor_, Preprocessor::Create(preprocessor));
  if (o.media_cache_bytes > 0) f->media_cache_ = std::make_unique<MediaCache>(o.media_cache_bytes);
  ChatPipelineOptions pipeline = o.pipeline;
  if (o.url_fetch.has_value()) {
    ASSIGN_OR_RETURN(f->url_fetcher_, net::UrlFetcher::Create(*o.url_fetch));
    pipeline.media.url_fetcher = f->url_fetcher_.get();
  } else {
    pipeline.media.url_fetcher = nullptr;
  }
  ASSIGN_OR_RETURN(auto vision_channel, grpc_util::MakeChannel(o.vision_target, o.channel));
  ASSIGN_OR_RETURN(auto decoder_channel, grpc_util::MakeChannel(o.decoder_target, o.channel));
  f->vision_ = std::make_unique<GrpcVisionClient>(vision_channel);
  f->decoder_ = std::make_unique<GrpcDecoderClient>(decoder_channel);
  f->conversation_pool_ = std::make_unique<BoundedExecutor>(o.conversation_threads,
                                                            /*max_queue=*/0);
  f->pipeline_ = std::make_unique<ChatPipeline>(pipeline, f->preprocessor_.get(), f->vision_.get(),
                                                f->decoder_.get(), f->media_cache_.get(),
                                                f->conversation_pool_.get(), metrics);
  std::optional<auth::ApiKeys> keys;
  if (!o.api_keys_file.empty()) {
    ASSIGN_OR_RETURN(keys, auth::ApiKeys::LoadFile(o.api_keys_file));
    if (keys->size() == 0) {
      return absl::InvalidArgumentError("the API keys file holds no key");
    }
  }
  f->admission_ = std::make_unique<Admission>(std::move(keys), o.tenant_limits, metrics);
  f->executor_ = std::make_unique<BoundedExecutor>(o.workers, o.max_queue);
  f->service_ = std::make_unique<FrontService>(o.service, f->pipeline_.get(), f->admission_.get(),
                                               f->executor_.get(), metrics);
  f->health_ = std::make_unique<DownstreamHealth>(
      std::vector<DownstreamHealth::Stage>{{"vision", vision_channel}, {"decoder", decoder_channel}},
      o.health_interval, [on_health](bool ready, const std::string& why) {
        if (on_health) on_health(ready, why);
      });
  if (o.http.has_value()) {
    f->http_api_ = std::make_unique<HttpApi>(
        o.http_api, f->pipeline_.get(), f->admission_.get(), f->executor_.get(), metrics,
        [raw = f.get()] {
          return std::make_pair(raw->downstream_ready(), raw->health_->Describe());
        });
    http::HttpServerOptions ho = *o.http;
    ho.error_body = &HttpApi::ErrorBody;
    ho.on_rejected = [metrics](int status) {
      if (metrics != nullptr) metrics->RecordHttp("other", status, 0);
    };
    HttpApi* api = f->http_api_.get();
    ASSIGN_OR_RETURN(f->http_, http::HttpServer::Start(
                                   ho, [api](http::HttpRequest r, std::shared_ptr<http::Responder> w) {
                                     api->Handle(std::move(r), std::move(w));
                                   }));
  }
  return f;
}

Front::~Front() {
  Shutdown();
  health_.reset();  // its thread may call back into this object
}

void Front::Shutdown(absl::Duration grace) {
  if (http_ != nullptr) http_->Stop(grace);
  if (executor_ != nullptr) executor_->Shutdown();
  if (conversation_pool_ != nullptr) conversation_pool_->Shutdown();
}

}  // namespace smolserve::preprocess
