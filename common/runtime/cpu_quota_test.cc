#include "common/runtime/cpu_quota.h"

#include <thread>

#include "gtest/gtest.h"

namespace smolserve {
namespace {

TEST(CpuQuota, ParsesCgroupV2) {
  EXPECT_EQ(CpusFromCgroupV2("max 100000"), 0);
  EXPECT_EQ(CpusFromCgroupV2("200000 100000"), 2);
  EXPECT_EQ(CpusFromCgroupV2("150000 100000"), 2);
  EXPECT_EQ(CpusFromCgroupV2("50000 100000"), 1);
  EXPECT_EQ(CpusFromCgroupV2(""), 0);
}

TEST(CpuQuota, WithinHostCores) {
  const int n = AvailableCpus();
  EXPECT_GE(n, 1);
  EXPECT_LE(n, static_cast<int>(std::thread::hardware_concurrency()));
}

}  // namespace
}  // namespace smolserve
