// Process-wide allocator settings for tensor workloads.
//
// The stage binaries link jemalloc (the `:malloc_tuning` target brings it): tensor buffers of
// many sizes are allocated and freed by many threads, and glibc's per-thread arenas keep what
// they freed (a soak at 48 clients grew the front and vision stages to 7 GB). jemalloc's
// background thread returns memory a few seconds after it is freed, while reuse in between
// stays fault-free. Its options are compiled in (`malloc_conf`); MALLOC_CONF overrides them.
#ifndef SMOLSERVE_COMMON_RUNTIME_MALLOC_TUNING_H_
#define SMOLSERVE_COMMON_RUNTIME_MALLOC_TUNING_H_

#include <string>

namespace smolserve {

// With jemalloc: nothing to do beyond checking it is the allocator in use. Under glibc (a
// binary built without this target's allocator, e.g. a sanitizer build): keeps multi-megabyte
// blocks in the heap instead of fresh mmap()s. Call once at the start of main(), before any
// thread starts.
void TuneMallocForTensors();

// "jemalloc 5.3.0-..." or "glibc malloc": for the start-up log line.
std::string AllocatorName();

}  // namespace smolserve

#endif  // SMOLSERVE_COMMON_RUNTIME_MALLOC_TUNING_H_
