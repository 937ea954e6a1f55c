#include "services/preprocess/core/video/video_prompt.h"

#include <string>

#include "gtest/gtest.h"

namespace smolserve::preprocess {
namespace {

TEST(NumberToWords, SmallNumbers) {
  EXPECT_EQ(NumberToWords(0), "zero");
  EXPECT_EQ(NumberToWords(1), "one");
  EXPECT_EQ(NumberToWords(8), "eight");
  EXPECT_EQ(NumberToWords(11), "eleven");
  EXPECT_EQ(NumberToWords(13), "thirteen");
  EXPECT_EQ(NumberToWords(19), "nineteen");
  EXPECT_EQ(NumberToWords(20), "twenty");
  EXPECT_EQ(NumberToWords(21), "twenty-one");
  EXPECT_EQ(NumberToWords(40), "forty");
  EXPECT_EQ(NumberToWords(64), "sixty-four");
  EXPECT_EQ(NumberToWords(99), "ninety-nine");
}

TEST(NumberToWords, HundredsAndThousandsLikeNum2words) {
  // Outputs of num2words' Num2Word_EN (merge rules: "and" after hundreds, ", " between
  // groups).
  EXPECT_EQ(NumberToWords(100), "one hundred");
  EXPECT_EQ(NumberToWords(101), "one hundred and one");
  EXPECT_EQ(NumberToWords(128), "one hundred and twenty-eight");
  EXPECT_EQ(NumberToWords(200), "two hundred");
  EXPECT_EQ(NumberToWords(256), "two hundred and fifty-six");
  EXPECT_EQ(NumberToWords(1000), "one thousand");
  EXPECT_EQ(NumberToWords(1001), "one thousand and one");
  EXPECT_EQ(NumberToWords(1100), "one thousand, one hundred");
  EXPECT_EQ(NumberToWords(1234), "one thousand, two hundred and thirty-four");
  EXPECT_EQ(NumberToWords(21000), "twenty-one thousand");
  EXPECT_EQ(NumberToWords(1000000), "one million");
  EXPECT_EQ(NumberToWords(2000001), "two million and one");
  EXPECT_EQ(NumberToWords(-5), "minus five");
}

TEST(FormatDuration, LikePythonTimedelta) {
  EXPECT_EQ(FormatDuration(0), "0:00:00");
  EXPECT_EQ(FormatDuration(7), "0:00:07");
  EXPECT_EQ(FormatDuration(11), "0:00:11");
  EXPECT_EQ(FormatDuration(29), "0:00:29");
  EXPECT_EQ(FormatDuration(64), "0:01:04");
  EXPECT_EQ(FormatDuration(3723), "1:02:03");
  EXPECT_EQ(FormatDuration(36000), "10:00:00");
  EXPECT_EQ(FormatDuration(86400), "1 day, 0:00:00");
  EXPECT_EQ(FormatDuration(2 * 86400 + 3 * 3600 + 4 * 60 + 5), "2 days, 3:04:05");
  EXPECT_EQ(FormatDuration(-1), "-1 day, 23:59:59");
}

TEST(FormatTimestamp, ZeroPadded) {
  EXPECT_EQ(FormatTimestamp(0, 0), "00:00");
  EXPECT_EQ(FormatTimestamp(1, 5), "01:05");
  EXPECT_EQ(FormatTimestamp(123, 59), "123:59");
}


TEST(BuildVideoPromptText, Layout) {
  auto text = BuildVideoPromptText(3, 75, {{0, 0}, {1, 5}}, "[B]");
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(*text,
            "You are provided the following series of three frames from a 0:01:15 [H:MM:SS] "
            "video.\n\nFrame from 00:00:[B]\nFrame from 01:05:[B]\n\n");
  EXPECT_FALSE(BuildVideoPromptText(1, 5, {{0, 0}, {0, 1}}, "[B]").ok());
  EXPECT_FALSE(BuildVideoPromptText(1, 5, {}, "[B]").ok());
}

}  // namespace
}  // namespace smolserve::preprocess
