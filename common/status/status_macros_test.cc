#include "common/status/status_macros.h"

#include "gtest/gtest.h"

namespace smolserve {
namespace {

absl::StatusOr<int> Half(int x) {
  if (x % 2) return absl::InvalidArgumentError("odd");
  return x / 2;
}

absl::Status UseHalf(int x, int* out) {
  ASSIGN_OR_RETURN(int h, Half(x));
  RETURN_IF_ERROR(h > 100 ? absl::OutOfRangeError("big") : absl::OkStatus());
  *out = h;
  return absl::OkStatus();
}

TEST(StatusMacros, PropagatesAndAssigns) {
  int out = 0;
  EXPECT_TRUE(UseHalf(8, &out).ok());
  EXPECT_EQ(out, 4);
  EXPECT_EQ(UseHalf(3, &out).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(UseHalf(400, &out).code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(Annotate(absl::NotFoundError("x"), "ctx").message(), "ctx: x");
}

}  // namespace
}  // namespace smolserve
