#include "common/json/parse.h"

#include "absl/strings/str_cat.h"

namespace smolserve::json {

absl::StatusOr<nlohmann::json> Parse(absl::string_view text, int max_depth) {
  // The parser itself is iterative; the callback sees the depth of every value and drops
  // what is too deep, which we then report.
  bool too_deep = false;
  auto callback = [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json&) {
    if ((event == nlohmann::json::parse_event_t::object_start ||
         event == nlohmann::json::parse_event_t::array_start) &&
        depth >= max_depth) {
      too_deep = true;
    }
    return !too_deep;
  };
  try {
    nlohmann::json j = nlohmann::json::parse(text.begin(), text.end(), callback,
                                             /*allow_exceptions=*/true);
    if (too_deep) {
      return absl::InvalidArgumentError(
          absl::StrCat("JSON nested deeper than ", max_depth, " levels"));
    }
    return j;
  } catch (const nlohmann::json::parse_error& e) {
    if (too_deep) {
      return absl::InvalidArgumentError(
          absl::StrCat("JSON nested deeper than ", max_depth, " levels"));
    }
    return absl::InvalidArgumentError(absl::StrCat("invalid JSON at byte ", e.byte));
  } catch (const nlohmann::json::exception& e) {
    // Not a parse_error: a number too large for a double (1e999) is out_of_range (406).
    return absl::InvalidArgumentError(absl::StrCat("invalid JSON: ", e.what()));
  }
}

}  // namespace smolserve::json
