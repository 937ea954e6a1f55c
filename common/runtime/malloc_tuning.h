// Process-wide allocator settings for tensor workloads.
#ifndef SMOLSERVE_COMMON_RUNTIME_MALLOC_TUNING_H_
#define SMOLSERVE_COMMON_RUNTIME_MALLOC_TUNING_H_

namespace smolserve {

// Keeps multi-megabyte tensor buffers in the heap instead of fresh mmap()s: glibc otherwise
// returns them to the kernel on free and the next allocation page-faults them in again,
// which costs most in worker threads (their arenas serve big blocks through mmap). Call once
// at the start of main(), before any thread starts.
void TuneMallocForTensors();

}  // namespace smolserve

#endif  // SMOLSERVE_COMMON_RUNTIME_MALLOC_TUNING_H_
