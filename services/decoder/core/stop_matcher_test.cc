#include "services/decoder/core/stop_matcher.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace smolserve::decoder {
namespace {

// Feeds `pieces` and returns what was emitted, and whether/where it stopped.
std::string Feed(std::vector<std::string> stops, const std::vector<std::string>& pieces,
                bool* stopped = nullptr, std::string* matched = nullptr) {
  StopMatcher m(std::move(stops));
  std::string out;
  bool s = false;
  for (const auto& p : pieces) {
    StopMatcher::Step step = m.Add(p);
    out += step.text;
    if (step.stopped) {
      s = true;
      if (matched) *matched = step.matched;
    }
  }
  if (!s) out += m.Flush();
  if (stopped) *stopped = s;
  return out;
}

TEST(StopMatcher, NoStopsPassesEverythingThrough) {
  StopMatcher m({});
  EXPECT_EQ(m.Add("abc").text, "abc");
  EXPECT_EQ(m.Flush(), "");
}

TEST(StopMatcher, StopsAtTheFirstStopStringWithoutReturningIt) {
  bool stopped = false;
  std::string matched;
  EXPECT_EQ(Feed({"END"}, {"hello E", "N", "D and more"}, &stopped, &matched), "hello ");
  EXPECT_TRUE(stopped);
  EXPECT_EQ(matched, "END");
  EXPECT_EQ(Feed({"\n\n", "xy"}, {"a", "x", "y", "\n\n"}, &stopped, &matched), "a");
  EXPECT_EQ(matched, "xy");
}

TEST(StopMatcher, HoldsBackOnlyWhatCouldStartAStop) {
  StopMatcher m({"stop"});
  EXPECT_EQ(m.Add("a s").text, "a ");   // "s" may start "stop"
  EXPECT_EQ(m.Add("t").text, "");       // "st"
  EXPECT_EQ(m.Add("ar").text, "star");  // "star" cannot
  EXPECT_EQ(m.Flush(), "");
}

TEST(StopMatcher, FalseStartsAreEmittedAndTheTailFlushed) {
  bool stopped = true;
  EXPECT_EQ(Feed({"abc"}, {"ab", "ab", "ab"}, &stopped), "ababab");
  EXPECT_FALSE(stopped);
}

TEST(StopMatcher, NeverSplitsAUtf8Character) {
  // "é" is C3 A9; a stop string starting with A9 must not cut the character in two.
  StopMatcher m({"\xA9x"});
  StopMatcher::Step s = m.Add("caf\xC3\xA9");
  EXPECT_EQ(s.text, "caf");
  EXPECT_EQ(m.Flush(), "\xC3\xA9");
}

TEST(StopMatcher, MatchesEveryWayTheTextCanBeSplit) {
  const std::string text = "the quick brown fox jumps";
  for (size_t cut1 = 0; cut1 <= text.size(); ++cut1) {
    for (size_t cut2 = cut1; cut2 <= text.size(); ++cut2) {
      bool stopped = false;
      std::string out = Feed({"fox", "zzz"}, {text.substr(0, cut1), text.substr(cut1, cut2 - cut1),
                                             text.substr(cut2)},
                            &stopped);
      ASSERT_TRUE(stopped) << cut1 << " " << cut2;
      ASSERT_EQ(out, "the quick brown ") << cut1 << " " << cut2;
    }
  }
}

}  // namespace
}  // namespace smolserve::decoder
