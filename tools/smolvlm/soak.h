// The soak side of `smolvlm bench --duration`: samples the stage processes while the load
// runs — resident memory and open file descriptors from /proc/<pid> — and, at the end, their
// queue gauges from each /metrics endpoint, to tell whether a long run leaks (RSS that keeps
// growing after warm-up, descriptors that pile up) and whether the stages drain afterwards.
#ifndef SMOLSERVE_TOOLS_SMOLVLM_SOAK_H_
#define SMOLSERVE_TOOLS_SMOLVLM_SOAK_H_

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace smolserve::cli {

struct WatchTarget {
  std::string name;
  pid_t pid = 0;
  std::string metrics;  // "host:port" of its /metrics, or ""
};

// "vision=1234@127.0.0.1:9102,decoder=1235@127.0.0.1:9103" (the @metrics part optional).
absl::StatusOr<std::vector<WatchTarget>> ParseWatch(absl::string_view spec);

// VmRSS of /proc/<pid>/status in bytes, and the entries of /proc/<pid>/fd (-1 when unreadable).
int64_t ResidentBytes(pid_t pid);
int OpenFds(pid_t pid);

class ProcessSampler {
 public:
  // Samples every `interval` on its own thread until Stop().
  ProcessSampler(std::vector<WatchTarget> targets, std::chrono::milliseconds interval);
  ~ProcessSampler();
  void Stop();
  // Per target: RSS and fds at the first sample after `warmup_fraction` of the run, in its
  // middle and at its end, the drift of RSS after warm-up (percent), the peak, the samples;
  // and each target's queue gauges scraped now (num_requests_running / waiting).
  nlohmann::ordered_json Summary(double warmup_fraction) const;

 private:
  struct Sample {
    double t = 0;
    int64_t rss = 0;
    int fds = 0;
  };
  void Loop();

  std::vector<WatchTarget> targets_;
  std::chrono::milliseconds interval_;
  std::chrono::steady_clock::time_point start_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::vector<std::vector<Sample>> samples_;  // per target, guarded by mu_
  std::thread thread_;
};

}  // namespace smolserve::cli

#endif  // SMOLSERVE_TOOLS_SMOLVLM_SOAK_H_
