#include "services/decoder/core/stop_matcher.h"

#include <algorithm>
#include <utility>

namespace smolserve::decoder {
namespace {

// The largest position <= pos that starts a UTF-8 character of `s`.
size_t CharStart(const std::string& s, size_t pos) {
  while (pos > 0 && pos < s.size() && (static_cast<unsigned char>(s[pos]) & 0xC0) == 0x80) --pos;
  return pos;
}

}  // namespace

StopMatcher::StopMatcher(std::vector<std::string> stops) {
  for (std::string& s : stops) {
    if (s.empty()) continue;
    max_len_ = std::max(max_len_, s.size());
    stops_.push_back(std::move(s));
  }
}

StopMatcher::Step StopMatcher::Add(absl::string_view text) {
  Step step;
  if (stopped_) return step;
  if (stops_.empty()) {
    step.text = std::string(text);
    return step;
  }
  // held_ is at most the longest stop string's length - 1 before this text arrives, so the
  // search is bounded by the stop strings and the new text.
  held_.append(text.data(), text.size());
  size_t best = std::string::npos;
  for (const std::string& s : stops_) {
    const size_t at = held_.find(s);
    if (at != std::string::npos && at < best) {
      best = at;
      step.matched = s;
    }
  }
  if (best != std::string::npos) {
    stopped_ = true;
    step.stopped = true;
    step.text = held_.substr(0, best);
    held_.clear();
    return step;
  }
  // Keep the longest suffix that is a proper prefix of some stop string; emit the rest.
  size_t keep = 0;
  for (const std::string& s : stops_) {
    const size_t most = std::min(held_.size(), s.size() - 1);
    for (size_t k = most; k > keep; --k) {
      if (held_.compare(held_.size() - k, k, s, 0, k) == 0) {
        keep = k;
        break;
      }
    }
  }
  const size_t cut = CharStart(held_, held_.size() - keep);
  step.text = held_.substr(0, cut);
  held_.erase(0, cut);
  return step;
}

std::string StopMatcher::Flush() {
  std::string out = std::move(held_);
  held_.clear();
  return out;
}

}  // namespace smolserve::decoder
