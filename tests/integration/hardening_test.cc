// The failure modes an outside probe of the three stages found, each against real stage
// processes on loopback: every one of these failed (crash, unbounded cost, wrong or silent
// error, lost work, hang, forged log record, existence oracle) before its fix.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <future>
#include <sstream>
#include <thread>

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "proto/smolserve/v1/decoder.grpc.pb.h"
#include "proto/smolserve/v1/front.grpc.pb.h"
#include "proto/smolserve/v1/vision.grpc.pb.h"
#include "tests/integration/stage_process.h"

namespace smolserve::testing {
namespace {

using Clock = std::chrono::steady_clock;
const std::string kModel = "--model=tests/golden/models/tiny-smolvlm2-256m-geometry";

std::string TmpDir() {
  const char* d = std::getenv("TEST_TMPDIR");
  return d ? d : "/tmp";
}

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

double Seconds(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

v1::ChatRequest TextChat(const std::string& text, int new_tokens = 2) {
  v1::ChatRequest r;
  auto* m = r.add_conversations()->add_messages();
  m->set_role("user");
  m->add_content()->set_text(text);
  r.mutable_generation()->set_max_new_tokens(new_tokens);
  return r;
}

struct Answer {
  ::grpc::Status status;
  v1::ChatResponse::ChatResult result;
  bool got_result = false;
};

Answer Chat(const std::string& address, const v1::ChatRequest& req, double deadline_s = 60,
            const std::string& request_id = "") {
  auto stub = v1::Front::NewStub(::grpc::CreateChannel(address, ::grpc::InsecureChannelCredentials()));
  ::grpc::ClientContext ctx;
  if (deadline_s > 0) {
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(static_cast<int64_t>(deadline_s * 1000)));
  }
  v1::ChatRequest r = req;
  if (!request_id.empty()) r.set_request_id(request_id);
  auto reader = stub->Chat(&ctx, r);
  v1::ChatResponse msg;
  Answer a;
  while (reader->Read(&msg)) {
    if (msg.has_result()) {
      a.result = msg.result();
      a.got_result = true;
    }
  }
  a.status = reader->Finish();
  return a;
}

int Threads(pid_t pid) {
  std::istringstream in(ReadFile(absl::StrCat("/proc/", pid, "/status")));
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("Threads:", 0) == 0) return std::atoi(line.c_str() + 8);
  }
  return -1;
}

class Hardening : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    vision_ = new StageProcess("vision", "services/vision/vision_server", {kModel, "--threads=1"});
    decoder_ = new StageProcess("decoder", "services/decoder/decoder_server", {kModel, "--threads=1"});
    ASSERT_TRUE(vision_->Start());
    ASSERT_TRUE(decoder_->Start());
    front_ = new StageProcess("front", "services/preprocess/preprocess_server",
                              {kModel, "--vision_target=" + vision_->address(),
                               "--decoder_target=" + decoder_->address(), "--media_root=tests/golden",
                               "--max_decoded_pixels=60000000"});
    ASSERT_TRUE(front_->Start()) << front_->Log();
  }
  static void TearDownTestSuite() {
    delete front_;
    delete vision_;
    delete decoder_;
  }
  static void ExpectAlive() {
    Answer a = Chat(front_->address(), TextChat("still there?"));
    EXPECT_TRUE(a.status.ok()) << a.status.error_message();
  }
  static StageProcess *vision_, *decoder_, *front_;
};
StageProcess* Hardening::vision_ = nullptr;
StageProcess* Hardening::decoder_ = nullptr;
StageProcess* Hardening::front_ = nullptr;

// 1. A Chat with 2,000 conversations aborted the front (a thread per conversation).
TEST_F(Hardening, ThousandsOfConversationsAreRefusedNotAThreadEach) {
  v1::ChatRequest req;
  for (int i = 0; i < 2000; ++i) {
    auto* m = req.add_conversations()->add_messages();
    m->set_role("user");
    m->add_content()->set_text("hi");
  }
  const auto t0 = Clock::now();
  Answer a = Chat(front_->address(), req);
  EXPECT_EQ(a.status.error_code(), ::grpc::StatusCode::RESOURCE_EXHAUSTED) << a.status.error_message();
  EXPECT_NE(a.status.error_message().find("conversations"), std::string::npos);
  EXPECT_LT(Seconds(t0), 5);
  EXPECT_LT(Threads(front_->pid()), 200);
  ExpectAlive();
}

// 3. Clients chose the tile size (4096: one 16 GiB buffer killed the vision stage).
TEST_F(Hardening, ClientsCannotChooseHugeTiles) {
  v1::ChatRequest req = TextChat("What is it?");
  auto* img = req.mutable_conversations(0)->mutable_messages(0)->add_content()->mutable_image();
  img->set_data(ReadFile("tests/golden/media/fruits.jpg"));
  req.mutable_processor()->set_max_image_size(4096);
  Answer a = Chat(front_->address(), req);
  EXPECT_EQ(a.status.error_code(), ::grpc::StatusCode::INVALID_ARGUMENT) << a.status.error_message();
  EXPECT_NE(a.status.error_message().find("max_image_size"), std::string::npos);
  // Vision.Encode called directly with 2048-pixel tiles.
  auto vision = v1::Vision::NewStub(::grpc::CreateChannel(vision_->address(), ::grpc::InsecureChannelCredentials()));
  v1::EncodeRequest enc;
  enc.mutable_pixel_values()->set_dtype(v1::Tensor::FLOAT32);
  for (int64_t d : {1, 3, 2048, 2048}) enc.mutable_pixel_values()->add_shape(d);
  enc.mutable_pixel_values()->set_data(std::string(size_t{3} * 2048 * 2048 * 4, '\0'));
  ::grpc::ClientContext ctx;
  v1::EncodeResponse resp;
  ::grpc::Status s = vision->Encode(&ctx, enc, &resp);
  EXPECT_EQ(s.error_code(), ::grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  ExpectAlive();
}

// 4. Video decoding ignored deadlines and had no budget (150 s of CPU for one request).
TEST_F(Hardening, VideoDecodingHasABudgetAndStopsAtTheDeadline) {
  const std::string video = TmpDir() + "/long.avi";
  ASSERT_EQ(std::system(absl::StrCat("ffmpeg -loglevel error -y -f lavfi -i testsrc=size=1280x720:rate=30 -t 20 "
                                     "-c:v mpeg4 -q:v 10 ", video).c_str()), 0);
  v1::ChatRequest req = TextChat("What happens?");
  auto* vid = req.mutable_conversations(0)->mutable_messages(0)->add_content()->mutable_video();
  vid->set_data(ReadFile(video));
  // 600 frames of 1280x720 = 553 million decoded pixels, over the 60 million of this front.
  auto t0 = Clock::now();
  Answer a = Chat(front_->address(), req);
  EXPECT_EQ(a.status.error_code(), ::grpc::StatusCode::RESOURCE_EXHAUSTED) << a.status.error_message();
  EXPECT_NE(a.status.error_message().find("decoded pixels"), std::string::npos) << a.status.error_message();
  EXPECT_LT(Seconds(t0), 10);
  // Under the budget, but with a deadline shorter than the decode: stops at the deadline.
  StageProcess front("front_video", "services/preprocess/preprocess_server",
                     {kModel, "--vision_target=" + vision_->address(), "--decoder_target=" + decoder_->address()});
  ASSERT_TRUE(front.Start());
  t0 = Clock::now();
  a = Chat(front.address(), req, 0.3);
  EXPECT_EQ(a.status.error_code(), ::grpc::StatusCode::DEADLINE_EXCEEDED);
  // The decode itself stopped (it takes seconds): the front's log line for the request comes
  // within a second of the deadline.
  const auto end = Clock::now() + std::chrono::seconds(10);
  while (front.CountLogLines("\"transport\":\"grpc\"") == 0 && Clock::now() < end) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  // (Decoding all 600 frames takes about 2.5 s on the machines this runs on.)
  // (It failed once in ~20 runs, beside the sanitizer builds: the front's log says why.)
  EXPECT_LT(Seconds(t0), 1.2) << "decoding went on after the deadline; the front's log:\n"
                              << front.Log();
  // Stopped by the deadline, or by the cancellation the client's deadline causes.
  EXPECT_EQ(front.CountLogLines("\"status\":\"DEADLINE_EXCEEDED\"") +
                front.CountLogLines("\"status\":\"CANCELLED\""),
            1)
      << front.Log();
}

// 5. 200 MB of text cost 4 GB and 18.7 s before it was refused.
TEST_F(Hardening, HugeTextIsRefusedBeforeTokenizing) {
  const auto t0 = Clock::now();
  Answer a = Chat(front_->address(), TextChat(std::string(20 << 20, 'a')));
  EXPECT_EQ(a.status.error_code(), ::grpc::StatusCode::RESOURCE_EXHAUSTED) << a.status.error_message();
  EXPECT_NE(a.status.error_message().find("text"), std::string::npos);
  EXPECT_LT(Seconds(t0), 3);
}

// 6. An unbounded stop list was scanned per token on the engine thread.
TEST_F(Hardening, StopListsAreBounded) {
  v1::ChatRequest req = TextChat("hi");
  for (int i = 0; i < 1000; ++i) req.mutable_generation()->add_stop(absl::StrCat("stop", i));
  Answer a = Chat(front_->address(), req);
  EXPECT_EQ(a.status.error_code(), ::grpc::StatusCode::INVALID_ARGUMENT) << a.status.error_message();
  // Straight to the decoder, too.
  auto decoder = v1::Decoder::NewStub(::grpc::CreateChannel(decoder_->address(), ::grpc::InsecureChannelCredentials()));
  v1::GenerateRequest gen;
  gen.add_input_ids(1);
  *gen.mutable_generation() = req.generation();
  ::grpc::ClientContext ctx;
  auto reader = decoder->Generate(&ctx, gen);
  v1::GenerateResponse msg;
  while (reader->Read(&msg)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), ::grpc::StatusCode::INVALID_ARGUMENT);
}

// 9. No default deadline: with vision stopped (SIGSTOP) a Chat waited for ever, and the
// front's health said SERVING.
TEST(HardeningHungStage, ADefaultDeadlineAndHealthThatFollowsTheStages) {
  StageProcess vision("vision_hung", "services/vision/vision_server", {kModel, "--threads=1"});
  StageProcess decoder("decoder_h", "services/decoder/decoder_server", {kModel, "--threads=1"});
  ASSERT_TRUE(vision.Start());
  ASSERT_TRUE(decoder.Start());
  StageProcess front("front_h", "services/preprocess/preprocess_server",
                     {kModel, "--vision_target=" + vision.address(), "--decoder_target=" + decoder.address(),
                      "--default_deadline_s=3"});
  ASSERT_TRUE(front.Start());
  kill(vision.pid(), SIGSTOP);
  v1::ChatRequest req = TextChat("What is it?");
  auto* img = req.mutable_conversations(0)->mutable_messages(0)->add_content()->mutable_image();
  img->set_data(ReadFile("tests/golden/media/fruits.jpg"));
  const auto t0 = Clock::now();
  Answer a = Chat(front.address(), req, /*deadline_s=*/0);  // the client sets none
  EXPECT_EQ(a.status.error_code(), ::grpc::StatusCode::DEADLINE_EXCEEDED) << a.status.error_message();
  EXPECT_LT(Seconds(t0), 10);
  // Health: NOT_SERVING once the hung stage is noticed (health checks time out).
  const auto end = Clock::now() + std::chrono::seconds(15);
  bool not_serving = false;
  while (Clock::now() < end && !not_serving) {
    not_serving = !WaitServing(front.address(), 0.2);
  }
  EXPECT_TRUE(not_serving) << front.Log();
  kill(vision.pid(), SIGCONT);
  EXPECT_TRUE(WaitServing(front.address(), 15));
}

// 8. A large batch filled the decoder's queue: deltas streamed, then RESOURCE_EXHAUSTED, and
// no finished conversation got its result.
TEST(HardeningBatch, ABatchLargerThanTheDecoderQueueIsAnsweredWhole) {
  StageProcess vision("vision_b", "services/vision/vision_server", {kModel, "--threads=1"});
  StageProcess decoder("decoder_b", "services/decoder/decoder_server",
                       {kModel, "--threads=1", "--max_running=2", "--max_queue=1"});
  ASSERT_TRUE(vision.Start());
  ASSERT_TRUE(decoder.Start());
  StageProcess front("front_b", "services/preprocess/preprocess_server",
                     {kModel, "--vision_target=" + vision.address(), "--decoder_target=" + decoder.address()});
  ASSERT_TRUE(front.Start());
  v1::ChatRequest req;
  for (int i = 0; i < 12; ++i) {
    auto* m = req.add_conversations()->add_messages();
    m->set_role("user");
    m->add_content()->set_text(absl::StrCat("Story number ", i));
  }
  req.mutable_generation()->set_max_new_tokens(20);
  req.mutable_generation()->set_ignore_eos(true);
  Answer a = Chat(front.address(), req, 120);
  EXPECT_TRUE(a.status.ok()) << a.status.error_message();
  ASSERT_TRUE(a.got_result);
  ASSERT_EQ(a.result.choices_size(), 12);
  for (const auto& c : a.result.choices()) {
    EXPECT_EQ(c.error_code(), 0) << c.error_message();
    EXPECT_EQ(c.usage().completion_tokens(), 20u);
  }
}

// 10. request_id and error text were written into JSON log lines by hand: a crafted id
// forged records, and a 1 MB id was copied into every line.
TEST_F(Hardening, LogLinesCannotBeForged) {
  const std::string forged = "x\"}\n{\"stage\":\"forged\",\"status\":\"OK\"}\n{\"a\":\"";
  Chat(front_->address(), TextChat("hi"), 30, forged);
  Chat(front_->address(), TextChat("hi"), 30, std::string(1 << 20, 'r'));
  for (const StageProcess* p : {front_, decoder_}) {
    std::istringstream in(p->Log());
    for (std::string line; std::getline(in, line);) {
      if (line.empty() || line[0] != '{') continue;
      nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
      ASSERT_FALSE(j.is_discarded()) << "not JSON: " << line.substr(0, 200);
      EXPECT_NE(j.value("stage", ""), "forged");
      EXPECT_LT(line.size(), 8192u) << line.substr(0, 200);
    }
  }
}

// 11. Outside --media_root, /etc/passwd was PERMISSION_DENIED but a missing file NOT_FOUND.
TEST_F(Hardening, NoFileExistenceOracle) {
  for (const char* path : {"/etc/passwd", "/etc/no-such-file", "../../../etc/passwd"}) {
    v1::ChatRequest req = TextChat("?");
    req.mutable_conversations(0)->mutable_messages(0)->add_content()->mutable_image()->set_path(path);
    Answer a = Chat(front_->address(), req);
    EXPECT_EQ(a.status.error_code(), ::grpc::StatusCode::PERMISSION_DENIED) << path << ": " << a.status.error_message();
  }
}

// 13. Wrong or silent errors: temperature NaN or -1 meant greedy; the decoder took NaN
// embeddings; an unparseable request proto gave UNIMPLEMENTED with no message.
TEST_F(Hardening, BadValuesGetClearErrors) {
  for (float t : {std::nanf(""), -1.0f}) {
    v1::ChatRequest req = TextChat("hi");
    req.mutable_generation()->set_temperature(t);
    Answer a = Chat(front_->address(), req);
    EXPECT_EQ(a.status.error_code(), ::grpc::StatusCode::INVALID_ARGUMENT) << t;
    EXPECT_NE(a.status.error_message().find("temperature"), std::string::npos);
  }
  auto decoder = v1::Decoder::NewStub(::grpc::CreateChannel(decoder_->address(), ::grpc::InsecureChannelCredentials()));
  v1::GenerateRequest gen;
  for (int i = 0; i < 64; ++i) gen.add_input_ids(49190);  // <image>
  auto* t = gen.mutable_image_hidden_states();
  t->set_dtype(v1::Tensor::FLOAT32);
  for (int64_t d : {1, 64, 64}) t->add_shape(d);
  std::string data(64 * 64 * 4, '\0');
  const float nan = std::nanf("");
  std::memcpy(data.data(), &nan, 4);
  t->set_data(data);
  ::grpc::ClientContext ctx;
  auto reader = decoder->Generate(&ctx, gen);
  v1::GenerateResponse msg;
  while (reader->Read(&msg)) {
  }
  ::grpc::Status s = reader->Finish();
  EXPECT_EQ(s.error_code(), ::grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  // Garbage instead of a ChatRequest.
  ::grpc::GenericStub stub(::grpc::CreateChannel(front_->address(), ::grpc::InsecureChannelCredentials()));
  ::grpc::ClientContext gctx;
  gctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  ::grpc::Slice junk(std::string("\xff\xff\xff\xff\x0f garbage", 14));
  ::grpc::ByteBuffer request(&junk, 1);
  ::grpc::CompletionQueue cq;
  auto call = stub.PrepareCall(&gctx, "/smolserve.v1.Front/Chat", &cq);
  call->StartCall(reinterpret_cast<void*>(1));
  void* tag;
  bool ok;
  cq.Next(&tag, &ok);
  call->Write(request, reinterpret_cast<void*>(2));
  cq.Next(&tag, &ok);
  call->WritesDone(reinterpret_cast<void*>(3));
  cq.Next(&tag, &ok);
  ::grpc::ByteBuffer response;
  call->Read(&response, reinterpret_cast<void*>(4));
  cq.Next(&tag, &ok);
  ::grpc::Status gs;
  call->Finish(&gs, reinterpret_cast<void*>(5));
  cq.Next(&tag, &ok);
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  EXPECT_NE(gs.error_code(), ::grpc::StatusCode::OK);
  EXPECT_NE(gs.error_code(), ::grpc::StatusCode::UNIMPLEMENTED) << gs.error_message();
  EXPECT_FALSE(gs.error_message().empty());
  ExpectAlive();
}

// 14. The CLI segfaulted on request JSON nested 100,000 deep.
TEST(HardeningCli, DeeplyNestedRequestFilesAreRefused) {
  const std::string path = TmpDir() + "/deep.json";
  std::ofstream(path) << "{\"messages\": " << std::string(100000, '[') << std::string(100000, ']') << "}";
  const int rc = std::system(absl::StrCat("tools/smolvlm/smolvlm run ", kModel, " --request=", path,
                                          " >/dev/null 2>", TmpDir(), "/deep.err").c_str());
  ASSERT_TRUE(WIFEXITED(rc)) << "killed by a signal";
  EXPECT_EQ(WEXITSTATUS(rc), 1);
  EXPECT_NE(ReadFile(TmpDir() + "/deep.err").find("nested deeper"), std::string::npos);
}

// 15. After a replica died, calls failed with UNAVAILABLE until the channel reconnected:
// Vision.Encode is retried on the other replica.
TEST(HardeningRetry, AVisionReplicaKilledMidRequestIsRetriedOnAnother) {
  StageProcess v1p("vision_r1", "services/vision/vision_server", {kModel, "--threads=1"});
  StageProcess v2p("vision_r2", "services/vision/vision_server", {kModel, "--threads=1"});
  StageProcess decoder("decoder_r", "services/decoder/decoder_server", {kModel, "--threads=1"});
  ASSERT_TRUE(v1p.Start());
  ASSERT_TRUE(v2p.Start());
  ASSERT_TRUE(decoder.Start());
  StageProcess front("front_r", "services/preprocess/preprocess_server",
                     {kModel, absl::StrCat("--vision_target=ipv4:127.0.0.1:", v1p.port(), ",127.0.0.1:", v2p.port()),
                      "--decoder_target=" + decoder.address(), "--media_cache_bytes=0"});
  ASSERT_TRUE(front.Start());
  v1::ChatRequest req = TextChat("What is it?");
  auto* img = req.mutable_conversations(0)->mutable_messages(0)->add_content()->mutable_image();
  img->set_data(ReadFile("tests/golden/media/astronaut.png"));
  // Requests while one replica is killed: none fails.
  std::vector<std::future<Answer>> calls;
  for (int i = 0; i < 6; ++i) {
    calls.push_back(std::async(std::launch::async, [&] { return Chat(front.address(), req, 60); }));
    if (i == 2) v1p.Kill();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  for (auto& c : calls) {
    Answer a = c.get();
    EXPECT_TRUE(a.status.ok()) << a.status.error_message();
  }
}

}  // namespace
}  // namespace smolserve::testing
