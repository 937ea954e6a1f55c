// The three stages as separate processes on 127.0.0.1, talking gRPC: results equal the
// transformers goldens, tokens stream, failures map to the right codes, replicas share
// work, cancellation reaches the decoder, and full queues refuse work.
#include <chrono>
#include <functional>
#include <future>
#include <fstream>
#include <sstream>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "proto/smolserve/v1/front.grpc.pb.h"
#include "services/preprocess/server/chat_convert.h"
#include "tests/integration/stage_process.h"

namespace smolserve::testing {
namespace {

using Clock = std::chrono::steady_clock;
constexpr char kModel[] = "--model=tests/golden/models/tiny-smolvlm2-256m-geometry";
constexpr char kVision[] = "services/vision/vision_server";
constexpr char kDecoder[] = "services/decoder/decoder_server";
constexpr char kFront[] = "services/preprocess/preprocess_server";

nlohmann::json ReadJson(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return nlohmann::json::parse(ss.str());
}

// A chat request from request JSON (media read from tests/golden, sent as bytes).
v1::ChatRequest MakeRequest(const nlohmann::json& req) {
  auto parsed = preprocess::ParseChatRequest(req.dump());
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  preprocess::MediaAccess access;
  access.base_dir = "tests/golden";
  auto chat = preprocess::ChatRequestToProto(*parsed, access);
  EXPECT_TRUE(chat.ok()) << chat.status();
  return *chat;
}

v1::ChatRequest GreedyRequest(const nlohmann::json& messages, int new_tokens) {
  v1::ChatRequest r = MakeRequest({{"messages", messages}});
  r.mutable_generation()->set_max_new_tokens(new_tokens);
  r.mutable_generation()->set_ignore_eos(true);
  return r;
}

nlohmann::json ImageMessages(const std::string& path) {
  return {{{"role", "user"},
           {"content", {{{"type", "image"}, {"path", path}}, {{"type", "text"}, {"text", "What is it?"}}}}}};
}

nlohmann::json TextMessages(const std::string& text) {
  return {{{"role", "user"}, {"content", {{{"type", "text"}, {"text", text}}}}}};
}

struct ChatRun {
  ::grpc::Status status;
  v1::ChatResponse::ChatResult result;
  int deltas = 0;
  double first_delta_ms = -1, result_ms = -1, done_ms = -1;
};

ChatRun Chat(const std::string& address, const v1::ChatRequest& request, double deadline_s = 120,
             int cancel_after_deltas = -1, const std::function<void(int)>& on_delta = {}) {
  auto stub = v1::Front::NewStub(::grpc::CreateChannel(address, ::grpc::InsecureChannelCredentials()));
  ::grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() +
                   std::chrono::milliseconds(static_cast<int64_t>(deadline_s * 1000)));
  ChatRun run;
  const auto t0 = Clock::now();
  auto ms = [&] { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); };
  auto reader = stub->Chat(&ctx, request);
  v1::ChatResponse msg;
  while (reader->Read(&msg)) {
    if (msg.has_delta()) {
      if (run.deltas++ == 0) run.first_delta_ms = ms();
      if (run.deltas == cancel_after_deltas) ctx.TryCancel();
      if (on_delta) on_delta(run.deltas);
    } else if (msg.has_result()) {
      run.result = msg.result();
      run.result_ms = ms();
    }
  }
  run.status = reader->Finish();
  run.done_ms = ms();
  return run;
}

std::vector<int32_t> Ids(const v1::Choice& c) { return {c.token_ids().begin(), c.token_ids().end()}; }

// One set of stages shared by the tests that do not break anything.
class Stages : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    vision_ = new StageProcess("vision", kVision, {kModel, "--threads=1"});
    decoder_ = new StageProcess("decoder", kDecoder, {kModel, "--threads=1"});
    ASSERT_TRUE(vision_->Start()) << vision_->Log();
    ASSERT_TRUE(decoder_->Start()) << decoder_->Log();
    front_ = new StageProcess("front", kFront,
                              {kModel, "--vision_target=" + vision_->address(),
                               "--decoder_target=" + decoder_->address()});
    ASSERT_TRUE(front_->Start()) << front_->Log();
  }
  static void TearDownTestSuite() {
    delete front_;
    delete decoder_;
    delete vision_;
  }
  static StageProcess *vision_, *decoder_, *front_;
};
StageProcess* Stages::vision_ = nullptr;
StageProcess* Stages::decoder_ = nullptr;
StageProcess* Stages::front_ = nullptr;

TEST_F(Stages, GreedyIdsEqualTheTransformersGoldens) {
  for (const char* name : {"single_image", "text_only", "no_splitting"}) {
    SCOPED_TRACE(name);
    const auto c = ReadJson(std::string("tests/golden/cases/") + name + "/case.json");
    v1::ChatRequest req = GreedyRequest(c["messages"], 16);
    if (c["image_processor_overrides"].contains("do_image_splitting")) {
      req.mutable_processor()->set_do_image_splitting(false);
    }
    ChatRun run = Chat(front_->address(), req);
    ASSERT_TRUE(run.status.ok()) << run.status.error_message();
    ASSERT_EQ(run.result.choices_size(), 1);
    EXPECT_EQ(Ids(run.result.choices(0)), c["generated_ids"][0].get<std::vector<int32_t>>());
    EXPECT_EQ(run.result.choices(0).text(), c["generated_text_skip_special"][0].get<std::string>());
    EXPECT_EQ(run.result.choices(0).finish_reason(), v1::FINISH_REASON_LENGTH);
    EXPECT_EQ(run.result.choices(0).usage().prompt_tokens(), c["seq_len"].get<uint32_t>());
    EXPECT_EQ(run.deltas, 16);
  }
}

TEST_F(Stages, BatchOfConversationsIsAnsweredPerConversation) {
  const auto c = ReadJson("tests/golden/cases/batch_mixed/case.json");
  v1::ChatRequest req = MakeRequest({{"conversations", c["messages"]}});
  req.mutable_processor()->set_do_image_splitting(false);
  req.mutable_generation()->set_max_new_tokens(16);
  req.mutable_generation()->set_ignore_eos(true);
  ChatRun run = Chat(front_->address(), req);
  ASSERT_TRUE(run.status.ok()) << run.status.error_message();
  ASSERT_EQ(run.result.choices_size(), 3);
  // Each conversation is generated alone (no padding), so its ids equal the goldens' rows,
  // which HF generated left-padded in one batch.
  for (int b = 0; b < 3; ++b) {
    EXPECT_EQ(Ids(run.result.choices(b)), c["generated_ids"][b].get<std::vector<int32_t>>()) << b;
  }
}

TEST_F(Stages, TokensStreamIncrementally) {
  ChatRun run = Chat(front_->address(), GreedyRequest(TextMessages("Tell me a story."), 2000));
  ASSERT_TRUE(run.status.ok()) << run.status.error_message();
  EXPECT_EQ(run.deltas, 2000);
  // The first token arrives well before the last one is generated.
  EXPECT_LT(run.first_delta_ms, run.result_ms - 100) << run.first_delta_ms << " vs " << run.result_ms;
  EXPECT_GT(run.result.timings().time_to_first_token_ms(), 0);
  EXPECT_GT(run.result.timings().total_ms(), run.result.timings().time_to_first_token_ms());
}

TEST_F(Stages, BadMediaIsInvalidArgumentAndDoesNotDisturbOthers) {
  std::thread good([&] {
    ChatRun run = Chat(front_->address(), GreedyRequest(TextMessages("Hello"), 50));
    EXPECT_TRUE(run.status.ok()) << run.status.error_message();
  });
  v1::ChatRequest bad = GreedyRequest(TextMessages("x"), 4);
  auto* item = bad.mutable_conversations(0)->mutable_messages(0)->add_content();
  item->mutable_image()->set_data("definitely not an image");
  ChatRun run = Chat(front_->address(), bad);
  EXPECT_EQ(run.status.error_code(), ::grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(run.status.error_message().find("preprocess: image 0"), std::string::npos)
      << run.status.error_message();
  good.join();
}

TEST_F(Stages, DeadlineIsPropagated) {
  ChatRun run = Chat(front_->address(), GreedyRequest(TextMessages("Go on forever."), 4000), 0.5);
  EXPECT_EQ(run.status.error_code(), ::grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_LT(run.done_ms, 1500);
}

TEST(StageFailures, VisionDownIsUnavailableAndARestartedVisionIsUsedAgain) {
  StageProcess vision("vision", kVision, {kModel, "--threads=1"});
  StageProcess decoder("decoder", kDecoder, {kModel, "--threads=1"});
  ASSERT_TRUE(vision.Start());
  ASSERT_TRUE(decoder.Start());
  // No media cache: every request with the image must reach the vision stage.
  StageProcess front("front", kFront, {kModel, "--vision_target=" + vision.address(),
                                       "--decoder_target=" + decoder.address(),
                                       "--media_cache_bytes=0"});
  ASSERT_TRUE(front.Start());
  v1::ChatRequest image = GreedyRequest(ImageMessages("media/baboon.jpg"), 4);
  image.mutable_processor()->set_do_image_splitting(false);
  ASSERT_TRUE(Chat(front.address(), image).status.ok());

  const int port = vision.port();
  vision.Kill();
  ChatRun down = Chat(front.address(), image);
  EXPECT_EQ(down.status.error_code(), ::grpc::StatusCode::UNAVAILABLE) << down.status.error_message();
  EXPECT_NE(down.status.error_message().find("vision"), std::string::npos) << down.status.error_message();
  // Preprocessing of the small image runs first; the vision failure itself is immediate.
  EXPECT_LT(down.done_ms, 1000 + 1000);
  ChatRun text = Chat(front.address(), GreedyRequest(TextMessages("Still there?"), 4));
  EXPECT_TRUE(text.status.ok()) << text.status.error_message();

  ASSERT_TRUE(vision.Start(port));
  bool recovered = false;
  for (int i = 0; i < 20 && !recovered; ++i) {
    recovered = Chat(front.address(), image).status.ok();
    if (!recovered) std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  EXPECT_TRUE(recovered);
}

TEST(StageFailures, TwoVisionReplicasBothReceiveWork) {
  StageProcess v1p("vision_a", kVision, {kModel, "--threads=1"});
  StageProcess v2p("vision_b", kVision, {kModel, "--threads=1"});
  StageProcess decoder("decoder", kDecoder, {kModel, "--threads=1"});
  ASSERT_TRUE(v1p.Start());
  ASSERT_TRUE(v2p.Start());
  ASSERT_TRUE(decoder.Start());
  StageProcess front("front", kFront,
                     {kModel, "--vision_target=ipv4:" + v1p.address() + "," + v2p.address(),
                      "--decoder_target=" + decoder.address(), "--media_cache_bytes=0"});
  ASSERT_TRUE(front.Start());
  v1::ChatRequest image = GreedyRequest(ImageMessages("media/baboon.jpg"), 2);
  image.mutable_processor()->set_do_image_splitting(false);
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(Chat(front.address(), image).status.ok());
  EXPECT_GE(v1p.CountLogLines("\"rpc\":\"Encode\""), 1);
  EXPECT_GE(v2p.CountLogLines("\"rpc\":\"Encode\""), 1);
  EXPECT_EQ(v1p.CountLogLines("\"rpc\":\"Encode\"") + v2p.CountLogLines("\"rpc\":\"Encode\""), 6);
}

TEST(StageFailures, CancelStopsGenerationAndFreesTheDecoder) {
  StageProcess vision("vision", kVision, {kModel, "--threads=1"});
  StageProcess decoder("decoder", kDecoder,
                       {kModel, "--threads=1", "--max_running=1", "--max_queue=0"});
  ASSERT_TRUE(vision.Start());
  ASSERT_TRUE(decoder.Start());
  StageProcess front("front", kFront, {kModel, "--vision_target=" + vision.address(),
                                       "--decoder_target=" + decoder.address()});
  ASSERT_TRUE(front.Start());
  ChatRun cancelled = Chat(front.address(), GreedyRequest(TextMessages("Long story"), 4000), 120,
                           /*cancel_after_deltas=*/5);
  EXPECT_EQ(cancelled.status.error_code(), ::grpc::StatusCode::CANCELLED);
  // The decoder logs the request as cancelled, far short of 4000 tokens.
  bool logged = false;
  for (int i = 0; i < 100 && !logged; ++i) {
    logged = decoder.CountLogLines("\"status\":\"CANCELLED\"") == 1;
    if (!logged) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_TRUE(logged) << decoder.Log();
  const std::string log = decoder.Log();
  const size_t at = log.find("\"completion_tokens\":", log.find("\"status\":\"CANCELLED\"") - 200);
  ASSERT_NE(at, std::string::npos);
  EXPECT_LT(std::stoi(log.substr(at + 20)), 1000) << log;
  // Its slot is free: with no queue, a new request is admitted at once.
  ChatRun next = Chat(front.address(), GreedyRequest(TextMessages("Short"), 3));
  EXPECT_TRUE(next.status.ok()) << next.status.error_message();
}

TEST(StageFailures, FullQueuesAnswerResourceExhausted) {
  StageProcess vision("vision", kVision, {kModel, "--threads=1"});
  StageProcess decoder("decoder", kDecoder, {kModel, "--threads=1", "--max_running=1",
                                           "--max_queue=0", "--max_new_tokens_limit=8000"});
  ASSERT_TRUE(vision.Start());
  ASSERT_TRUE(decoder.Start());
  // Front: two workers, so a second request gets to the busy decoder.
  StageProcess front("front", kFront, {kModel, "--vision_target=" + vision.address(),
                                       "--decoder_target=" + decoder.address(), "--workers=2",
                                       "--max_queue=0", "--max_new_tokens_limit=8000"});
  ASSERT_TRUE(front.Start());
  std::promise<void> generating;
  std::thread busy([&] {
    ChatRun r = Chat(front.address(), GreedyRequest(TextMessages("Long story"), 7000), 120, 6000,
                     [&](int n) { if (n == 1) generating.set_value(); });
    if (r.deltas == 0) {  // refused: do not leave the test waiting
      ADD_FAILURE() << r.status.error_message();
      generating.set_value();
    }
  });
  // Wait until the decoder is generating for the first request.
  generating.get_future().wait();
  ChatRun at_decoder = Chat(front.address(), GreedyRequest(TextMessages("x"), 3));
  EXPECT_EQ(at_decoder.status.error_code(), ::grpc::StatusCode::RESOURCE_EXHAUSTED)
      << at_decoder.status.error_message();
  EXPECT_NE(at_decoder.status.error_message().find("decoder"), std::string::npos);
  busy.join();
}

TEST(StageFailures, KvBudgetRefusesWhatCanNeverFitAndServesTheRest) {
  StageProcess vision("vision", kVision, {kModel, "--threads=1"});
  // 1 MiB of KV cache: a short text request fits, 7000 new tokens never can.
  StageProcess decoder("decoder", kDecoder, {kModel, "--threads=1", "--kv_cache_budget_mb=1",
                                           "--max_new_tokens_limit=8000"});
  ASSERT_TRUE(vision.Start());
  ASSERT_TRUE(decoder.Start());
  StageProcess front("front", kFront, {kModel, "--vision_target=" + vision.address(),
                                       "--decoder_target=" + decoder.address(), "--workers=4",
                                       "--max_new_tokens_limit=8000"});
  ASSERT_TRUE(front.Start());
  ChatRun big = Chat(front.address(), GreedyRequest(TextMessages("Long story"), 7000));
  EXPECT_EQ(big.status.error_code(), ::grpc::StatusCode::RESOURCE_EXHAUSTED)
      << big.status.error_message();
  EXPECT_NE(big.status.error_message().find("KV cache"), std::string::npos)
      << big.status.error_message();
  // Four small ones at once share (and wait for) the budget; all succeed.
  std::vector<std::thread> clients;
  std::vector<ChatRun> runs(4);
  for (int i = 0; i < 4; ++i) {
    clients.emplace_back([&, i] {
      runs[i] = Chat(front.address(), GreedyRequest(TextMessages("Hi " + std::to_string(i)), 40));
    });
  }
  for (auto& c : clients) c.join();
  for (const ChatRun& r : runs) EXPECT_TRUE(r.status.ok()) << r.status.error_message();
}

TEST(StageFailures, SigtermFinishesInFlightWork) {
  StageProcess vision("vision", kVision, {kModel, "--threads=1"});
  StageProcess decoder("decoder", kDecoder, {kModel, "--threads=1"});
  ASSERT_TRUE(vision.Start());
  ASSERT_TRUE(decoder.Start());
  StageProcess front("front", kFront, {kModel, "--vision_target=" + vision.address(),
                                       "--decoder_target=" + decoder.address()});
  ASSERT_TRUE(front.Start());
  ChatRun run;
  std::thread client([&] { run = Chat(front.address(), GreedyRequest(TextMessages("Story"), 300)); });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_TRUE(decoder.Terminate());  // exits 0 after finishing the stream
  client.join();
  EXPECT_TRUE(run.status.ok()) << run.status.error_message();
  EXPECT_EQ(run.deltas, 300);
}

// A rolling update that leaves the vision and decoder stages on different weights: answers
// with images are refused (the decoder: FAILED_PRECONDITION naming both revisions; the client
// gets UNAVAILABLE, retryable), never generated from mismatched embeddings; text still works.
// Both stages compute the same revision from the same files (the other tests run that way).
TEST(StageRevisions, TheDecoderRefusesEmbeddingsOfAnotherVisionModel) {
  StageProcess vision("vision", kVision, {kModel, "--threads=1", "--model_revision=rev-new"});
  StageProcess decoder("decoder", kDecoder, {kModel, "--threads=1", "--model_revision=rev-old"});
  ASSERT_TRUE(vision.Start());
  ASSERT_TRUE(decoder.Start());
  StageProcess front("front", kFront, {kModel, "--vision_target=" + vision.address(),
                                       "--decoder_target=" + decoder.address()});
  ASSERT_TRUE(front.Start());
  v1::ChatRequest image = GreedyRequest(ImageMessages("media/baboon.jpg"), 4);
  image.mutable_processor()->set_do_image_splitting(false);
  for (int attempt = 0; attempt < 2; ++attempt) {  // the second from the front's media cache
    ChatRun run = Chat(front.address(), image);
    // The decoder refuses (FAILED_PRECONDITION); to the client it is the service's transient
    // state during a rolling update: UNAVAILABLE, which clients retry.
    EXPECT_EQ(run.status.error_code(), ::grpc::StatusCode::UNAVAILABLE)
        << run.status.error_message();
    EXPECT_NE(run.status.error_message().find("rolling update"), std::string::npos)
        << run.status.error_message();
    EXPECT_NE(run.status.error_message().find("'rev-new'"), std::string::npos)
        << run.status.error_message();
    EXPECT_NE(run.status.error_message().find("'rev-old'"), std::string::npos)
        << run.status.error_message();
  }
  ChatRun text = Chat(front.address(), GreedyRequest(TextMessages("Hello"), 4));
  EXPECT_TRUE(text.status.ok()) << text.status.error_message();
  EXPECT_EQ(decoder.CountLogLines("\"revision\":\"rev-old\""), 1) << decoder.Log();
  // Every answer names the revision that generated it.
  EXPECT_EQ(text.result.model_revision(), "rev-old");
}

}  // namespace
}  // namespace smolserve::testing
