#include "common/status/exception_status.h"

#include <new>
#include <regex>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace smolserve {
namespace {

bool IsOutOfMemory(const std::exception& e, absl::string_view message) {
  if (dynamic_cast<const std::bad_alloc*>(&e) != nullptr) return true;
  for (const char* needle : {"can't allocate memory", "not enough memory", "out of memory",
                             "Cannot allocate memory", "std::bad_alloc"}) {
    if (message.find(needle) != absl::string_view::npos) return true;
  }
  return false;
}

}  // namespace

std::string CleanExceptionMessage(absl::string_view message) {
  std::string m(message.substr(0, message.find('\n')));
  // "[enforce fail at alloc_cpu.cpp:75] " and "Exception raised from f at file.cpp:12"
  static const std::regex kEnforce(R"(\[enforce fail at [^\]]*\]\s*)");
  static const std::regex kLocation(R"(\s*\(?[A-Za-z0-9_./-]+\.(cpp|cc|h|hpp|cu):[0-9]+\)?)");
  static const std::regex kRaised(R"(Exception raised from .*)");
  static const std::regex kAt(R"(\s*\(at [^)]*\))");
  m = std::regex_replace(m, kEnforce, "");
  m = std::regex_replace(m, kAt, "");
  m = std::regex_replace(m, kRaised, "");
  m = std::regex_replace(m, kLocation, "");
  absl::string_view v = absl::StripAsciiWhitespace(m);
  if (v.size() > 300) v = v.substr(0, 300);
  return std::string(v.empty() ? absl::string_view("internal error") : v);
}

absl::Status StatusFromException(const std::exception& e, absl::string_view what) {
  const absl::string_view message = e.what();
  if (IsOutOfMemory(e, message)) {
    return absl::ResourceExhaustedError(absl::StrCat(what, ": out of memory"));
  }
  return absl::InternalError(absl::StrCat(what, ": ", CleanExceptionMessage(message)));
}

}  // namespace smolserve
