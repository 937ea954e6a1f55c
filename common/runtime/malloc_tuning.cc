#include "common/runtime/malloc_tuning.h"

#include <malloc.h>

namespace smolserve {

void TuneMallocForTensors() {
  mallopt(M_MMAP_THRESHOLD, 256 << 20);   // blocks below 256 MiB come from the heap
  mallopt(M_TRIM_THRESHOLD, 512 << 20);   // and freed memory stays for reuse
  mallopt(M_ARENA_MAX, 4);                // few arenas: worker threads share grown heaps
}

}  // namespace smolserve
