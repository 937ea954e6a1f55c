// Test helper: runs a stage binary as a real child process on 127.0.0.1 (port 0 unless
// given), waits for its port file and gRPC health, and stops it.
#ifndef SMOLSERVE_TESTS_INTEGRATION_STAGE_PROCESS_H_
#define SMOLSERVE_TESTS_INTEGRATION_STAGE_PROCESS_H_

#include <sys/types.h>

#include <string>
#include <vector>

namespace smolserve::testing {

class StageProcess {
 public:
  // `binary` relative to the runfiles root (e.g. "services/vision/vision_server").
  StageProcess(std::string name, std::string binary, std::vector<std::string> args);
  ~StageProcess();  // Kill()

  // Starts (on `port`, 0 = any) and waits until the health service says SERVING.
  bool Start(int port = 0, double timeout_s = 60);
  void Kill(int signal = 9);  // and wait
  bool Terminate(double timeout_s = 30);  // SIGTERM, wait; true if it exited on its own
  int port() const { return port_; }
  int metrics_port() const { return metrics_port_; }
  int http_port() const { return http_port_; }  // the front's HTTP API (-1: none)
  int health_port() const { return health_port_; }  // plaintext health (0: none)
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  // Everything the process wrote to stderr so far.
  std::string Log() const;
  // Lines of the log containing `needle`.
  int CountLogLines(const std::string& needle) const;
  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }

 private:
  std::string name_, binary_;
  std::vector<std::string> args_;
  std::string port_file_, log_file_;
  pid_t pid_ = -1;
  int port_ = 0;
  int metrics_port_ = 0;
  int http_port_ = -1;
  int health_port_ = 0;
};

// True when the gRPC health service at `address` reports SERVING within `timeout_s`.
bool WaitServing(const std::string& address, double timeout_s);

}  // namespace smolserve::testing

#endif  // SMOLSERVE_TESTS_INTEGRATION_STAGE_PROCESS_H_
