// A C++ exception from a library (LibTorch's c10::Error, std::bad_alloc, ...) as a status a
// client may see: out-of-memory becomes RESOURCE_EXHAUSTED ("out of memory"), anything else
// INTERNAL; the library's internals — "[enforce fail at alloc_cpu.cpp:75]" markers, source
// locations, backtraces, allocation sizes — are kept out of the message.
#ifndef SMOLSERVE_COMMON_STATUS_EXCEPTION_STATUS_H_
#define SMOLSERVE_COMMON_STATUS_EXCEPTION_STATUS_H_

#include <exception>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace smolserve {

// `what` is the caller's description of the failed step ("vision encoder").
absl::Status StatusFromException(const std::exception& e, absl::string_view what);

// The first line of an exception message without library-internal markers (exposed for tests).
std::string CleanExceptionMessage(absl::string_view message);

}  // namespace smolserve

#endif  // SMOLSERVE_COMMON_STATUS_EXCEPTION_STATUS_H_
