// The vision service in process behind a real gRPC server (tiny golden model): responses
// carry the batcher's counts, repeated tiles come from the cache bit-exactly, concurrent
// requests share a model call, and the stage metrics follow (tiles encoded, cache hits and
// misses, batch sizes, gauges back to zero).
#include "services/vision/server/vision_service.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <grpcpp/grpcpp.h>
#include <prometheus/registry.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/pixels/normalize.h"
#include "common/grpc/tensor_proto.h"
#include "common/model/config.h"
#include "common/model/weights.h"
#include "gtest/gtest.h"

namespace smolserve::vision {
namespace {

constexpr char kTinyDir[] = "tests/golden/models/tiny-smolvlm2-256m-geometry";

std::unique_ptr<VisionModel> LoadModel() {
  auto config = model::LoadModelConfig(kTinyDir);
  EXPECT_TRUE(config.ok()) << config.status();
  auto store = model::WeightStore::Open(kTinyDir);
  EXPECT_TRUE(store.ok()) << store.status();
  auto m = VisionModel::Create(*config, **store);
  EXPECT_TRUE(m.ok()) << m.status();
  return m.ok() ? *std::move(m) : nullptr;
}

at::Tensor RandomTiles(int seed, int64_t n) {
  at::manual_seed(seed);
  return at::rand({n, 3, 512, 512}, at::kFloat).mul_(2).sub_(1);
}

double HistogramCount(prometheus::Histogram* h) {
  return static_cast<double>(h->Collect().histogram.sample_count);
}
double HistogramSum(prometheus::Histogram* h) { return h->Collect().histogram.sample_sum; }

class VisionServiceTest : public ::testing::Test {
 protected:
  void Start(const VisionServiceOptions& options, bool with_model = true) {
    metrics_ = std::make_unique<metrics::StageMetrics>(metrics::Stage::kVision, registry_);
    service_ = std::make_unique<VisionService>(options, metrics_.get());
    ::grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", ::grpc::InsecureServerCredentials(), &port);
    builder.SetMaxReceiveMessageSize(64 << 20);
    builder.SetMaxSendMessageSize(64 << 20);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ::grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(64 << 20);
    args.SetMaxSendMessageSize(64 << 20);
    stub_ = v1::Vision::NewStub(::grpc::CreateCustomChannel(
        "127.0.0.1:" + std::to_string(port), ::grpc::InsecureChannelCredentials(), args));
    if (with_model) {
      ASSERT_TRUE(service_->SetModel(LoadModel(), "test-revision").ok());
    }
  }
  void TearDown() override {
    if (server_) server_->Shutdown();
    if (service_) service_->Shutdown();
  }

  ::grpc::Status Encode(const at::Tensor& pixels, v1::EncodeResponse* response,
                        const at::Tensor& mask = {}) {
    v1::EncodeRequest request;
    EXPECT_TRUE(grpc_util::TensorToProto(pixels, request.mutable_pixel_values()).ok());
    if (mask.defined()) {
      EXPECT_TRUE(grpc_util::TensorToProto(mask, request.mutable_pixel_attention_mask()).ok());
    }
    ::grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    return stub_->Encode(&ctx, request, response);
  }

  static at::Tensor Embeddings(const v1::EncodeResponse& r) {
    auto t = grpc_util::TensorFromProto(r.image_hidden_states(), "image_hidden_states");
    EXPECT_TRUE(t.ok()) << t.status();
    return t.ok() ? *t : at::Tensor();
  }

  void ExpectIdleGauges() {
    EXPECT_EQ(metrics_->num_requests_waiting->Value(), 0);
    EXPECT_EQ(metrics_->num_requests_running->Value(), 0);
    EXPECT_EQ(metrics_->queue_depth->Value(), 0);
    EXPECT_EQ(metrics_->tiles_in_flight->Value(), 0);
  }

  prometheus::Registry registry_;
  std::unique_ptr<metrics::StageMetrics> metrics_;
  std::unique_ptr<VisionService> service_;
  std::unique_ptr<::grpc::Server> server_;
  std::unique_ptr<v1::Vision::Stub> stub_;
};

TEST_F(VisionServiceTest, UnavailableUntilTheModelIsSet) {
  Start({}, /*with_model=*/false);
  v1::EncodeResponse response;
  EXPECT_EQ(Encode(RandomTiles(1, 1), &response).error_code(), ::grpc::StatusCode::UNAVAILABLE);
}

TEST_F(VisionServiceTest, RepeatedRequestIsServedFromTheCache) {
  VisionServiceOptions o;
  o.threads = 2;
  o.batch_wait_ms = 0;
  Start(o);
  at::Tensor pixels = RandomTiles(2, 3);
  pixels[1].zero_();  // padding
  v1::EncodeResponse first;
  ASSERT_TRUE(Encode(pixels, &first).ok());
  EXPECT_EQ(first.tiles(), 2u);
  EXPECT_EQ(first.cached_tiles(), 0u);
  EXPECT_GT(first.encode_ms(), 0);
  at::set_num_threads(2);
  auto alone = LoadModel()->Encode(pixels, at::Tensor());
  ASSERT_TRUE(alone.ok());
  const at::Tensor got = Embeddings(first);
  ASSERT_EQ(got.sizes(), alone->image_hidden_states.sizes());
  EXPECT_LT((got - alone->image_hidden_states).abs().max().item<double>(), 1e-5);
  EXPECT_EQ(metrics_->tiles_encoded->Value(), 2);
  EXPECT_EQ(metrics_->cache_misses->Value(), 2);
  EXPECT_EQ(metrics_->cache_hits->Value(), 0);
  EXPECT_EQ(HistogramCount(metrics_->vision_batch_size), 1);

  v1::EncodeResponse again;
  ASSERT_TRUE(Encode(pixels, &again).ok());
  EXPECT_EQ(again.tiles(), 2u);
  EXPECT_EQ(again.cached_tiles(), 2u);
  EXPECT_EQ(again.encode_ms(), 0);
  EXPECT_EQ(again.image_hidden_states().data(), first.image_hidden_states().data());
  EXPECT_EQ(metrics_->tiles_encoded->Value(), 2);  // nothing encoded
  EXPECT_EQ(metrics_->cache_hits->Value(), 2);
  EXPECT_EQ(HistogramCount(metrics_->vision_batch_size), 1);
  ExpectIdleGauges();
}

TEST_F(VisionServiceTest, ConcurrentRequestsShareOneModelCall) {
  VisionServiceOptions o;
  o.threads = 2;
  o.max_batch_tiles = 4;
  o.batch_wait_ms = 5000;  // the batch runs when 4 tiles are queued
  o.embedding_cache_bytes = 0;
  Start(o);
  std::vector<std::thread> clients;
  std::vector<::grpc::Status> status(4);
  std::vector<v1::EncodeResponse> responses(4);
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 4; ++i) {
    clients.emplace_back([&, i] { status[i] = Encode(RandomTiles(10 + i, 1), &responses[i]); });
  }
  for (auto& c : clients) c.join();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(4));  // not by timeout
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(status[i].ok()) << status[i].error_message();
    EXPECT_EQ(responses[i].tiles(), 1u);
  }
  EXPECT_EQ(HistogramCount(metrics_->vision_batch_size), 1);
  EXPECT_EQ(HistogramSum(metrics_->vision_batch_size), 4);
  EXPECT_EQ(metrics_->tiles_encoded->Value(), 4);
  EXPECT_EQ(HistogramCount(metrics_->vision_encode), 1);
  ExpectIdleGauges();
}

TEST_F(VisionServiceTest, BadInputAndFullQueue) {
  VisionServiceOptions o;
  o.threads = 1;
  o.max_tiles_per_request = 2;
  Start(o);
  v1::EncodeResponse response;
  ::grpc::Status s = Encode(RandomTiles(20, 1).to(at::kLong), &response);  // not float32
  EXPECT_EQ(s.error_code(), ::grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message().rfind("vision: ", 0), 0u) << s.error_message();
  s = Encode(RandomTiles(21, 1), &response, at::full({1, 512, 512}, 3, at::kLong));
  EXPECT_EQ(s.error_code(), ::grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  s = Encode(RandomTiles(22, 3), &response);
  EXPECT_EQ(s.error_code(), ::grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
  EXPECT_EQ(metrics_->tiles_encoded->Value(), 0);
  ExpectIdleGauges();
}

// Tiles as the front sends them: uint8 with the processor's normalisation and a formula per
// tile, normalised by this stage exactly as the front would have (common/pixels).
TEST_F(VisionServiceTest, Uint8TilesEqualTheirFloatNormalisation) {
  VisionServiceOptions o;
  o.threads = 1;
  Start(o);
  at::manual_seed(31);
  const at::Tensor u8 = at::randint(0, 256, {2, 3, 512, 512}, at::kByte);
  const uint8_t formulas[2] = {0, 1};  // one image tile, one video frame
  pixels::NormalizeParams params;
  auto expected = pixels::NormalizeTiles(u8, formulas, params);
  ASSERT_TRUE(expected.ok()) << expected.status();
  v1::EncodeResponse from_float;
  ASSERT_TRUE(Encode(*expected, &from_float).ok());

  v1::EncodeRequest request;
  ASSERT_TRUE(grpc_util::TensorToProto(u8, request.mutable_pixel_values()).ok());
  auto* n = request.mutable_normalization();
  n->set_rescale_factor(params.rescale_factor);
  for (int c = 0; c < 3; ++c) {
    n->add_mean(params.mean[c]);
    n->add_std(params.std[c]);
  }
  request.set_tile_formulas(std::string(reinterpret_cast<const char*>(formulas), 2));
  auto call = [&](const v1::EncodeRequest& r, v1::EncodeResponse* out) {
    ::grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    return stub_->Encode(&ctx, r, out);
  };
  v1::EncodeResponse from_u8;
  ASSERT_TRUE(call(request, &from_u8).ok());
  EXPECT_EQ(from_u8.cached_tiles(), 2u);  // same float pixels: same cache key
  EXPECT_TRUE(at::equal(Embeddings(from_u8), Embeddings(from_float)));

  v1::EncodeRequest bad = request;
  bad.clear_normalization();
  ::grpc::Status s = call(bad, &from_u8);
  EXPECT_EQ(s.error_code(), ::grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  bad = request;
  bad.set_tile_formulas(std::string(1, '\0'));  // one formula for two tiles
  s = call(bad, &from_u8);
  EXPECT_EQ(s.error_code(), ::grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  bad = request;
  bad.mutable_normalization()->set_std(1, 0.0f);
  s = call(bad, &from_u8);
  EXPECT_EQ(s.error_code(), ::grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  bad = request;
  bad.set_tile_formulas(std::string(2, '\x07'));
  s = call(bad, &from_u8);
  EXPECT_EQ(s.error_code(), ::grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  ExpectIdleGauges();
}

}  // namespace
}  // namespace smolserve::vision
