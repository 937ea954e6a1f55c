#include "tools/smolvlm/soak.h"

#include <dirent.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include <curl/curl.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace smolserve::cli {
namespace {

std::string HttpGet(const std::string& url) {
  std::string body;
  CURL* c = curl_easy_init();
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, +[](char* p, size_t s, size_t n, void* out) -> size_t {
    static_cast<std::string*>(out)->append(p, s * n);
    return s * n;
  });
  const CURLcode rc = curl_easy_perform(c);
  curl_easy_cleanup(c);
  return rc == CURLE_OK ? body : "";
}

// The value of a label-less-but-stage gauge (first series of that name) in a scrape.
double Gauge(const std::string& text, const std::string& name) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(name + "{", 0) != 0 && line.rfind(name + " ", 0) != 0) continue;
    double v = 0;
    if (absl::SimpleAtod(line.substr(line.rfind(' ') + 1), &v)) return v;
  }
  return -1;
}

}  // namespace

absl::StatusOr<std::vector<WatchTarget>> ParseWatch(absl::string_view spec) {
  std::vector<WatchTarget> out;
  for (absl::string_view part : absl::StrSplit(spec, ',', absl::SkipWhitespace())) {
    std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(part, absl::MaxSplits('=', 1));
    std::pair<absl::string_view, absl::string_view> pm = absl::StrSplit(kv.second, absl::MaxSplits('@', 1));
    WatchTarget t;
    t.name = std::string(kv.first);
    int pid = 0;
    if (t.name.empty() || !absl::SimpleAtoi(pm.first, &pid) || pid <= 0) {
      return absl::InvalidArgumentError(absl::StrCat("--watch: bad entry '", part,
                                                     "' (want name=pid[@host:metrics_port])"));
    }
    t.pid = pid;
    t.metrics = std::string(pm.second);
    out.push_back(std::move(t));
  }
  return out;
}

int64_t ResidentBytes(pid_t pid) {
  std::ifstream f(absl::StrCat("/proc/", pid, "/status"));
  for (std::string line; std::getline(f, line);) {
    if (line.rfind("VmRSS:", 0) != 0) continue;
    int64_t kb = 0;
    std::istringstream(line.substr(6)) >> kb;
    return kb * 1024;
  }
  return -1;
}

int OpenFds(pid_t pid) {
  DIR* d = opendir(absl::StrCat("/proc/", pid, "/fd").c_str());
  if (d == nullptr) return -1;
  int n = 0;
  while (dirent* e = readdir(d)) n += e->d_name[0] != '.';
  closedir(d);
  return n;
}

ProcessSampler::ProcessSampler(std::vector<WatchTarget> targets, std::chrono::milliseconds interval)
    : targets_(std::move(targets)), interval_(interval), start_(std::chrono::steady_clock::now()),
      samples_(targets_.size()) {
  thread_ = std::thread([this] { Loop(); });
}

ProcessSampler::~ProcessSampler() { Stop(); }

void ProcessSampler::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void ProcessSampler::Loop() {
  while (true) {
    const double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    std::vector<Sample> now;
    for (const WatchTarget& w : targets_) now.push_back({t, ResidentBytes(w.pid), OpenFds(w.pid)});
    std::unique_lock<std::mutex> lock(mu_);
    for (size_t i = 0; i < now.size(); ++i) samples_[i].push_back(now[i]);
    if (cv_.wait_for(lock, interval_, [this] { return stop_; })) return;
  }
}

nlohmann::ordered_json ProcessSampler::Summary(double warmup_fraction) const {
  std::lock_guard<std::mutex> lock(mu_);
  nlohmann::ordered_json out;
  for (size_t i = 0; i < targets_.size(); ++i) {
    const std::vector<Sample>& s = samples_[i];
    nlohmann::ordered_json j;
    if (s.empty()) {
      out[targets_[i].name] = j;
      continue;
    }
    const double end_t = s.back().t;
    size_t after = 0;
    while (after + 1 < s.size() && s[after].t < warmup_fraction * end_t) ++after;
    const Sample& a = s[after];
    const Sample& mid = s[(after + s.size() - 1) / 2];
    const Sample& last = s.back();
    int64_t peak = 0;
    int max_fds = 0;
    for (const Sample& x : s) {
      peak = std::max(peak, x.rss);
      max_fds = std::max(max_fds, x.fds);
    }
    j["rss_mb"] = {{"start", s.front().rss / 1048576.0}, {"after_warmup", a.rss / 1048576.0},
                   {"middle", mid.rss / 1048576.0}, {"end", last.rss / 1048576.0},
                   {"peak", peak / 1048576.0}};
    j["rss_drift_after_warmup_pct"] = a.rss > 0 ? 100.0 * (last.rss - a.rss) / a.rss : 0.0;
    j["fds"] = {{"start", s.front().fds}, {"after_warmup", a.fds}, {"end", last.fds}, {"max", max_fds}};
    nlohmann::json series = nlohmann::json::array();
    for (const Sample& x : s) series.push_back({x.t, x.rss / 1048576.0, x.fds});
    j["samples_t_rss_mb_fds"] = series;
    if (!targets_[i].metrics.empty()) {
      const std::string text = HttpGet(absl::StrCat("http://", targets_[i].metrics, "/metrics"));
      j["num_requests_running_at_end"] = Gauge(text, "smolserve:num_requests_running");
      j["num_requests_waiting_at_end"] = Gauge(text, "smolserve:num_requests_waiting");
    }
    out[targets_[i].name] = j;
  }
  return out;
}

}  // namespace smolserve::cli
