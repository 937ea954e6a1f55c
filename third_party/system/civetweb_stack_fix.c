// Raises the stack size civetweb (prometheus-cpp's HTTP server) asks for its worker
// threads. A LibTorch process carries ~106 KiB of static TLS (OpenBLAS, glog, torch_cpu),
// which does not fit in civetweb's 100 KiB stacks, so pthread_create fails without this.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stddef.h>

int pthread_attr_setstacksize(pthread_attr_t* attr, size_t size) {
  typedef int (*real_fn)(pthread_attr_t*, size_t);
  static real_fn real = NULL;
  if (real == NULL) real = (real_fn)dlsym(RTLD_NEXT, "pthread_attr_setstacksize");
  const size_t kMin = 1u << 20;
  return real(attr, size < kMin ? kMin : size);
}
