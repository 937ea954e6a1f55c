// The front's media cache with the three stages as processes on 127.0.0.1: media sent again
// (same bytes, or only the client's id) is neither preprocessed nor sent to the vision stage,
// the answer is the same, unknown ids are NOT_FOUND, and a cache too small to hold anything
// changes nothing but the work done.
#include <curl/curl.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "gtest/gtest.h"
#include "proto/smolserve/v1/front.grpc.pb.h"
#include "tests/integration/stage_process.h"

namespace smolserve::testing {
namespace {

constexpr char kModel[] = "--model=tests/golden/models/tiny-smolvlm2-256m-geometry";
constexpr char kVision[] = "services/vision/vision_server";
constexpr char kDecoder[] = "services/decoder/decoder_server";
constexpr char kFront[] = "services/preprocess/preprocess_server";
constexpr char kEncodeLine[] = "\"rpc\":\"Encode\"";

size_t Append(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

std::string HttpGet(const std::string& url) {
  std::string body;
  CURL* c = curl_easy_init();
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, Append);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
  curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
  curl_easy_perform(c);
  curl_easy_cleanup(c);
  return body;
}

// The value of an unlabelled-except-stage series on a stage's /metrics; -1 when absent.
double Metric(const StageProcess& stage, const std::string& name) {
  std::istringstream in(HttpGet("http://127.0.0.1:" + std::to_string(stage.metrics_port()) + "/metrics"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(name + "{", 0) == 0 || line.rfind(name + " ", 0) == 0) {
      return std::stod(line.substr(line.rfind(' ') + 1));
    }
  }
  return -1;
}

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// A media content item: bytes of a tests/golden file and/or a client id.
v1::Content Media(bool video, const std::string& path, const std::string& id = "") {
  v1::Content c;
  v1::Media* m = video ? c.mutable_video() : c.mutable_image();
  if (!path.empty()) m->set_data(ReadFile("tests/golden/" + path));
  if (!id.empty()) m->set_id(id);
  return c;
}
v1::Content Image(const std::string& path, const std::string& id = "") { return Media(false, path, id); }

v1::ChatRequest Request(const std::vector<v1::Content>& media, const std::string& text = "What is it?") {
  v1::ChatRequest r;
  auto* msg = r.add_conversations()->add_messages();
  msg->set_role("user");
  for (const auto& c : media) *msg->add_content() = c;
  msg->add_content()->set_text(text);
  r.mutable_processor()->set_longest_edge(1024);
  r.mutable_processor()->set_video_num_frames(4);
  r.mutable_generation()->set_max_new_tokens(8);
  r.mutable_generation()->set_temperature(0);
  r.mutable_generation()->set_ignore_eos(true);
  return r;
}

struct ChatRun {
  ::grpc::Status status;
  v1::ChatResponse::ChatResult result;
  std::vector<int32_t> ids() const {
    if (result.choices_size() == 0) return {};
    return {result.choices(0).token_ids().begin(), result.choices(0).token_ids().end()};
  }
  uint32_t tiles() const { return result.timings().tiles(); }
  uint32_t cached_tiles() const { return result.timings().cached_tiles(); }
};

ChatRun Chat(const StageProcess& front, const v1::ChatRequest& request) {
  auto stub = v1::Front::NewStub(::grpc::CreateChannel(front.address(), ::grpc::InsecureChannelCredentials()));
  ::grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
  ChatRun run;
  auto reader = stub->Chat(&ctx, request);
  v1::ChatResponse msg;
  while (reader->Read(&msg)) {
    if (msg.has_result()) run.result = msg.result();
  }
  run.status = reader->Finish();
  return run;
}

// The "tiles" of the vision stage's last Encode log line (-1 if none).
int LastEncodeTiles(const StageProcess& vision) {
  const std::string log = vision.Log();
  const size_t line = log.rfind(kEncodeLine);
  if (line == std::string::npos) return -1;
  const size_t at = log.find("\"tiles\":", line);
  return at == std::string::npos ? -1 : std::stoi(log.substr(at + 8));
}

// One vision and one decoder stage; three fronts on them: the default media cache, none,
// and a 1-byte bound.
class MediaCacheStages : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    vision_ = new StageProcess("vision", kVision, {kModel, "--threads=1"});
    decoder_ = new StageProcess("decoder", kDecoder, {kModel, "--threads=1"});
    ASSERT_TRUE(vision_->Start()) << vision_->Log();
    ASSERT_TRUE(decoder_->Start()) << decoder_->Log();
    auto front = [](const char* name, const std::string& bytes_flag) {
      std::vector<std::string> args = {kModel, "--vision_target=" + vision_->address(),
                                       "--decoder_target=" + decoder_->address()};
      if (!bytes_flag.empty()) args.push_back(bytes_flag);
      return new StageProcess(name, kFront, args);
    };
    cached_ = front("front_cached", "");
    uncached_ = front("front_uncached", "--media_cache_bytes=0");
    tiny_ = front("front_tiny", "--media_cache_bytes=1");
    for (StageProcess* f : {cached_, uncached_, tiny_}) ASSERT_TRUE(f->Start()) << f->Log();
  }
  static void TearDownTestSuite() {
    for (StageProcess* p : {tiny_, uncached_, cached_, decoder_, vision_}) delete p;
  }
  static int Encodes() { return vision_->CountLogLines(kEncodeLine); }

  static StageProcess *vision_, *decoder_, *cached_, *uncached_, *tiny_;
};
StageProcess* MediaCacheStages::vision_ = nullptr;
StageProcess* MediaCacheStages::decoder_ = nullptr;
StageProcess* MediaCacheStages::cached_ = nullptr;
StageProcess* MediaCacheStages::uncached_ = nullptr;
StageProcess* MediaCacheStages::tiny_ = nullptr;

TEST_F(MediaCacheStages, TheSameImageTwiceIsNeitherPreprocessedNorEncodedAgain) {
  const v1::ChatRequest req = Request({Image("media/fruits.jpg")});
  const ChatRun first = Chat(*cached_, req);
  ASSERT_TRUE(first.status.ok()) << first.status.error_message();
  ASSERT_GT(first.tiles(), 1u);  // split into a grid + the global image
  const int encodes = Encodes();
  const double tiles_encoded = Metric(*vision_, "smolserve:tiles_encoded_total");
  const double hits = Metric(*cached_, "smolserve:media_cache_hits_total");
  ASSERT_GE(hits, 0) << "the front exports smolserve:media_cache_hits_total";
  EXPECT_GT(Metric(*cached_, "smolserve:media_cache_bytes"), 0);

  const ChatRun second = Chat(*cached_, req);
  ASSERT_TRUE(second.status.ok()) << second.status.error_message();
  EXPECT_EQ(second.tiles(), first.tiles());
  EXPECT_EQ(second.cached_tiles(), second.tiles());
  EXPECT_EQ(second.ids(), first.ids());
  EXPECT_EQ(second.ids().size(), 8u);
  EXPECT_EQ(second.result.choices(0).usage().image_tiles(), first.tiles());
  EXPECT_EQ(second.result.timings().embedding_bytes(), 0u);  // nothing came from the vision stage
  EXPECT_EQ(Encodes(), encodes) << "the vision stage was asked to encode the image again";
  EXPECT_EQ(Metric(*vision_, "smolserve:tiles_encoded_total"), tiles_encoded);
  EXPECT_EQ(Metric(*cached_, "smolserve:media_cache_hits_total"), hits + 1);

  // The answer is the one a front without a cache gives.
  const ChatRun reference = Chat(*uncached_, req);
  ASSERT_TRUE(reference.status.ok()) << reference.status.error_message();
  EXPECT_EQ(reference.ids(), second.ids());
  EXPECT_EQ(reference.tiles(), first.tiles());
}

TEST_F(MediaCacheStages, AnIdAloneReusesTheMediaSentWithIt) {
  for (bool video : {false, true}) {
    SCOPED_TRACE(video ? "video" : "image");
    const std::string path = video ? "media/tree.avi" : "media/baboon.jpg";
    const std::string id = video ? "clip-7" : "baboon-7";
    const ChatRun sent = Chat(*cached_, Request({Media(video, path, id)}));
    ASSERT_TRUE(sent.status.ok()) << sent.status.error_message();
    ASSERT_GT(sent.tiles(), 0u);
    if (video) {
      EXPECT_EQ(sent.result.choices(0).usage().video_frames(), 4u);
    }
    const int encodes = Encodes();

    const ChatRun by_id = Chat(*cached_, Request({Media(video, "", id)}));
    ASSERT_TRUE(by_id.status.ok()) << by_id.status.error_message();
    EXPECT_EQ(by_id.ids(), sent.ids());
    EXPECT_EQ(by_id.tiles(), sent.tiles());
    EXPECT_EQ(by_id.cached_tiles(), sent.tiles());
    EXPECT_EQ(by_id.result.choices(0).usage().prompt_tokens(),
              sent.result.choices(0).usage().prompt_tokens());
    EXPECT_EQ(Encodes(), encodes);
  }
}

TEST_F(MediaCacheStages, CachedAndNewMediaInOneRequestKeepTheirOrder) {
  v1::ChatRequest warm = Request({Image("media/camera.png")});
  warm.mutable_processor()->set_do_image_splitting(false);
  ASSERT_TRUE(Chat(*cached_, warm).status.ok());

  // new, cached, new: only the two new images (one tile each) go to the vision stage.
  v1::ChatRequest mixed = Request({Image("media/coffee.png"), Image("media/camera.png"),
                                   Image("media/astronaut.png")},
                                  "Compare them.");
  mixed.mutable_processor()->set_do_image_splitting(false);
  const int encodes = Encodes();
  const ChatRun run = Chat(*cached_, mixed);
  ASSERT_TRUE(run.status.ok()) << run.status.error_message();
  EXPECT_EQ(Encodes(), encodes + 1);
  EXPECT_EQ(LastEncodeTiles(*vision_), 2);
  EXPECT_EQ(run.tiles(), 3u);
  EXPECT_GE(run.cached_tiles(), 1u);

  const ChatRun reference = Chat(*uncached_, mixed);
  ASSERT_TRUE(reference.status.ok()) << reference.status.error_message();
  EXPECT_EQ(run.ids(), reference.ids());
  EXPECT_EQ(reference.tiles(), 3u);
}

TEST_F(MediaCacheStages, AnUnknownIdAloneIsNotFound) {
  const int encodes = Encodes();
  const ChatRun run = Chat(*cached_, Request({Image("", "never-sent")}));
  EXPECT_EQ(run.status.error_code(), ::grpc::StatusCode::NOT_FOUND) << run.status.error_message();
  EXPECT_NE(run.status.error_message().find(
                "preprocess: image 0 (id 'never-sent'): media id 'never-sent' is not cached; "
                "send the media data"),
            std::string::npos)
      << run.status.error_message();
  // An id sent with other processor options names other preprocessing: not found either.
  ASSERT_TRUE(Chat(*cached_, Request({Image("media/chelsea.png", "chelsea")})).status.ok());
  v1::ChatRequest other = Request({Image("", "chelsea")});
  other.mutable_processor()->set_do_image_splitting(false);
  EXPECT_EQ(Chat(*cached_, other).status.error_code(), ::grpc::StatusCode::NOT_FOUND);
  // A front without a cache knows no ids.
  EXPECT_EQ(Chat(*uncached_, Request({Image("", "chelsea")})).status.error_code(),
            ::grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Encodes(), encodes + 1);  // only the request that sent chelsea.png
}

TEST_F(MediaCacheStages, ACacheTooSmallForAnythingStoresNothingAndChangesNoAnswer) {
  const v1::ChatRequest req = Request({Image("media/messi5.jpg", "messi")});
  const int encodes = Encodes();
  const ChatRun first = Chat(*tiny_, req);
  const ChatRun second = Chat(*tiny_, req);
  ASSERT_TRUE(first.status.ok()) << first.status.error_message();
  ASSERT_TRUE(second.status.ok()) << second.status.error_message();
  EXPECT_EQ(Encodes(), encodes + 2);
  EXPECT_EQ(second.ids(), first.ids());
  EXPECT_EQ(second.tiles(), first.tiles());
  EXPECT_EQ(Metric(*tiny_, "smolserve:media_cache_hits_total"), 0);
  EXPECT_EQ(Metric(*tiny_, "smolserve:media_cache_misses_total"), 2);
  EXPECT_EQ(Metric(*tiny_, "smolserve:media_cache_bytes"), 0);
  const ChatRun by_id = Chat(*tiny_, Request({Image("", "messi")}));
  EXPECT_EQ(by_id.status.error_code(), ::grpc::StatusCode::NOT_FOUND) << by_id.status.error_message();
  // Same answer as the cached front.
  const ChatRun cached = Chat(*cached_, req);
  ASSERT_TRUE(cached.status.ok()) << cached.status.error_message();
  EXPECT_EQ(cached.ids(), first.ids());
}

TEST_F(MediaCacheStages, TextOnlyRequestsHaveNoTiles) {
  const int encodes = Encodes();
  const ChatRun run = Chat(*cached_, Request({}, "Hello there"));
  ASSERT_TRUE(run.status.ok()) << run.status.error_message();
  EXPECT_EQ(run.tiles(), 0u);
  EXPECT_EQ(run.cached_tiles(), 0u);
  EXPECT_EQ(run.ids().size(), 8u);
  EXPECT_EQ(Encodes(), encodes);
}

}  // namespace
}  // namespace smolserve::testing
