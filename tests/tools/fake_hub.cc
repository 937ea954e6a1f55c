#include "tests/tools/fake_hub.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>

namespace smolserve::testing {

std::string Runfile(const std::string& relative) {
  if (access(relative.c_str(), R_OK) == 0) return relative;
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* workspace = std::getenv("TEST_WORKSPACE");
  if (srcdir != nullptr && workspace != nullptr) {
    return std::string(srcdir) + "/" + workspace + "/" + relative;
  }
  return relative;
}

FakeHub::FakeHub(const std::string& work_dir, const std::vector<std::string>& args) {
  port_file_ = work_dir + "/port";
  log_file_ = work_dir + "/hub_log.jsonl";
  unlink(port_file_.c_str());
  unlink((port_file_ + ".cdn").c_str());
  unlink(log_file_.c_str());
  std::vector<std::string> argv = {"python3",     Runfile("tests/tools/fake_hub_server.py"),
                                   "--port",      "0",
                                   "--port_file", port_file_,
                                   "--log_file",  log_file_,
                                   "--quiet"};
  argv.insert(argv.end(), args.begin(), args.end());
  pid_ = fork();
  if (pid_ == 0) {
    std::vector<char*> cargv;
    for (auto& a : argv) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    execvp("python3", cargv.data());
    _exit(127);
  }
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < end) {
    std::ifstream f(port_file_);
    if (f >> port_ && port_ > 0) {
      std::ifstream(port_file_ + ".cdn") >> cdn_port_;
      return;
    }
    port_ = 0;
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      ADD_FAILURE() << "fake_hub_server.py exited early (status " << status << ")";
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ADD_FAILURE() << "fake_hub_server.py did not write its port file";
}

FakeHub::~FakeHub() { Stop(); }

void FakeHub::Stop() {
  if (pid_ <= 0) return;
  kill(pid_, SIGTERM);
  int status = 0;
  waitpid(pid_, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "server exit " << status;
  pid_ = -1;
}

std::vector<nlohmann::json> FakeHub::Log() const {
  std::vector<nlohmann::json> entries;
  std::ifstream in(log_file_);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) entries.push_back(nlohmann::json::parse(line));
  }
  return entries;
}

std::pair<int, int64_t> FakeHub::CdnGets() const {
  int n = 0;
  int64_t bytes = 0;
  for (const auto& e : Log()) {
    if (e["listener"] == "cdn" && e["method"] == "GET") {
      ++n;
      bytes += e["bytes"].get<int64_t>();
    }
  }
  return {n, bytes};
}

}  // namespace smolserve::testing
