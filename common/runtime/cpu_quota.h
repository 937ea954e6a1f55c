// How many CPUs this process may use: the cgroup CPU quota (v2 cpu.max or v1
// cfs_quota/cfs_period, rounded up) and the affinity mask, whichever is smaller. The
// default for LibTorch intra-op threads, so that a pod limited to 4 CPUs on a 64-core node
// runs 4 threads instead of being throttled.
#ifndef SMOLSERVE_COMMON_RUNTIME_CPU_QUOTA_H_
#define SMOLSERVE_COMMON_RUNTIME_CPU_QUOTA_H_

#include <string>

namespace smolserve {

int AvailableCpus();

// Parses a cgroup v2 cpu.max line ("max 100000", "200000 100000"); 0 when unlimited/bad.
int CpusFromCgroupV2(const std::string& cpu_max);

}  // namespace smolserve

#endif  // SMOLSERVE_COMMON_RUNTIME_CPU_QUOTA_H_
