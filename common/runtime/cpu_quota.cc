#include "common/runtime/cpu_quota.h"

#include <sched.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>
#include <thread>

namespace smolserve {
namespace {

std::string ReadLine(const char* path) {
  std::ifstream f(path);
  std::string line;
  std::getline(f, line);
  return line;
}

int CpusFromCgroupV1() {
  const std::string quota = ReadLine("/sys/fs/cgroup/cpu/cpu.cfs_quota_us");
  const std::string period = ReadLine("/sys/fs/cgroup/cpu/cpu.cfs_period_us");
  if (quota.empty() || period.empty()) return 0;
  const double q = std::atof(quota.c_str()), p = std::atof(period.c_str());
  if (q <= 0 || p <= 0) return 0;
  return static_cast<int>(std::ceil(q / p));
}

}  // namespace

int CpusFromCgroupV2(const std::string& cpu_max) {
  std::istringstream in(cpu_max);
  std::string quota, period;
  in >> quota >> period;
  if (quota.empty() || quota == "max") return 0;
  const double q = std::atof(quota.c_str());
  const double p = period.empty() ? 100000.0 : std::atof(period.c_str());
  if (q <= 0 || p <= 0) return 0;
  return std::max(1, static_cast<int>(std::ceil(q / p)));
}

int AvailableCpus() {
  int cpus = static_cast<int>(std::thread::hardware_concurrency());
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) cpus = CPU_COUNT(&set);
  int quota = CpusFromCgroupV2(ReadLine("/sys/fs/cgroup/cpu.max"));
  if (quota == 0) quota = CpusFromCgroupV1();
  if (quota > 0) cpus = std::min(cpus, quota);
  return std::max(1, cpus);
}

}  // namespace smolserve
