// The chat pipeline over fake stage clients (what reaches the stages, in what order, and what
// comes back): validation happens before any media is read or any stage is called; a batch's
// conversations run on the pool and their deltas reach the sink one at a time; the media
// cache keeps encoded media per tenant; cancellation and errors carry their stage.
#include "services/preprocess/core/chat_pipeline.h"

#include <atomic>
#include <mutex>
#include <set>
#include <thread>

#include <ATen/ATen.h>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace smolserve::preprocess {
namespace {

using nlohmann::json;
constexpr char kModel[] = "tests/golden/models/tiny-smolvlm2-256m-geometry";

// Answers each tile with a constant row equal to the tile's mean pixel (so tests can tell
// tiles apart), counting calls and tiles.
class FakeVision : public VisionClient {
 public:
  absl::StatusOr<EncodeOutcome> Encode(const EncodeTiles& request,
                                       const CallContext& ctx) override {
    const at::Tensor pixels = request.pixels.to(at::kFloat);
    calls.fetch_add(1);
    tiles.fetch_add(static_cast<int>(pixels.size(0)));
    if (fail) return absl::UnavailableError("connection refused");
    EncodeOutcome out;
    out.image_hidden_states = at::zeros({pixels.size(0), 64, 64});
    for (int64_t i = 0; i < pixels.size(0); ++i) {
      out.image_hidden_states[i].fill_(pixels[i].mean().item<float>());
    }
    out.wire_bytes = out.image_hidden_states.nbytes();
    return out;
  }
  std::atomic<int> calls{0}, tiles{0};
  bool fail = false;
};

// Streams "<b>:<i>" pieces for max_new_tokens tokens (b = the prompt length, to tell
// conversations apart); records what it was asked.
class FakeDecoder : public DecoderClient {
 public:
  absl::StatusOr<GenerationOutcome> Generate(const GenerateCall& call, const CallContext& ctx,
                                             const std::function<void(const TokenDelta&)>& on_delta) override {
    {
      std::lock_guard<std::mutex> lock(mu);
      prompts.push_back(call.input_ids);
      images.push_back(call.image_hidden_states);
      seeds.push_back(call.generation.seed.value_or(0));
      request_ids.push_back(ctx.request_id);
    }
    const int64_t n = call.generation.max_new_tokens.value_or(3);
    for (int64_t i = 0; i < n; ++i) {
      if (ctx.cancelled()) return absl::CancelledError("cancelled");
      on_delta(TokenDelta{{static_cast<int32_t>(i)}, absl::StrCat("t", i, " ")});
    }
    GenerationOutcome out;
    out.finish_reason = FinishReason::kLength;
    out.prompt_tokens = static_cast<int64_t>(call.input_ids.size());
    out.completion_tokens = n;
    return out;
  }
  std::mutex mu;
  std::vector<std::vector<int32_t>> prompts;
  std::vector<at::Tensor> images;
  std::vector<uint64_t> seeds;
  std::vector<std::string> request_ids;
};

class ChatPipelineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    PreprocessorOptions po;
    po.model_dir = kModel;
    auto p = Preprocessor::Create(po);
    ASSERT_TRUE(p.ok()) << p.status();
    preprocessor_ = *std::move(p);
    options_.media.base_dir = "tests/golden";
    options_.log_requests = false;
  }

  ChatPipeline Make(MediaCache* cache = nullptr, BoundedExecutor* pool = nullptr) {
    return ChatPipeline(options_, preprocessor_.get(), &vision_, &decoder_, cache, pool, nullptr);
  }

  static ChatRequest Request(const json& j) {
    auto r = ParseChatRequest(j.dump());
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : ChatRequest();
  }

  static json Image(const std::string& path, const std::string& text = "What is it?") {
    return {{{"role", "user"},
             {"content", {{{"type", "image"}, {"path", path}}, {{"type", "text"}, {"text", text}}}}}};
  }

  ChatPipelineOptions options_;
  std::unique_ptr<Preprocessor> preprocessor_;
  FakeVision vision_;
  FakeDecoder decoder_;
};

TEST_F(ChatPipelineTest, StreamsTheAnswerAndReturnsTheResult) {
  ChatPipeline pipeline = Make();
  ChatRequest req = Request({{"messages", Image("media/fruits.jpg")},
                             {"generation", {{"max_new_tokens", 3}}}});
  std::string streamed;
  ChatContext ctx;
  ctx.call.request_id = "r1";
  auto result = pipeline.Run(req, ctx, [&](int index, const TokenDelta& d) {
    EXPECT_EQ(index, 0);
    streamed += d.text;
  });
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->choices.size(), 1u);
  EXPECT_EQ(result->choices[0].text, "t0 t1 t2 ");
  EXPECT_EQ(streamed, result->choices[0].text);
  EXPECT_EQ(result->choices[0].token_ids, (std::vector<int32_t>{0, 1, 2}));
  EXPECT_EQ(result->choices[0].finish_reason, FinishReason::kLength);
  EXPECT_EQ(vision_.calls.load(), 1);
  EXPECT_EQ(result->timings.tiles, vision_.tiles.load());
  EXPECT_EQ(result->choices[0].usage.image_tiles, vision_.tiles.load());
  EXPECT_EQ(result->request_id, "r1");
  // The decoder got the unpadded prompt and one embedding row per tile.
  ASSERT_EQ(decoder_.images.size(), 1u);
  EXPECT_EQ(decoder_.images[0].size(0), vision_.tiles.load());
  EXPECT_EQ(static_cast<int64_t>(decoder_.prompts[0].size()), result->choices[0].usage.prompt_tokens);
}

// Probe finding: a bad top_p was found only after vision ran. Generation values, request size
// and conversation counts are refused before any media is read or any stage is called.
TEST_F(ChatPipelineTest, RefusesBadParametersBeforeReadingMedia) {
  ChatPipeline pipeline = Make();
  auto bad = [&](json gen) {
    ChatRequest req = Request({{"messages", Image("media/no-such-file.jpg")}, {"generation", gen}});
    return pipeline.Run(req, ChatContext(), [](int, const TokenDelta&) {}).status();
  };
  for (const json& gen : {json{{"top_p", 1.5}}, json{{"temperature", -1}}, json{{"top_p", 0}},
                          json{{"max_new_tokens", 0}}, json{{"max_new_tokens", 100000}},
                          json{{"stop", {"a", "b", "c", "d", "e"}}}, json{{"stop", ""}},
                          json{{"repetition_penalty", 0}}}) {
    absl::Status s = bad(gen);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << gen.dump() << " " << s;
    // Not NOT_FOUND: the missing media file was never looked at.
    EXPECT_EQ(s.message().find("no-such-file"), std::string::npos) << s;
  }
  EXPECT_EQ(vision_.calls.load(), 0);
  EXPECT_TRUE(decoder_.prompts.empty());
}

TEST_F(ChatPipelineTest, BoundsConversationsMessagesAndText) {
  options_.max_conversations = 2;
  options_.max_text_bytes = 1000;
  options_.max_messages = 3;
  ChatPipeline pipeline = Make();
  json three = json::array();
  for (int i = 0; i < 3; ++i) three.push_back(Image("media/fruits.jpg"));
  absl::Status s = pipeline.Validate(Request({{"conversations", three}}), ChatContext());
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  s = pipeline.Validate(Request({{"messages", Image("media/fruits.jpg", std::string(2000, 'x'))}}),
                        ChatContext());
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  json many = json::array();
  for (int i = 0; i < 4; ++i) many.push_back({{"role", "user"}, {"content", "hi"}});
  s = pipeline.Validate(Request({{"messages", many}}), ChatContext());
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  ChatContext long_id;
  long_id.call.request_id = std::string(200, 'r');
  s = pipeline.Validate(Request({{"messages", Image("media/fruits.jpg")}}), long_id);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
}

TEST_F(ChatPipelineTest, BatchesRunOnThePoolWithSerialisedDeltas) {
  BoundedExecutor pool(4, 0);
  ChatPipeline pipeline = Make(nullptr, &pool);
  json convs = json::array();
  for (const char* text : {"a", "a b", "a b c", "a b c d"}) {
    convs.push_back({{{"role", "user"}, {"content", {{{"type", "text"}, {"text", text}}}}}});
  }
  ChatRequest req = Request({{"conversations", convs}, {"generation", {{"max_new_tokens", 5}, {"seed", 7}}}});
  req.distinct_seeds = true;
  std::atomic<int> in_sink{0};
  std::atomic<bool> overlapped{false};
  std::map<int, std::string> streamed;
  ChatContext ctx;
  ctx.call.request_id = "batch";
  auto result = pipeline.Run(req, ctx, [&](int index, const TokenDelta& d) {
    if (in_sink.fetch_add(1) != 0) overlapped = true;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
    streamed[index] += d.text;
    in_sink.fetch_sub(1);
  });
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_FALSE(overlapped.load());
  ASSERT_EQ(result->choices.size(), 4u);
  for (int b = 0; b < 4; ++b) {
    EXPECT_EQ(result->choices[b].index, b);
    EXPECT_EQ(streamed[b], result->choices[b].text);
  }
  // Each conversation its own seed (OpenAI's n), and its own request id.
  std::set<uint64_t> seeds(decoder_.seeds.begin(), decoder_.seeds.end());
  EXPECT_EQ(seeds, (std::set<uint64_t>{7, 8, 9, 10}));
  std::set<std::string> ids(decoder_.request_ids.begin(), decoder_.request_ids.end());
  EXPECT_EQ(ids, (std::set<std::string>{"batch/0", "batch/1", "batch/2", "batch/3"}));
}

TEST_F(ChatPipelineTest, TheMediaCacheIsPerTenant) {
  MediaCache cache(256 << 20);
  ChatPipeline pipeline = Make(&cache);
  auto run = [&](const std::string& tenant) {
    ChatRequest req = Request({{"messages", Image("media/fruits.jpg")},
                               {"generation", {{"max_new_tokens", 1}}}});
    req.prepare.tenant = tenant;
    auto r = pipeline.Run(req, ChatContext(), [](int, const TokenDelta&) {});
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->timings.cached_tiles : -1;
  };
  EXPECT_EQ(run("a"), 0);
  EXPECT_EQ(vision_.calls.load(), 1);
  EXPECT_GT(run("a"), 0);  // the same tenant: from the cache, vision not called
  EXPECT_EQ(vision_.calls.load(), 1);
  EXPECT_EQ(run("b"), 0);  // another tenant: encoded again
  EXPECT_EQ(vision_.calls.load(), 2);
  // A media id of tenant a is not visible to tenant b.
  auto by_id = [&](const std::string& tenant, bool with_bytes) {
    json item = {{"type", "image"}, {"id", "cat"}};
    if (with_bytes) item["path"] = "media/fruits.jpg";
    ChatRequest req = Request({{"messages", {{{"role", "user"}, {"content", {item}}}}},
                               {"generation", {{"max_new_tokens", 1}}}});
    req.prepare.tenant = tenant;
    return pipeline.Run(req, ChatContext(), [](int, const TokenDelta&) {}).status();
  };
  EXPECT_TRUE(by_id("a", true).ok());
  EXPECT_TRUE(by_id("a", false).ok());
  EXPECT_EQ(by_id("b", false).code(), absl::StatusCode::kNotFound);
}

TEST_F(ChatPipelineTest, CachedAndFreshEmbeddingsArriveInPromptOrder) {
  MediaCache cache(256 << 20);
  ChatPipeline pipeline = Make(&cache);
  auto run = [&](const json& messages) {
    ChatRequest req = Request({{"messages", messages}, {"generation", {{"max_new_tokens", 1}}}});
    auto r = pipeline.Run(req, ChatContext(), [](int, const TokenDelta&) {});
    EXPECT_TRUE(r.ok()) << r.status();
  };
  json two = {{{"role", "user"},
               {"content", {{{"type", "image"}, {"path", "media/fruits.jpg"}},
                            {{"type", "image"}, {"path", "media/baboon.jpg"}},
                            {{"type", "text"}, {"text", "Compare"}}}}}};
  run(two);
  const at::Tensor fresh = decoder_.images.back().clone();
  run(Image("media/fruits.jpg"));  // caches nothing new
  run(two);                        // both from the cache now
  EXPECT_TRUE(at::equal(decoder_.images.back(), fresh));
}

TEST_F(ChatPipelineTest, StageErrorsNameTheStage) {
  ChatPipeline pipeline = Make();
  vision_.fail = true;
  auto s = pipeline.Run(Request({{"messages", Image("media/fruits.jpg")}}), ChatContext(),
                        [](int, const TokenDelta&) {}).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(s.message().rfind("vision: ", 0), 0u) << s;
  s = pipeline.Run(Request({{"messages", Image("media/nope.jpg")}}), ChatContext(),
                   [](int, const TokenDelta&) {}).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(s.message().rfind("preprocess: ", 0), 0u) << s;
}

TEST_F(ChatPipelineTest, CancellationStopsTheGeneration) {
  ChatPipeline pipeline = Make();
  CancellationToken token;
  ChatContext ctx;
  ctx.call.cancel = &token;
  ChatRequest req = Request({{"messages", {{{"role", "user"}, {"content", "hi"}}}},
                             {"generation", {{"max_new_tokens", 50}}}});
  int deltas = 0;
  auto r = pipeline.Run(req, ctx, [&](int, const TokenDelta&) {
    if (++deltas == 3) token.Cancel();
  });
  EXPECT_EQ(r.status().code(), absl::StatusCode::kCancelled) << r.status();
  EXPECT_EQ(deltas, 3);
}

}  // namespace
}  // namespace smolserve::preprocess
