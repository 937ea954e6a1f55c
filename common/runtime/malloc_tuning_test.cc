#include "common/runtime/malloc_tuning.h"

#include <cstddef>
#include <cstdlib>

#include <gtest/gtest.h>

extern "C" int mallctl(const char* name, void* oldp, size_t* oldlenp, void* newp,
                       size_t newlen) __attribute__((weak));

namespace smolserve {
namespace {

TEST(MallocTuning, BinariesRunOnJemallocWithTheCompiledInOptions) {
  TuneMallocForTensors();
  void* p = std::malloc(1 << 20);  // the allocator is the one that serves malloc
  ASSERT_NE(p, nullptr);
  std::free(p);
#ifdef SMOLSERVE_SYSTEM_ALLOCATOR
  GTEST_SKIP() << "sanitizer build: " << AllocatorName();
#endif
  ASSERT_NE(mallctl, nullptr) << AllocatorName();
  EXPECT_EQ(AllocatorName().rfind("jemalloc 5.", 0), 0u) << AllocatorName();
  if (std::getenv("MALLOC_CONF") != nullptr) GTEST_SKIP() << "MALLOC_CONF overrides the options";
  bool background = false;
  size_t len = sizeof(background);
  ASSERT_EQ(mallctl("opt.background_thread", &background, &len, nullptr, 0), 0);
  EXPECT_TRUE(background);
  ssize_t dirty_ms = 0;
  len = sizeof(dirty_ms);
  ASSERT_EQ(mallctl("opt.dirty_decay_ms", &dirty_ms, &len, nullptr, 0), 0);
  EXPECT_EQ(dirty_ms, 2000);
}

}  // namespace
}  // namespace smolserve
