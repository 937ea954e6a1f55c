// The front's public HTTP API with the three stages as real processes on loopback, driven by
// clients others wrote: the `openai` npm package (unmodified, through Node) and curl. Checks
// the OpenAI schema end to end, that streamed, non-streamed and gRPC answers agree (ids too),
// errors with their statuses and error JSON — after each of which the stages still serve —,
// API keys and tenant separation, per-tenant limits, media URLs under the fetch policy, and
// that a client leaving mid-stream frees the decoder.
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>

#include <curl/curl.h>
#include <grpcpp/grpcpp.h>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "proto/smolserve/v1/front.grpc.pb.h"
#include "services/preprocess/server/chat_convert.h"
#include "tests/integration/stage_process.h"

namespace smolserve::testing {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;
constexpr char kModelDir[] = "tests/golden/models/tiny-smolvlm2-256m-geometry";
const std::string kModel = std::string("--model=") + kModelDir;
constexpr char kKeyA[] = "sk-test-tenant-a-0123456789abcdef";
constexpr char kKeyB[] = "sk-test-tenant-b-0123456789abcdef";
constexpr char kImage[] = "tests/golden/media/astronaut.png";
constexpr char kVideo[] = "tests/golden/media/Megamind.avi";

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

// Runs a shell command; returns its stdout.
std::string Shell(const std::string& command, int* exit_code = nullptr) {
  FILE* pipe = popen(command.c_str(), "r");
  std::string out;
  char buf[65536];
  while (size_t n = fread(buf, 1, sizeof(buf), pipe)) out.append(buf, n);
  const int rc = pclose(pipe);
  if (exit_code != nullptr) *exit_code = WEXITSTATUS(rc);
  return out;
}

std::string Quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

struct CurlAnswer {
  int status = 0;
  std::string body;
  std::string headers;
};

// curl (the CLI) with a JSON body from a file; status, headers and body.
CurlAnswer Curl(const std::string& url, const std::string& body, const std::string& key,
                const std::string& extra = "") {
  const std::string dir = TmpDir();
  static int n = 0;
  const std::string body_file = absl::StrCat(dir, "/curl_body_", n, ".json");
  const std::string head_file = absl::StrCat(dir, "/curl_head_", n++, ".txt");
  std::ofstream(body_file, std::ios::binary) << body;
  std::string cmd = absl::StrCat("curl -sS --noproxy '*' -o - -D ", head_file,
                                 " -w '\\n%{http_code}' -m 120 ", extra, " ");
  if (!body.empty()) absl::StrAppend(&cmd, "-H 'Content-Type: application/json' --data-binary @", body_file, " ");
  if (!key.empty()) absl::StrAppend(&cmd, "-H ", Quote(absl::StrCat("Authorization: Bearer ", key)), " ");
  absl::StrAppend(&cmd, Quote(url));
  std::string out = Shell(cmd);
  CurlAnswer a;
  const size_t nl = out.rfind('\n');
  a.status = std::atoi(out.substr(nl + 1).c_str());
  a.body = out.substr(0, nl);
  a.headers = ReadFile(head_file);
  return a;
}

json ImageMessages(const std::string& url, const std::string& text = "What is it?") {
  return json::array({{{"role", "user"},
                       {"content", {{{"type", "image_url"}, {"image_url", {{"url", url}}}},
                                    {{"type", "text"}, {"text", text}}}}}});
}

std::string DataUri(const std::string& path, const std::string& mime) {
  return absl::StrCat("data:", mime, ";base64,", absl::Base64Escape(ReadFile(path)));
}

// The value of the series `name` whose labels include `labels` in a Prometheus text scrape
// (whatever the label order), or -1.
double SeriesValue(const std::string& text, const std::string& name,
                   const std::map<std::string, std::string>& labels) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(name + "{", 0) != 0) continue;
    const size_t close = line.find('}');
    std::map<std::string, std::string> have;
    for (absl::string_view kv : absl::StrSplit(line.substr(name.size() + 1, close - name.size() - 1), ',')) {
      const size_t eq = kv.find('=');
      if (eq == absl::string_view::npos) continue;
      have[std::string(kv.substr(0, eq))] = std::string(kv.substr(eq + 2, kv.size() - eq - 3));
    }
    bool match = true;
    for (const auto& [k, v] : labels) match = match && have.count(k) && have[k] == v;
    if (match) return std::stod(line.substr(close + 2));
  }
  return -1;
}

double Metric(const StageProcess& stage, const std::string& name,
              const std::map<std::string, std::string>& labels) {
  CurlAnswer a = Curl(absl::StrCat("http://127.0.0.1:", stage.metrics_port(), "/metrics"), "", "");
  return SeriesValue(a.body, name, labels);
}

class HttpApi : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string keys = TmpDir() + "/api_keys";
    std::ofstream(keys) << "# test keys\n" << kKeyA << " tenant-a\n" << kKeyB << " tenant-b\n";
    vision_ = new StageProcess("vision", "services/vision/vision_server", {kModel, "--threads=1"});
    decoder_ = new StageProcess("decoder", "services/decoder/decoder_server", {kModel, "--threads=1"});
    ASSERT_TRUE(vision_->Start()) << vision_->Log();
    ASSERT_TRUE(decoder_->Start()) << decoder_->Log();
    front_ = new StageProcess(
        "front", "services/preprocess/preprocess_server",
        {kModel, "--vision_target=" + vision_->address(), "--decoder_target=" + decoder_->address(),
         "--api_keys_file=" + keys, "--served_model_name=HuggingFaceTB/SmolVLM2-256M-Video-Instruct",
         "--http_max_body_bytes=4000000", "--tenant_requests_per_minute=1000"});
    ASSERT_TRUE(front_->Start()) << front_->Log();
    base_ = absl::StrCat("http://127.0.0.1:", front_->http_port());
  }
  static void TearDownTestSuite() {
    delete front_;
    delete vision_;
    delete decoder_;
  }

  // A request that must still work after each refusal: the stages stayed up.
  static void ExpectStillServes() {
    json body = {{"model", "HuggingFaceTB/SmolVLM2-256M-Video-Instruct"},
                 {"messages", {{{"role", "user"}, {"content", "hello"}}}},
                 {"max_tokens", 2}};
    CurlAnswer a = Curl(base_ + "/v1/chat/completions", body.dump(), kKeyA);
    EXPECT_EQ(a.status, 200) << a.body;
  }

  static v1::ChatResponse::ChatResult GrpcChat(const json& request_json, const std::string& key) {
    auto chat = preprocess::ParseChatRequest(request_json.dump());
    EXPECT_TRUE(chat.ok()) << chat.status();
    preprocess::MediaAccess access;
    auto proto = preprocess::ChatRequestToProto(*chat, access);
    EXPECT_TRUE(proto.ok()) << proto.status();
    auto stub = v1::Front::NewStub(
        ::grpc::CreateChannel(front_->address(), ::grpc::InsecureChannelCredentials()));
    ::grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", absl::StrCat("Bearer ", key));
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
    auto reader = stub->Chat(&ctx, *proto);
    v1::ChatResponse msg;
    v1::ChatResponse::ChatResult result;
    while (reader->Read(&msg)) {
      if (msg.has_result()) result = msg.result();
    }
    ::grpc::Status s = reader->Finish();
    EXPECT_TRUE(s.ok()) << s.error_message();
    return result;
  }

  static StageProcess *vision_, *decoder_, *front_;
  static std::string base_;
};
StageProcess* HttpApi::vision_ = nullptr;
StageProcess* HttpApi::decoder_ = nullptr;
StageProcess* HttpApi::front_ = nullptr;
std::string HttpApi::base_;

TEST_F(HttpApi, TheOpenAiNodeSdkTalksToIt) {
  const char* home = std::getenv("HOME");
  const std::string tools = std::getenv("SMOLSERVE_TOOLS") ? std::getenv("SMOLSERVE_TOOLS")
                                                           : std::string(home ? home : "") + "/.cache/smolserve/tools";
  const std::string node_path = tools + "/openai-node/node_modules";
  ASSERT_EQ(access((node_path + "/openai").c_str(), R_OK), 0)
      << "the openai npm package is missing: ./smolserve setup (tests/tools/setup_test_tools.sh)";
  int rc = 0;
  // ESM resolves packages from the script's folder: run a copy next to the node_modules.
  const std::string script = tools + "/openai-node/openai_client.mjs";
  std::ofstream(script) << ReadFile("tests/integration/openai_client.mjs");
  const std::string out = Shell(absl::StrCat("node ", script, " ", Quote(base_ + "/v1"), " ", kKeyA,
                                             " ", kImage, " ", kVideo, " 2>&1"), &rc);
  ASSERT_EQ(rc, 0) << out;
  const json r = json::parse(out.substr(out.find('{')));
  EXPECT_EQ(r["model"], "HuggingFaceTB/SmolVLM2-256M-Video-Instruct");
  const json& plain = r["plain"];
  EXPECT_EQ(plain["object"], "chat.completion");
  EXPECT_EQ(plain["id"].get<std::string>().rfind("chatcmpl-", 0), 0u);
  EXPECT_GT(plain["created"].get<int64_t>(), 1700000000);
  EXPECT_EQ(plain["role"], "assistant");
  EXPECT_EQ(plain["finish_reason"], "length");
  EXPECT_EQ(plain["usage"]["completion_tokens"], 12);
  EXPECT_EQ(plain["usage"]["total_tokens"].get<int>(),
            plain["usage"]["prompt_tokens"].get<int>() + 12);
  EXPECT_EQ(plain["token_ids"].size(), 12u);
  // Streamed == non-streamed (greedy), usage in the last chunk.
  const json& streamed = r["streamed"];
  EXPECT_EQ(streamed["text"], plain["text"]);
  EXPECT_EQ(streamed["token_ids"], plain["token_ids"]);
  EXPECT_EQ(streamed["finish_reason"], "length");
  EXPECT_EQ(streamed["role"], "assistant");
  EXPECT_EQ(streamed["usage"]["prompt_tokens"], plain["usage"]["prompt_tokens"]);
  EXPECT_EQ(streamed["usage"]["completion_tokens"], plain["usage"]["completion_tokens"]);
  // The same prompt again: the decoder reused the KV of its whole 256-token prefill chunks
  // (prefix cache), reported as OpenAI reports cached prompt tokens.
  EXPECT_EQ(plain["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
  EXPECT_EQ(streamed["usage"]["prompt_tokens_details"]["cached_tokens"].get<int>(),
            (plain["usage"]["prompt_tokens"].get<int>() - 1) / 256 * 256);
  EXPECT_GE(streamed["chunks"].get<int>(), 3);
  // == the gRPC Front.Chat answer to the same request, ids too.
  const json grpc_request = {
      {"messages", {{{"role", "user"},
                     {"content", {{{"type", "image"}, {"path", kImage}},
                                  {{"type", "text"}, {"text", "Can you describe this image?"}}}}}}},
      {"generation", {{"max_new_tokens", 12}, {"temperature", 0}, {"seed", 1}}}};
  const v1::ChatResponse::ChatResult g = GrpcChat(grpc_request, kKeyA);
  ASSERT_EQ(g.choices_size(), 1);
  EXPECT_EQ(g.choices(0).text(), plain["text"].get<std::string>());
  EXPECT_EQ(std::vector<int>(g.choices(0).token_ids().begin(), g.choices(0).token_ids().end()),
            plain["token_ids"].get<std::vector<int>>());
  EXPECT_EQ(static_cast<int>(g.choices(0).usage().prompt_tokens()), plain["usage"]["prompt_tokens"].get<int>());
  // A video, a seeded sampled text question twice, n = 2.
  EXPECT_GT(r["video"]["usage"]["prompt_tokens"].get<int>(), 64);
  EXPECT_EQ(r["seeded"]["a"], r["seeded"]["b"]);
  EXPECT_EQ(r["n2"]["choices"], 2);
  EXPECT_EQ(r["n2"]["indexes"], json({0, 1}));
  // The SDK's typed errors.
  const json& e = r["errors"];
  EXPECT_EQ(e["wrong_key"]["status"], 401) << e.dump();
  EXPECT_EQ(e["wrong_key"]["name"], "AuthenticationError");
  EXPECT_EQ(e["unknown_model"]["status"], 404);
  EXPECT_EQ(e["unknown_model"]["name"], "NotFoundError");
  EXPECT_EQ(e["bad_top_p"]["status"], 400);
  EXPECT_EQ(e["bad_top_p"]["name"], "BadRequestError");
  EXPECT_EQ(e["tools"]["status"], 400);
  ExpectStillServes();
}

TEST_F(HttpApi, CurlStreamsServerSentEvents) {
  json body = {{"model", "HuggingFaceTB/SmolVLM2-256M-Video-Instruct"},
               {"messages", ImageMessages(DataUri(kImage, "image/png"))},
               {"max_tokens", 6}, {"temperature", 0}, {"stream", true},
               {"stream_options", {{"include_usage", true}}}};
  CurlAnswer a = Curl(base_ + "/v1/chat/completions", body.dump(), kKeyB, "-N");
  ASSERT_EQ(a.status, 200) << a.body;
  EXPECT_NE(a.headers.find("text/event-stream"), std::string::npos) << a.headers;
  std::vector<std::string> events;
  for (absl::string_view line : absl::StrSplit(a.body, '\n', absl::SkipEmpty())) {
    ASSERT_EQ(line.substr(0, 6), "data: ") << a.body;
    events.emplace_back(line.substr(6));
  }
  ASSERT_GE(events.size(), 4u);
  EXPECT_EQ(events.back(), "[DONE]");
  std::string text;
  for (size_t i = 0; i + 1 < events.size(); ++i) {
    const json chunk = json::parse(events[i]);
    EXPECT_EQ(chunk["object"], "chat.completion.chunk");
    for (const json& c : chunk["choices"]) {
      if (c["delta"].contains("content")) text += c["delta"]["content"].get<std::string>();
    }
  }
  const json usage = json::parse(events[events.size() - 2]);
  EXPECT_TRUE(usage["choices"].empty());
  EXPECT_EQ(usage["usage"]["completion_tokens"], 6);
  body["stream"] = false;
  body.erase("stream_options");
  CurlAnswer b = Curl(base_ + "/v1/chat/completions", body.dump(), kKeyB);
  ASSERT_EQ(b.status, 200) << b.body;
  EXPECT_EQ(json::parse(b.body)["choices"][0]["message"]["content"], text);
}

struct Refusal {
  std::string name;
  std::string body;
  std::string key;
  int status;
  std::string type;
};

TEST_F(HttpApi, BadRequestsGetTheirStatusAndErrorJsonAndTheStagesStayUp) {
  const std::string model = "HuggingFaceTB/SmolVLM2-256M-Video-Instruct";
  const json hi = {{{"role", "user"}, {"content", "hi"}}};
  std::vector<Refusal> cases = {
      {"bad JSON", "{\"model\": ", kKeyA, 400, "invalid_request_error"},
      {"a wrong type", json({{"model", model}, {"messages", hi}, {"max_tokens", "ten"}}).dump(), kKeyA,
       422, "invalid_request_error"},
      {"an unknown model", json({{"model", "gpt-4o"}, {"messages", hi}}).dump(), kKeyA, 404,
       "not_found_error"},
      {"a too-large body", json({{"model", model}, {"messages", hi}, {"pad", std::string(5000000, 'x')}}).dump(),
       kKeyA, 413, "invalid_request_error"},
      {"a missing key", json({{"model", model}, {"messages", hi}}).dump(), "", 401, "authentication_error"},
      {"a wrong key", json({{"model", model}, {"messages", hi}}).dump(), "sk-wrong-key-0000000000000000", 401,
       "authentication_error"},
      {"a private-address URL",
       json({{"model", model}, {"messages", ImageMessages("http://169.254.169.254/latest/meta-data/x.png")}}).dump(),
       kKeyA, 403, "permission_error"},
      {"a loopback URL", json({{"model", model}, {"messages", ImageMessages("http://127.0.0.1:1/x.png")}}).dump(),
       kKeyA, 403, "permission_error"},
      {"bad image bytes", json({{"model", model}, {"messages", ImageMessages("data:image/png;base64,AAAA")}}).dump(),
       kKeyA, 400, "invalid_request_error"},
      {"too many tokens", json({{"model", model}, {"messages", hi}, {"max_tokens", 1000000}}).dump(), kKeyA, 400,
       "invalid_request_error"},
  };
  for (const Refusal& c : cases) {
    SCOPED_TRACE(c.name);
    CurlAnswer a = Curl(base_ + "/v1/chat/completions", c.body, c.key);
    EXPECT_EQ(a.status, c.status) << a.body;
    json j = json::parse(a.body, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << a.body;
    ASSERT_TRUE(j.contains("error")) << a.body;
    EXPECT_EQ(j["error"]["type"], c.type) << a.body;
    EXPECT_TRUE(j["error"]["message"].is_string());
    EXPECT_TRUE(j["error"].contains("param"));
    EXPECT_TRUE(j["error"].contains("code"));
    ExpectStillServes();
  }
  // Routes and methods.
  EXPECT_EQ(Curl(base_ + "/v1/nothing", "", kKeyA).status, 404);
  EXPECT_EQ(Curl(base_ + "/v1/chat/completions", "", kKeyA, "-X GET").status, 405);
  EXPECT_EQ(Curl(base_ + "/v1/models", "", "").status, 401);
  CurlAnswer models = Curl(base_ + "/v1/models", "", kKeyB);
  ASSERT_EQ(models.status, 200);
  EXPECT_EQ(json::parse(models.body)["data"][0]["id"], model);
  EXPECT_TRUE(json::parse(models.body)["data"][0]["revision"].is_string());
  // The stages have answered by now: the weight revision the decoder reported (computed from
  // the checkpoint at load) is shown.
  const json served = json::parse(models.body)["data"][0].value("served_revisions", json::object());
  EXPECT_TRUE(served.contains("decoder") && served["decoder"].is_string() &&
              !served["decoder"].get<std::string>().empty())
      << models.body;
  CurlAnswer health = Curl(base_ + "/health", "", "");  // no key needed
  EXPECT_EQ(health.status, 200) << health.body;
}

TEST_F(HttpApi, TenantsCannotReachEachOthersMedia) {
  auto grpc_with_id = [&](const std::string& key, bool with_bytes) {
    json item = {{"type", "image"}, {"id", "the-cat"}};
    if (with_bytes) item["path"] = kImage;
    auto chat = preprocess::ParseChatRequest(
        json({{"messages", {{{"role", "user"}, {"content", {item, {{"type", "text"}, {"text", "?"}}}}}}},
              {"generation", {{"max_new_tokens", 1}}}}).dump());
    auto proto = preprocess::ChatRequestToProto(*chat, preprocess::MediaAccess());
    auto stub = v1::Front::NewStub(::grpc::CreateChannel(front_->address(), ::grpc::InsecureChannelCredentials()));
    ::grpc::ClientContext ctx;
    if (!key.empty()) ctx.AddMetadata("authorization", absl::StrCat("Bearer ", key));
    auto reader = stub->Chat(&ctx, *proto);
    v1::ChatResponse msg;
    while (reader->Read(&msg)) {
    }
    return reader->Finish();
  };
  EXPECT_EQ(grpc_with_id("", true).error_code(), ::grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(grpc_with_id("sk-wrong-key-0000000000000000", true).error_code(), ::grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(grpc_with_id(kKeyA, true).ok());
  EXPECT_TRUE(grpc_with_id(kKeyA, false).ok());  // tenant a: its id alone works
  ::grpc::Status b = grpc_with_id(kKeyB, false);  // tenant b: not its media
  EXPECT_EQ(b.error_code(), ::grpc::StatusCode::NOT_FOUND) << b.error_message();
}

TEST_F(HttpApi, AClientLeavingMidStreamFreesTheDecoder) {
  const std::map<std::string, std::string> cancelled = {{"stage", "decoder"}, {"code", "CANCELLED"}};
  const double cancelled_before = Metric(*decoder_, "smolserve:request_failure_total", cancelled);
  json body = {{"messages", {{{"role", "user"}, {"content", "Count to a million."}}}},
               {"max_tokens", 4000}, {"ignore_eos", true}, {"stream", true}};
  // libcurl: read the first chunk, then hang up.
  CURL* c = curl_easy_init();
  const std::string url = base_ + "/v1/chat/completions";
  const std::string payload = body.dump();
  struct curl_slist* headers = nullptr;
  headers = curl_slist_append(headers, "Content-Type: application/json");
  headers = curl_slist_append(headers, (std::string("Authorization: Bearer ") + kKeyA).c_str());
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, payload.c_str());
  int got = 0;
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &got);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, +[](char*, size_t size, size_t n, void* p) -> size_t {
    ++*static_cast<int*>(p);
    return *static_cast<int*>(p) >= 3 ? 0 : size * n;  // 0: abort the transfer
  });
  curl_easy_perform(c);
  curl_slist_free_all(headers);
  curl_easy_cleanup(c);
  ASSERT_GE(got, 3);
  const auto end = Clock::now() + std::chrono::seconds(10);
  double running = -1;
  while (Clock::now() < end) {
    running = Metric(*decoder_, "smolserve:num_requests_running", {{"stage", "decoder"}});
    if (running == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(running, 0) << "the decoder still runs the abandoned generation";
  EXPECT_EQ(Metric(*decoder_, "smolserve:request_failure_total", cancelled), cancelled_before + 1);
  ExpectStillServes();
}

// Media URLs: fetched from a real HTTP server on loopback when the policy allows it; refused
// without the allow-list; the bound on bytes applies while downloading.
TEST(HttpApiMediaUrls, FetchedUnderThePolicy) {
  const std::string root = TmpDir() + "/media_root";
  mkdir(root.c_str(), 0755);
  std::ofstream(root + "/astronaut.png", std::ios::binary) << ReadFile(kImage);
  const std::string port_file = TmpDir() + "/media_server.port";
  unlink(port_file.c_str());
  const pid_t server = fork();
  if (server == 0) {
    execlp("python3", "python3", "tests/tools/media_http_server.py", "--port", "0", "--port_file",
           port_file.c_str(), "--root", root.c_str(), nullptr);
    _exit(127);
  }
  int port = 0;
  for (int i = 0; i < 200 && port == 0; ++i) {
    std::ifstream(port_file) >> port;
    if (port == 0) std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  ASSERT_GT(port, 0);
  StageProcess vision("vision", "services/vision/vision_server", {kModel, "--threads=1"});
  StageProcess decoder("decoder", "services/decoder/decoder_server", {kModel, "--threads=1"});
  ASSERT_TRUE(vision.Start());
  ASSERT_TRUE(decoder.Start());
  StageProcess front("front", "services/preprocess/preprocess_server",
                     {kModel, "--vision_target=" + vision.address(), "--decoder_target=" + decoder.address(),
                      "--media_url_allow=127.0.0.1/32", "--max_encoded_bytes=3000000"});
  ASSERT_TRUE(front.Start()) << front.Log();
  const std::string api = absl::StrCat("http://127.0.0.1:", front.http_port(), "/v1/chat/completions");
  const std::string files = absl::StrCat("http://127.0.0.1:", port);
  auto ask = [&](const std::string& url) {
    return Curl(api, json({{"messages", ImageMessages(url)}, {"max_tokens", 2}}).dump(), "");
  };
  CurlAnswer ok = ask(files + "/files/astronaut.png");
  EXPECT_EQ(ok.status, 200) << ok.body;
  EXPECT_EQ(ask(files + "/status/404").status, 400);
  EXPECT_EQ(ask(files + "/text").status, 400);  // not media
  EXPECT_EQ(ask(files + "/big?bytes=50000000").status, 413);
  // A redirect to loopback is allowed here (127.0.0.1/32 is on the allow-list), one to a
  // link-local address is not.
  EXPECT_EQ(ask(files + "/redirect?to=" + files + "/files/astronaut.png").status, 200);
  EXPECT_EQ(ask(files + "/redirect?to=http://169.254.169.254/x.png").status, 403);
  EXPECT_EQ(Curl(api, json({{"messages", ImageMessages("file:///etc/passwd")}}).dump(), "").status, 403);
  // The same server, without the allow-list: loopback is refused.
  StageProcess strict("front_strict", "services/preprocess/preprocess_server",
                      {kModel, "--vision_target=" + vision.address(), "--decoder_target=" + decoder.address()});
  ASSERT_TRUE(strict.Start());
  CurlAnswer refused = Curl(absl::StrCat("http://127.0.0.1:", strict.http_port(), "/v1/chat/completions"),
                            json({{"messages", ImageMessages(files + "/files/astronaut.png")}}).dump(), "");
  EXPECT_EQ(refused.status, 403) << refused.body;
  kill(server, SIGTERM);
  int st = 0;
  waitpid(server, &st, 0);
}

// Per-tenant rate limits: over the limit, 429 with Retry-After (HTTP) and
// RESOURCE_EXHAUSTED (gRPC), per tenant.
TEST(HttpApiLimits, PerTenantRequestsPerMinute) {
  const std::string keys = TmpDir() + "/rate_keys";
  std::ofstream(keys) << kKeyA << " a\n" << kKeyB << " b\n";
  StageProcess vision("vision", "services/vision/vision_server", {kModel, "--threads=1"});
  StageProcess decoder("decoder", "services/decoder/decoder_server", {kModel, "--threads=1"});
  ASSERT_TRUE(vision.Start());
  ASSERT_TRUE(decoder.Start());
  StageProcess front("front", "services/preprocess/preprocess_server",
                     {kModel, "--vision_target=" + vision.address(), "--decoder_target=" + decoder.address(),
                      "--api_keys_file=" + keys, "--tenant_requests_per_minute=2"});
  ASSERT_TRUE(front.Start()) << front.Log();
  const std::string api = absl::StrCat("http://127.0.0.1:", front.http_port(), "/v1/chat/completions");
  const std::string body = json({{"messages", {{{"role", "user"}, {"content", "hi"}}}}, {"max_tokens", 1}}).dump();
  EXPECT_EQ(Curl(api, body, kKeyA).status, 200);
  EXPECT_EQ(Curl(api, body, kKeyA).status, 200);
  CurlAnswer third = Curl(api, body, kKeyA);
  EXPECT_EQ(third.status, 429) << third.body;
  EXPECT_NE(third.headers.find("Retry-After: "), std::string::npos) << third.headers;
  EXPECT_EQ(json::parse(third.body)["error"]["type"], "rate_limit_error");
  EXPECT_EQ(Curl(api, body, kKeyB).status, 200);  // another tenant is not affected
  EXPECT_EQ(Metric(front, "smolserve:tenant_requests_total", {{"tenant", "a"}, {"outcome", "rate_limited"}}), 1);
  EXPECT_EQ(Metric(front, "smolserve:tenant_requests_total", {{"tenant", "a"}, {"outcome", "admitted"}}), 2);
  EXPECT_EQ(Metric(front, "smolserve:http_requests_total", {{"route", "chat_completions"}, {"code", "429"}}), 1);
  EXPECT_EQ(Metric(front, "smolserve:http_requests_total", {{"route", "chat_completions"}, {"code", "200"}}), 3);
}

}  // namespace
}  // namespace smolserve::testing
