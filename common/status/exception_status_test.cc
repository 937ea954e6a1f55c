#include "common/status/exception_status.h"

#include <new>
#include <stdexcept>

#include "gtest/gtest.h"

namespace smolserve {
namespace {

// Probe finding: error text showed internal source locations (alloc_cpu.cpp:75).
TEST(ExceptionStatus, OutOfMemoryIsResourceExhaustedWithoutInternals) {
  std::runtime_error torch_oom(
      "[enforce fail at alloc_cpu.cpp:75] err == 0. DefaultCPUAllocator: can't allocate memory: "
      "you tried to allocate 17179869184 bytes. Error code 12 (Cannot allocate memory)");
  absl::Status s = StatusFromException(torch_oom, "vision encoder");
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(s.message(), "vision encoder: out of memory");
  EXPECT_EQ(StatusFromException(std::bad_alloc(), "x").code(), absl::StatusCode::kResourceExhausted);
}

TEST(ExceptionStatus, OtherErrorsKeepTheirFirstLineWithoutLocations) {
  std::runtime_error e(
      "shape '[2, 3]' is invalid for input of size 5 (at ../aten/src/ATen/native/Resize.cpp:42)\n"
      "Exception raised from view_impl at ../aten/src/ATen/native/TensorShape.cpp:1200 (most "
      "recent call first):\nframe #0: ...");
  absl::Status s = StatusFromException(e, "decoder");
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal);
  EXPECT_EQ(s.message(), "decoder: shape '[2, 3]' is invalid for input of size 5");
  EXPECT_EQ(CleanExceptionMessage("Exception raised from f at a.cpp:1"), "internal error");
}

}  // namespace
}  // namespace smolserve
