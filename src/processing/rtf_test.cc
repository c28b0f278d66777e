// The hand-written RTF reader, tested hard: every split, every prefix,
// hostile nesting.
#include "processing/internal/rtf.h"

#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <random>
#include <sstream>

#include "processing/internal/text_util.h"

namespace conveyor::processing::internal {
namespace {

std::string ReadCorpus(const std::string& name) {
  std::ifstream in(std::string(CONVEYOR_TEST_DATA_DIR) + "/" + name, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Result<std::string> ReadRtf(std::string_view rtf, size_t max_text = 1 << 20) {
  RtfReader r(max_text);
  Status s = r.Feed(rtf);
  if (!s.ok()) return s;
  return r.Finish();
}

TEST(Rtf, YieldsBodyTextWithoutDestinations) {
  auto text = ReadRtf(ReadCorpus("sample.rtf"));
  ASSERT_TRUE(text.ok()) << text.status().ToString();
  EXPECT_NE(text->find("Meeting notes for the launch project.\n"), std::string::npos) << *text;
  EXPECT_NE(text->find("Caf\xC3\xA9 au lait costs \xE2\x82\xAC 3.\n"), std::string::npos) << *text;
  EXPECT_NE(text->find("Unicode: \xE2\x82\xAC and \xE4\xBD\xA0\xE5\xA5\xBD.\n"), std::string::npos) << *text;
  EXPECT_NE(text->find("Braces { and } and backslash \\ stay."), std::string::npos) << *text;
  EXPECT_NE(text->find("Col A\tCol B"), std::string::npos) << *text;
  EXPECT_NE(text->find("Cell one | Cell two\n"), std::string::npos) << *text;
  for (const char* hidden : {"Helvetica", "Times", "Hidden Title", "Someone", "Normal", "Hand Written",
                             "89504e", "red255", "pngblip"}) {
    EXPECT_EQ(text->find(hidden), std::string::npos) << hidden << " in " << *text;
  }
  EXPECT_TRUE(IsValidUtf8(*text, false));
}

TEST(Rtf, SplitAtEveryByteGivesTheSameText) {
  std::string rtf = ReadCorpus("sample.rtf");
  auto whole = ReadRtf(rtf);
  ASSERT_TRUE(whole.ok());
  for (size_t split = 0; split <= rtf.size(); ++split) {
    RtfReader r(1 << 20);
    ASSERT_TRUE(r.Feed(std::string_view(rtf).substr(0, split)).ok()) << split;
    ASSERT_TRUE(r.Feed(std::string_view(rtf).substr(split)).ok()) << split;
    auto text = r.Finish();
    ASSERT_TRUE(text.ok()) << split;
    EXPECT_EQ(*text, *whole) << "split at " << split;
  }
  // And one byte at a time.
  RtfReader r(1 << 20);
  for (char c : rtf) ASSERT_TRUE(r.Feed(std::string_view(&c, 1)).ok());
  auto text = r.Finish();
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(*text, *whole);
}

TEST(Rtf, EveryPrefixFailsCleanlyAndItsTextIsAPrefix) {
  std::string rtf = ReadCorpus("sample.rtf");
  auto whole = ReadRtf(rtf);
  ASSERT_TRUE(whole.ok());
  // The last '}' closes the document: every shorter prefix is truncated.
  size_t end = rtf.rfind('}') + 1;
  for (size_t n = 0; n <= rtf.size(); ++n) {
    RtfReader r(1 << 20);
    Status fed = r.Feed(std::string_view(rtf).substr(0, n));
    ASSERT_TRUE(fed.ok()) << n;
    std::string so_far = r.text();
    EXPECT_TRUE(whole->starts_with(so_far)) << "prefix " << n << ": [" << so_far << "]";
    auto text = r.Finish();
    if (n < end) {
      ASSERT_FALSE(text.ok()) << n;
      EXPECT_EQ(text.code(), Errc::kInvalidArgument);
      EXPECT_TRUE(text.status().message() == "Invalid file format" ||
                  text.status().message() == "Invalid RTF: truncated (a group is not closed)")
          << n << ": " << text.status().message();
    } else {
      ASSERT_TRUE(text.ok()) << n;
      EXPECT_EQ(*text, *whole);
    }
  }
}

TEST(Rtf, DeepNestingIsRefusedQuickly) {
  auto start = std::chrono::steady_clock::now();
  std::string rtf = "{\\rtf1 " + std::string(1'000'000, '{') + "x" + std::string(1'000'000, '}') + "}";
  auto text = ReadRtf(rtf);
  ASSERT_FALSE(text.ok());
  EXPECT_EQ(text.code(), Errc::kInvalidArgument);
  EXPECT_EQ(text.status().message(), "Invalid RTF: groups nested deeper than 1000 levels");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
  // Nesting within the limit is fine.
  std::string ok = "{\\rtf1 " + std::string(500, '{') + "deep" + std::string(500, '}') + "}";
  auto fine = ReadRtf(ok);
  ASSERT_TRUE(fine.ok()) << fine.status().ToString();
  EXPECT_EQ(*fine, "deep");
}

TEST(Rtf, NotRtfIsInvalidFormat) {
  EXPECT_EQ(ReadRtf("hello").status().message(), "Invalid file format");
  EXPECT_EQ(ReadRtf("{\\rt").status().message(), "Invalid file format");
  EXPECT_EQ(ReadRtf("").status().message(), "Invalid file format");
}

TEST(Rtf, ControlWordDetails) {
  // A space ends a control word and is eaten; other delimiters are not.
  EXPECT_EQ(*ReadRtf("{\\rtf1 a\\par b\\par\nc}"), "a\nb\nc");
  // \ucN sets how many fallback characters follow \uN.
  EXPECT_EQ(*ReadRtf("{\\rtf1\\uc2 \\u233XYz}"), "\xC3\xA9z");
  EXPECT_EQ(*ReadRtf("{\\rtf1\\uc0 \\u233 z}"), "\xC3\xA9z");
  // Negative \uN is N + 65536; a surrogate pair is joined.
  EXPECT_EQ(*ReadRtf("{\\rtf1 \\u-10179?\\u-8704?}"), "\xF0\x9F\x98\x80");
  // A lone high surrogate becomes U+FFFD.
  EXPECT_EQ(*ReadRtf("{\\rtf1 \\u-10179?x}"), "\xEF\xBF\xBDx");
  // \binN skips raw bytes, braces included.
  EXPECT_EQ(*ReadRtf("{\\rtf1 a\\bin4 }{}\\}"), "a");
  // {\* ...} destinations are skipped whatever their name.
  EXPECT_EQ(*ReadRtf("{\\rtf1 a{\\*\\unknowndest secret}b}"), "ab");
  // \'hh in another code page (Windows-1251, Cyrillic).
  EXPECT_EQ(*ReadRtf("{\\rtf1\\ansi\\ansicpg1251 \\'cf\\'f0\\'e8}"), "\xD0\x9F\xD1\x80\xD0\xB8");
  // Broken escapes do not derail the reader.
  EXPECT_EQ(*ReadRtf("{\\rtf1 a\\'zz b}"), "azz b");
  // Text after the document's closing brace is ignored.
  EXPECT_EQ(*ReadRtf("{\\rtf1 a}trailing"), "a");
}

TEST(Rtf, TextLimitIsRespected) {
  std::string rtf = "{\\rtf1 " + std::string(10000, 'a') + "}";
  auto text = ReadRtf(rtf, 100);
  ASSERT_TRUE(text.ok());
  EXPECT_LE(text->size(), 100u);
}

}  // namespace
}  // namespace conveyor::processing::internal

namespace conveyor::processing::internal {
namespace {

// Random RTF-ish input made of the tokens the reader treats specially.
std::string RandomRtf(std::mt19937& rng) {
  static const char* kTokens[] = {"{", "}", "\\", "\\par ", "\\'e9", "\\'", "\\'4", "\\u", "\\u-",
                                  "\\u233?", "\\u-10179?", "\\uc0 ", "\\uc3 ", "\\*", "\\fonttbl ",
                                  "\\pict ", "\\bin3 ", "\\bin", "\\ansicpg1251 ", "\\ansicpg99999 ",
                                  "\\cell ", "\\row ", "\\tab ", "x", "text ", "\xE9", "\x01", "\n",
                                  "\\~", "\\-", "\\{", "\\}", "\\\\", "\\u99999999999999 ", "\\b0"};
  std::string s = "{\\rtf1 ";
  int n = static_cast<int>(rng() % 60);
  for (int i = 0; i < n; ++i) s += kTokens[rng() % std::size(kTokens)];
  if (rng() % 2 == 0) s += std::string(rng() % 5, '}');
  return s;
}

TEST(Rtf, RandomInputNeverBreaksTheReader) {
  std::mt19937 rng(7);
  for (int iter = 0; iter < 3000; ++iter) {
    std::string rtf = RandomRtf(rng);
    RtfReader whole(1 << 16);
    Status fed = whole.Feed(rtf);
    auto text = whole.Finish();
    if (text.ok()) {
      EXPECT_TRUE(IsValidUtf8(*text, false)) << rtf;
    } else {
      EXPECT_EQ(text.code(), Errc::kInvalidArgument) << rtf;
    }
    // Split anywhere: the same outcome and the text only ever grows.
    size_t split = rng() % (rtf.size() + 1);
    RtfReader parts(1 << 16);
    Status a = parts.Feed(std::string_view(rtf).substr(0, split));
    std::string early = parts.text();
    Status b = a.ok() ? parts.Feed(std::string_view(rtf).substr(split)) : a;
    auto text2 = parts.Finish();
    EXPECT_EQ(text.ok(), text2.ok()) << rtf;
    if (text.ok() && text2.ok()) {
      EXPECT_EQ(*text, *text2) << rtf;
      EXPECT_TRUE(text2->starts_with(early)) << rtf;
    }
    (void)fed;
    (void)b;
  }
}

}  // namespace
}  // namespace conveyor::processing::internal
