#include "services/preprocess/core/video/video_prompt.h"

#include <algorithm>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace smolserve::preprocess {
namespace {

// num2words' English number table ("cards"), largest first; the words above "thousand" are
// the "-illion" names Num2Word_EN derives from lang_EU's high_numwords.
struct Card {
  uint64_t value;
  const char* word;
};
constexpr Card kCards[] = {
    {1000000000000000000ull, "quintillion"},
    {1000000000000000ull, "quadrillion"},
    {1000000000000ull, "trillion"},
    {1000000000ull, "billion"},
    {1000000ull, "million"},
    {1000, "thousand"},
    {100, "hundred"},
    {90, "ninety"},
    {80, "eighty"},
    {70, "seventy"},
    {60, "sixty"},
    {50, "fifty"},
    {40, "forty"},
    {30, "thirty"},
    {20, "twenty"},
    {19, "nineteen"},
    {18, "eighteen"},
    {17, "seventeen"},
    {16, "sixteen"},
    {15, "fifteen"},
    {14, "fourteen"},
    {13, "thirteen"},
    {12, "twelve"},
    {11, "eleven"},
    {10, "ten"},
    {9, "nine"},
    {8, "eight"},
    {7, "seven"},
    {6, "six"},
    {5, "five"},
    {4, "four"},
    {3, "three"},
    {2, "two"},
    {1, "one"},
    {0, "zero"},
};

using Words = std::pair<std::string, uint64_t>;

// Num2Word_EN.merge.
Words Merge(const Words& l, const Words& r) {
  const uint64_t lnum = l.second;
  const uint64_t rnum = r.second;
  if (lnum == 1 && rnum < 100) return r;
  if (100 > lnum && lnum > rnum) return {absl::StrCat(l.first, "-", r.first), lnum + rnum};
  if (lnum >= 100 && 100 > rnum) return {absl::StrCat(l.first, " and ", r.first), lnum + rnum};
  if (rnum > lnum) return {absl::StrCat(l.first, " ", r.first), lnum * rnum};
  return {absl::StrCat(l.first, ", ", r.first), lnum + rnum};
}

// Num2Word_Base.splitnum followed by clean(): the nested [div-part, card, mod-part] lists
// reduce left to right, i.e. merge(merge(div-part, card), mod-part).
Words Cardinal(uint64_t value) {
  for (const Card& card : kCards) {
    if (card.value > value) continue;
    uint64_t div, mod;
    if (value == 0) {
      div = 1;
      mod = 0;
    } else {
      div = value / card.value;
      mod = value % card.value;
    }
    Words left = (div == 1) ? Words{"one", 1} : Cardinal(div);
    Words acc = Merge(left, Words{card.word, card.value});
    if (mod != 0) acc = Merge(acc, Cardinal(mod));
    return acc;
  }
  return {"zero", 0};  // unreachable: the table ends with 0
}

}  // namespace

std::string NumberToWords(int64_t n) {
  if (n < 0) {
    // Two's complement safe magnitude.
    const uint64_t magnitude = static_cast<uint64_t>(-(n + 1)) + 1;
    return absl::StrCat("minus ", Cardinal(magnitude).first);
  }
  return Cardinal(static_cast<uint64_t>(n)).first;
}

std::string FormatDuration(int64_t seconds) {
  // timedelta normalises to days (may be negative), seconds in [0, 86400).
  int64_t days = seconds / 86400;
  int64_t rem = seconds % 86400;
  if (rem < 0) {
    rem += 86400;
    days -= 1;
  }
  const int64_t hh = rem / 3600;
  const int64_t mm = (rem % 3600) / 60;
  const int64_t ss = rem % 60;
  std::string hms = absl::StrFormat("%d:%02d:%02d", hh, mm, ss);
  if (days == 0) return hms;
  const bool plural = days != 1 && days != -1;
  return absl::StrFormat("%d day%s, %s", days, plural ? "s" : "", hms);
}

std::string FormatTimestamp(int64_t minutes, int64_t seconds) {
  return absl::StrFormat("%02d:%02d", minutes, seconds);
}


absl::StatusOr<std::string> BuildVideoPromptText(int64_t frame_count, int64_t duration_int,
                                                 const std::vector<FrameTimestamp>& timestamps,
                                                 absl::string_view image_block) {
  if (timestamps.empty()) {
    return absl::InvalidArgumentError("a video prompt needs at least one frame");
  }
  if (frame_count < static_cast<int64_t>(timestamps.size())) {
    return absl::InvalidArgumentError(absl::StrCat("frame_count ", frame_count,
                                                   " is smaller than the number of frames ",
                                                   timestamps.size()));
  }
  std::string out = absl::StrCat("You are provided the following series of ",
                                 NumberToWords(frame_count), " frames from a ",
                                 FormatDuration(duration_int), " [H:MM:SS] video.\n");
  for (const FrameTimestamp& ts : timestamps) {
    absl::StrAppend(&out, "\nFrame from ", FormatTimestamp(ts.minutes, ts.seconds), ":",
                    image_block);
  }
  out += "\n\n";
  return out;
}

}  // namespace smolserve::preprocess
