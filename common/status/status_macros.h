// RETURN_IF_ERROR / ASSIGN_OR_RETURN for absl::Status and absl::StatusOr.
#ifndef SMOLSERVE_COMMON_STATUS_STATUS_MACROS_H_
#define SMOLSERVE_COMMON_STATUS_STATUS_MACROS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

#define SMOLSERVE_STATUS_CONCAT_INNER_(a, b) a##b
#define SMOLSERVE_STATUS_CONCAT_(a, b) SMOLSERVE_STATUS_CONCAT_INNER_(a, b)

// Returns the status from the enclosing function if `expr` is not OK.
#define RETURN_IF_ERROR(expr)                          \
  do {                                                 \
    ::absl::Status _smolserve_status = (expr);         \
    if (!_smolserve_status.ok()) return _smolserve_status; \
  } while (0)

// `ASSIGN_OR_RETURN(auto x, Foo());` declares/assigns x or returns Foo()'s error.
#define ASSIGN_OR_RETURN(lhs, rexpr) \
  SMOLSERVE_ASSIGN_OR_RETURN_IMPL_(SMOLSERVE_STATUS_CONCAT_(_smolserve_or_, __LINE__), lhs, rexpr)

#define SMOLSERVE_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, rexpr) \
  auto tmp = (rexpr);                                     \
  if (!tmp.ok()) return std::move(tmp).status();          \
  lhs = std::move(tmp).value()

namespace smolserve {

// Prefixes a non-OK status's message with context ("image 2: ...") keeping its code.
inline absl::Status Annotate(const absl::Status& s, absl::string_view context) {
  if (s.ok()) return s;
  return absl::Status(s.code(), absl::StrCat(context, ": ", s.message()));
}

}  // namespace smolserve

#endif  // SMOLSERVE_COMMON_STATUS_STATUS_MACROS_H_
