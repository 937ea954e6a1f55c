#include "common/runtime/cpu_features.h"

#include <fstream>
#include <sstream>
#include <string>

#include "gtest/gtest.h"

namespace smolserve {
namespace {

// The kernel's view of the same CPU: the flags line of /proc/cpuinfo.
std::string KernelFlags() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("flags", 0) == 0) return line + " ";
  }
  return "";
}

bool Has(const std::string& flags, const std::string& name) {
  return flags.find(" " + name + " ") != std::string::npos;
}

TEST(CpuFeatures, AgreesWithTheKernel) {
  const std::string flags = KernelFlags();
  if (flags.empty()) GTEST_SKIP() << "no /proc/cpuinfo flags";
  const CpuFeatures& f = GetCpuFeatures();
  EXPECT_EQ(f.avx2, Has(flags, "avx2"));
  EXPECT_EQ(f.avx512_bf16, Has(flags, "avx512_bf16"));
  EXPECT_EQ(f.avx512_vnni, Has(flags, "avx512_vnni"));
  EXPECT_EQ(f.amx_bf16, Has(flags, "amx_bf16"));
  EXPECT_EQ(f.avx512_core, Has(flags, "avx512f") && Has(flags, "avx512bw") &&
                               Has(flags, "avx512vl") && Has(flags, "avx512dq"));
  EXPECT_EQ(f.native_bf16(), f.avx512_bf16 || f.amx_bf16);
  EXPECT_FALSE(f.ToString().empty());
}

}  // namespace
}  // namespace smolserve
