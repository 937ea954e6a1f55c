#include "tests/tools/child_server.h"

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

ChildServer::ChildServer(const std::string& script, const std::string& port_file,
                         const std::vector<std::string>& args, int timeout_s) {
  unlink(port_file.c_str());
  std::vector<std::string> argv = {"python3", Runfile(script), "--port", "0", "--port_file",
                                   port_file};
  argv.insert(argv.end(), args.begin(), args.end());
  pid_ = fork();
  if (pid_ < 0) {
    ADD_FAILURE() << "fork failed for " << script;
    return;
  }
  if (pid_ == 0) {
    std::vector<char*> cargv;
    for (auto& a : argv) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    execvp("python3", cargv.data());
    _exit(127);
  }
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  while (std::chrono::steady_clock::now() < end) {
    std::ifstream f(port_file);
    if (f >> port_ && port_ > 0) return;
    port_ = 0;
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      ADD_FAILURE() << script << " exited early (status " << status << ")";
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ADD_FAILURE() << script << " did not write its port file within " << timeout_s << " s";
}

ChildServer::~ChildServer() { Stop(); }

void ChildServer::Stop() {
  if (pid_ <= 0) return;
  kill(pid_, SIGTERM);
  int status = 0;
  waitpid(pid_, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "server exit " << status;
  pid_ = -1;
}

}  // namespace smolserve::testing
