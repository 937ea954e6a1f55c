#include "tests/integration/stage_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"

namespace smolserve::testing {
namespace {

std::string TmpDir() {
  const char* d = std::getenv("TEST_TMPDIR");
  return d ? d : "/tmp";
}

// A minimal client of grpc.health.v1.Health/Check using the generic stub: the request is
// an empty message and the response's field 1 (status) is SERVING = 1, encoded 0x08 0x01.
bool HealthServing(const std::string& address) {
  auto channel = ::grpc::CreateChannel(address, ::grpc::InsecureChannelCredentials());
  ::grpc::GenericStub stub(channel);
  ::grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(500));
  ::grpc::ByteBuffer request, response;
  ::grpc::Slice empty("", 0);
  request = ::grpc::ByteBuffer(&empty, 1);
  ::grpc::CompletionQueue cq;
  auto call = stub.PrepareUnaryCall(&ctx, "/grpc.health.v1.Health/Check", request, &cq);
  call->StartCall();
  ::grpc::Status status;
  call->Finish(&response, &status, reinterpret_cast<void*>(1));
  void* tag;
  bool ok;
  cq.Next(&tag, &ok);
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  if (!status.ok()) return false;
  std::vector<::grpc::Slice> slices;
  response.Dump(&slices);
  std::string bytes;
  for (auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return bytes == std::string("\x08\x01", 2);
}

}  // namespace

bool WaitServing(const std::string& address, double timeout_s) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  while (std::chrono::steady_clock::now() < end) {
    if (HealthServing(address)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

StageProcess::StageProcess(std::string name, std::string binary, std::vector<std::string> args)
    : name_(std::move(name)), binary_(std::move(binary)), args_(std::move(args)) {
  static int counter = 0;
  const std::string base = absl::StrCat(TmpDir(), "/", name_, "_", getpid(), "_", counter++);
  port_file_ = base + ".port";
  log_file_ = base + ".log";
}

StageProcess::~StageProcess() { Kill(); }

bool StageProcess::Start(int port, double timeout_s) {
  unlink(port_file_.c_str());
  std::vector<std::string> argv = {binary_, "--host=127.0.0.1", absl::StrCat("--port=", port),
                                   "--port_file=" + port_file_, "--metrics_port=0"};
  argv.insert(argv.end(), args_.begin(), args_.end());
  // The front's HTTP API on a free port too (tests run side by side), unless a test chose one.
  const bool front = binary_.find("preprocess_server") != std::string::npos;
  bool http_chosen = false;
  for (const auto& a : args_) http_chosen = http_chosen || a.rfind("--http_port=", 0) == 0;
  if (front && !http_chosen) argv.push_back("--http_port=0");
  // Goldens are fp32: vision and decoder stages run --dtype=f32 unless a test chooses (the
  // default, auto, may pick bf16 for vision on CPUs with native bf16; common/runtime:dtype_test).
  bool dtype_chosen = false;
  for (const auto& a : args_) dtype_chosen = dtype_chosen || a.rfind("--dtype=", 0) == 0;
  if (!front && !dtype_chosen) argv.push_back("--dtype=f32");
  pid_ = fork();
  if (pid_ == 0) {
    int fd = open(log_file_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    dup2(fd, 2);
    std::vector<char*> cargv;
    for (auto& a : argv) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    execv(binary_.c_str(), cargv.data());
    _exit(127);
  }
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  while (std::chrono::steady_clock::now() < end) {
    std::ifstream f(port_file_);
    int p = 0;
    if (f >> p && p > 0) {
      port_ = p;
      std::ifstream m(port_file_ + ".metrics");
      m >> metrics_port_;
      std::ifstream h(port_file_ + ".http");
      h >> http_port_;
      std::ifstream hp(port_file_ + ".health");
      hp >> health_port_;
      break;
    }
    int st;
    if (waitpid(pid_, &st, WNOHANG) == pid_) {
      pid_ = -1;
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (port_ == 0) return false;
  const double left = std::chrono::duration<double>(end - std::chrono::steady_clock::now()).count();
  // A TLS stage is asked on its plaintext health port.
  const std::string health = health_port_ > 0 ? "127.0.0.1:" + std::to_string(health_port_) : address();
  return WaitServing(health, std::max(left, 1.0));
}

void StageProcess::Kill(int signal) {
  if (pid_ <= 0) return;
  kill(pid_, signal);
  int st;
  waitpid(pid_, &st, 0);
  pid_ = -1;
}

bool StageProcess::Terminate(double timeout_s) {
  if (pid_ <= 0) return true;
  kill(pid_, SIGTERM);
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  while (std::chrono::steady_clock::now() < end) {
    int st;
    if (waitpid(pid_, &st, WNOHANG) == pid_) {
      pid_ = -1;
      return WIFEXITED(st) && WEXITSTATUS(st) == 0;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  Kill();
  return false;
}

std::string StageProcess::Log() const {
  std::ifstream f(log_file_);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

int StageProcess::CountLogLines(const std::string& needle) const {
  std::istringstream in(Log());
  std::string line;
  int n = 0;
  while (std::getline(in, line)) n += line.find(needle) != std::string::npos;
  return n;
}

}  // namespace smolserve::testing
