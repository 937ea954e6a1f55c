// tests/tools/fake_hub_server.py as a child process of a test: a fake Hugging Face Hub on
// 127.0.0.1 (revision API, resolve with LFS-like CDN redirects, fault injection), stopped with
// SIGTERM. Shared by the hub library's tests and the stages' integration tests.
#ifndef SMOLSERVE_TESTS_TOOLS_FAKE_HUB_H_
#define SMOLSERVE_TESTS_TOOLS_FAKE_HUB_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "nlohmann/json.hpp"
#include "tests/tools/child_server.h"

namespace smolserve::testing {

class FakeHub {
 public:
  // Starts the server with its state files in `work_dir` and the script's extra `args`
  // (e.g. {"--repo", "org/name=FOLDER"}); waits up to 20 s for its port (a test failure if it
  // does not come up: port() is then 0).
  FakeHub(const std::string& work_dir, const std::vector<std::string>& args);
  FakeHub(const FakeHub&) = delete;
  FakeHub& operator=(const FakeHub&) = delete;

  // SIGTERM, and a test failure unless the server exits 0. Idempotent.
  void Stop();

  int port() const { return server_->port(); }
  int cdn_port() const { return cdn_port_; }
  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port()); }
  // The server's request log (one JSON object per request).
  std::vector<nlohmann::json> Log() const;
  // CDN GETs (of any blob): count and body bytes in all.
  std::pair<int, int64_t> CdnGets() const;

 private:
  std::string port_file_, log_file_;
  std::unique_ptr<ChildServer> server_;
  int cdn_port_ = 0;
};

}  // namespace smolserve::testing

#endif  // SMOLSERVE_TESTS_TOOLS_FAKE_HUB_H_
