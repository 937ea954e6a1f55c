// The stages' /metrics scraped by a real Prometheus server (Debian's) on loopback: the
// series the autoscalers and dashboards use exist and move under load.
#include <curl/curl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <future>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "proto/smolserve/v1/front.grpc.pb.h"
#include "tests/integration/stage_process.h"

namespace smolserve::testing {
namespace {

constexpr char kModel[] = "--model=tests/golden/models/tiny-smolvlm2-256m-geometry";

size_t Append(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

std::string HttpGet(const std::string& url, long* code = nullptr) {
  std::string body;
  CURL* c = curl_easy_init();
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, Append);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
  curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
  const CURLcode rc = curl_easy_perform(c);
  long http = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &http);
  curl_easy_cleanup(c);
  if (code) *code = rc == CURLE_OK ? http : -1;
  return body;
}

std::string UrlEncode(const std::string& s) {
  CURL* c = curl_easy_init();
  char* e = curl_easy_escape(c, s.c_str(), static_cast<int>(s.size()));
  std::string out(e);
  curl_free(e);
  curl_easy_cleanup(c);
  return out;
}

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

// Metric family names in a Prometheus text exposition.
std::set<std::string> MetricNames(const std::string& text) {
  std::set<std::string> names;
  std::istringstream in(text);
  std::string line;
  static const std::regex kType("^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) ");
  std::smatch m;
  while (std::getline(in, line)) {
    if (std::regex_search(line, m, kType)) names.insert(m[1]);
  }
  return names;
}

class PrometheusServer {
 public:
  bool Start(const std::vector<int>& metrics_ports) {
    const char* tmp = std::getenv("TEST_TMPDIR");
    dir_ = std::string(tmp ? tmp : "/tmp") + "/prom";
    mkdir(dir_.c_str(), 0755);
    std::ofstream cfg(dir_ + "/prometheus.yml");
    cfg << "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        << "scrape_configs:\n  - job_name: smolserve\n    static_configs:\n      - targets: [";
    for (size_t i = 0; i < metrics_ports.size(); ++i) {
      cfg << (i ? ", " : "") << "'127.0.0.1:" << metrics_ports[i] << "'";
    }
    cfg << "]\n";
    cfg.close();
    port_ = FreePort();
    pid_ = fork();
    if (pid_ == 0) {
      const std::string log = dir_ + "/prometheus.log";
      freopen(log.c_str(), "w", stderr);
      execl("/usr/bin/prometheus", "prometheus", ("--config.file=" + dir_ + "/prometheus.yml").c_str(),
            ("--storage.tsdb.path=" + dir_ + "/data").c_str(),
            ("--web.listen-address=127.0.0.1:" + std::to_string(port_)).c_str(), nullptr);
      _exit(127);
    }
    for (int i = 0; i < 300; ++i) {
      long code = 0;
      HttpGet(Url("/-/ready"), &code);
      if (code == 200) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }
  ~PrometheusServer() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      waitpid(pid_, nullptr, 0);
    }
  }
  std::string Url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  // The first sample value of an instant query, or NaN.
  double Query(const std::string& promql) const {
    const std::string body = HttpGet(Url("/api/v1/query?query=" + UrlEncode(promql)));
    auto j = nlohmann::json::parse(body, nullptr, false);
    if (j.is_discarded() || j["status"] != "success" || j["data"]["result"].empty()) return NAN;
    return std::stod(j["data"]["result"][0]["value"][1].get<std::string>());
  }
  size_t QueryCount(const std::string& promql) const {
    const std::string body = HttpGet(Url("/api/v1/query?query=" + UrlEncode(promql)));
    auto j = nlohmann::json::parse(body, nullptr, false);
    if (j.is_discarded() || j["status"] != "success") return 0;
    return j["data"]["result"].size();
  }
  // Polls until `promql` gives a value satisfying `pred` (or the timeout).
  bool WaitFor(const std::string& promql, const std::function<bool(double)>& pred, double timeout_s) const {
    const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
    while (std::chrono::steady_clock::now() < end) {
      const double v = Query(promql);
      if (!std::isnan(v) && pred(v)) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
    return false;
  }

 private:
  std::string dir_;
  int port_ = 0;
  pid_t pid_ = -1;
};

v1::ChatRequest TextRequest(const std::string& text, int tokens) {
  v1::ChatRequest r;
  auto* m = r.add_conversations()->add_messages();
  m->set_role("user");
  m->add_content()->set_text(text);
  r.mutable_generation()->set_max_new_tokens(tokens);
  r.mutable_generation()->set_ignore_eos(true);
  return r;
}

::grpc::Status Chat(const std::string& address, const v1::ChatRequest& request) {
  auto stub = v1::Front::NewStub(::grpc::CreateChannel(address, ::grpc::InsecureChannelCredentials()));
  ::grpc::ClientContext ctx;
  auto reader = stub->Chat(&ctx, request);
  v1::ChatResponse msg;
  while (reader->Read(&msg)) {
  }
  return reader->Finish();
}

TEST(Metrics, PrometheusScrapesTheStagesAndTheAutoscalingSeriesMove) {
  ASSERT_EQ(access("/usr/bin/prometheus", X_OK), 0) << "Debian's prometheus package is required (./smolserve setup)";
  StageProcess vision("vision", "services/vision/vision_server", {kModel, "--threads=1"});
  // One running sequence at a time, so that later requests wait in the decoder's queue.
  StageProcess decoder("decoder", "services/decoder/decoder_server",
                       {kModel, "--threads=1", "--max_running=1", "--max_new_tokens_limit=8000"});
  ASSERT_TRUE(vision.Start());
  ASSERT_TRUE(decoder.Start());
  StageProcess front("front", "services/preprocess/preprocess_server",
                     {kModel, "--vision_target=" + vision.address(),
                      "--decoder_target=" + decoder.address(), "--max_new_tokens_limit=8000"});
  ASSERT_TRUE(front.Start());

  // Every stage serves its own families with the stage label.
  std::set<std::string> all;
  for (const auto* s : {&vision, &decoder, &front}) {
    const std::string text = HttpGet("http://127.0.0.1:" + std::to_string(s->metrics_port()) + "/metrics");
    const auto names = MetricNames(text);
    EXPECT_TRUE(names.count("smolserve:num_requests_waiting")) << text;
    EXPECT_TRUE(names.count("smolserve:e2e_request_latency_seconds")) << text;
    all.insert(names.begin(), names.end());
  }
  for (const char* name : {"smolserve:time_to_first_token_seconds", "smolserve:inter_token_latency_seconds",
                           "smolserve:tiles_in_flight", "smolserve:vision_encode_seconds",
                           "smolserve:media_decode_seconds", "smolserve:prompt_tokens_total",
                           "smolserve:generation_tokens_total", "smolserve:request_success_total",
                           "smolserve:request_failure_total", "smolserve:queue_depth"}) {
    EXPECT_TRUE(all.count(name)) << name;
  }

  // Every metric the Grafana dashboard queries is exported by a live stage.
  FILE* pipe = popen("python3 deploy/tools/dashboard_metrics.py deploy/grafana/smolserve-dashboard.json "
                     "--prefix smolserve:", "r");
  ASSERT_NE(pipe, nullptr);
  std::string listed;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof(buf), pipe)) listed.append(buf, n);
  ASSERT_EQ(pclose(pipe), 0) << listed;
  std::istringstream names(listed);
  int dashboard_metrics = 0;
  for (std::string name; std::getline(names, name);) {
    if (name.empty()) continue;
    ++dashboard_metrics;
    EXPECT_TRUE(all.count(name)) << "the dashboard queries " << name << ", which no stage exports";
  }
  EXPECT_GE(dashboard_metrics, 10);

  PrometheusServer prom;
  ASSERT_TRUE(prom.Start({vision.metrics_port(), decoder.metrics_port(), front.metrics_port()}));
  ASSERT_TRUE(prom.WaitFor("count(up{job=\"smolserve\"} == 1)", [](double v) { return v == 3; }, 30));
  const double ttft_before = prom.Query("sum(smolserve:time_to_first_token_seconds_count{stage=\"decoder\"})");
  EXPECT_EQ(ttft_before, 0);

  // Load: one long generation occupies the decoder while three more wait in its queue.
  std::vector<std::future<::grpc::Status>> calls;
  calls.push_back(std::async(std::launch::async, [&] { return Chat(front.address(), TextRequest("long", 7000)); }));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  for (int i = 0; i < 3; ++i) {
    calls.push_back(std::async(std::launch::async, [&] { return Chat(front.address(), TextRequest("short", 2000)); }));
  }
  EXPECT_TRUE(prom.WaitFor("max(smolserve:num_requests_waiting{stage=\"decoder\"})",
                           [](double v) { return v >= 1; }, 20))
      << "the decoder's queue never showed waiting requests";
  EXPECT_TRUE(prom.WaitFor("max(smolserve:num_requests_running{stage=\"preprocess\"})",
                           [](double v) { return v >= 2; }, 20));
  for (auto& c : calls) EXPECT_TRUE(c.get().ok());
  EXPECT_TRUE(prom.WaitFor("sum(smolserve:time_to_first_token_seconds_count{stage=\"decoder\"})",
                           [](double v) { return v == 4; }, 20));
  EXPECT_TRUE(prom.WaitFor("sum(smolserve:generation_tokens_total{stage=\"decoder\"})",
                           [](double v) { return v == 13000; }, 20));
  EXPECT_TRUE(prom.WaitFor("sum(smolserve:request_success_total{stage=\"preprocess\",finished_reason=\"length\"})",
                           [](double v) { return v == 4; }, 20));
  EXPECT_TRUE(prom.WaitFor("max(smolserve:num_requests_waiting{stage=\"decoder\"})",
                           [](double v) { return v == 0; }, 20));
  // Histogram quantiles the dashboards use evaluate.
  EXPECT_FALSE(std::isnan(prom.Query(
      "histogram_quantile(0.95, sum by (le) (rate(smolserve:inter_token_latency_seconds_bucket[1m])))")));
}

}  // namespace
}  // namespace smolserve::testing
