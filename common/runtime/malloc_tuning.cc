#include "common/runtime/malloc_tuning.h"

#include <malloc.h>

#include <cstddef>

// jemalloc's control interface; null when the process runs on another allocator.
extern "C" int mallctl(const char* name, void* oldp, size_t* oldlenp, void* newp,
                       size_t newlen) __attribute__((weak));

// Read by jemalloc at its first allocation (MALLOC_CONF in the environment comes after it).
// Freed dirty pages go back to the kernel after ~2 s, in a background thread, not in the
// threads that serve requests.
extern "C" const char* malloc_conf __attribute__((used)) =
    "background_thread:true,dirty_decay_ms:2000,muzzy_decay_ms:0";

namespace smolserve {

std::string AllocatorName() {
  if (mallctl == nullptr) return "glibc malloc";
  const char* version = nullptr;
  size_t len = sizeof(version);
  if (mallctl("version", &version, &len, nullptr, 0) != 0 || version == nullptr) return "jemalloc";
  return std::string("jemalloc ") + version;
}

void TuneMallocForTensors() {
  if (mallctl != nullptr) return;
  mallopt(M_MMAP_THRESHOLD, 64 << 20);   // blocks below 64 MiB come from the heap
  mallopt(M_TRIM_THRESHOLD, 128 << 20);  // and up to 128 MiB of freed memory stays for reuse
  mallopt(M_ARENA_MAX, 4);               // few arenas: worker threads share grown heaps
}

}  // namespace smolserve
