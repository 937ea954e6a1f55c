#include "tests/tools/fake_hub.h"

#include <unistd.h>

#include <fstream>

namespace smolserve::testing {

FakeHub::FakeHub(const std::string& work_dir, const std::vector<std::string>& args)
    : port_file_(work_dir + "/port"), log_file_(work_dir + "/hub_log.jsonl") {
  unlink((port_file_ + ".cdn").c_str());
  unlink(log_file_.c_str());
  std::vector<std::string> server_args = {"--log_file", log_file_, "--quiet"};
  server_args.insert(server_args.end(), args.begin(), args.end());
  server_ = std::make_unique<ChildServer>("tests/tools/fake_hub_server.py", port_file_,
                                          server_args, 20);
  if (server_->port() > 0) std::ifstream(port_file_ + ".cdn") >> cdn_port_;
}

void FakeHub::Stop() { server_->Stop(); }

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
