// A test server script from the runfiles (python3) as a child process of a gtest: started with
// `--port 0 --port_file FILE` and its own arguments, ready once FILE holds its port, stopped
// with SIGTERM. Shared by the tests that need a real server on 127.0.0.1 (FakeHub, UrlFetcher).
#ifndef SMOLSERVE_TESTS_TOOLS_CHILD_SERVER_H_
#define SMOLSERVE_TESTS_TOOLS_CHILD_SERVER_H_

#include <sys/types.h>

#include <string>
#include <vector>

namespace smolserve::testing {

// A file of the test's runfiles: `relative` when readable from the working directory, else
// under $TEST_SRCDIR/$TEST_WORKSPACE.
std::string Runfile(const std::string& relative);

class ChildServer {
 public:
  // Runs `python3 Runfile(script) --port 0 --port_file PORT_FILE ARGS...` and waits up to
  // `timeout_s` for the port file (a test failure if the server exits or does not come up:
  // port() is then 0).
  ChildServer(const std::string& script, const std::string& port_file,
              const std::vector<std::string>& args, int timeout_s);
  ~ChildServer();
  ChildServer(const ChildServer&) = delete;
  ChildServer& operator=(const ChildServer&) = delete;

  // SIGTERM, and a test failure unless the server exits 0. Idempotent.
  void Stop();

  int port() const { return port_; }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
};

}  // namespace smolserve::testing

#endif  // SMOLSERVE_TESTS_TOOLS_CHILD_SERVER_H_
