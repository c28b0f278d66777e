#include "storage/snippet.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace conveyor::storage {
namespace {

TEST(Snippet, CountsWholeWordsCaseInsensitively) {
  const std::vector<std::string> terms = {"forklift", "dont"};
  EXPECT_EQ(CountTermHits("Forklift forklifts FORKLIFT, forklift-driver", terms), 3);
  EXPECT_EQ(CountTermHits("I don't know; dont.", terms), 2);
  EXPECT_EQ(CountTermHits("don' t", terms), 0);
  EXPECT_EQ(CountTermHits("", terms), 0);
  EXPECT_EQ(CountTermHits("forklift", {}), 0);
}

TEST(Snippet, MarksMatchesAndKeepsWhatLiesBetweenWords) {
  EXPECT_EQ(TermSnippet("The forklift, then the pallet.", {"forklift", "pallet"}, 12),
            "The **forklift**, then the **pallet**.");
  EXPECT_EQ(TermSnippet("I don't drive", {"dont"}, 12), "I **don't** drive");
}

TEST(Snippet, NoMatchNoSnippet) {
  EXPECT_EQ(TermSnippet("nothing here", {"forklift"}, 12), "");
  EXPECT_EQ(TermSnippet("forklift", {"forklift"}, 0), "");
  EXPECT_EQ(BestChunkSnippet({"a b", "c d"}, {"forklift"}, 12), "");
  EXPECT_EQ(BestChunkSnippet({}, {"forklift"}, 12), "");
}

TEST(Snippet, CutsTheTextAroundTheMatchesWithEllipses) {
  std::string text;
  for (int i = 0; i < 40; ++i) text += "w" + std::to_string(i) + " ";
  text += "forklift";
  for (int i = 40; i < 80; ++i) text += " w" + std::to_string(i);
  text += ".";
  // Five words, the match in the middle.
  EXPECT_EQ(TermSnippet(text, {"forklift"}, 5), "…w38 w39 **forklift** w40 w41…");
  // At the start and at the end of the text: no ellipsis on that side, and
  // the text's last punctuation kept.
  EXPECT_EQ(TermSnippet("forklift a b c d e f", {"forklift"}, 3), "**forklift** a b…");
  EXPECT_EQ(TermSnippet("a b c d e forklift.\n", {"forklift"}, 3), "…d e **forklift**.");
}

TEST(Snippet, PrefersTheWindowWithMoreDistinctTerms) {
  // "pallet pallet pallet" early; "forklift ... pallet" later: two terms win.
  const std::string text = "pallet pallet pallet x x x x x x x x forklift y pallet z z z z z";
  EXPECT_EQ(TermSnippet(text, {"forklift", "pallet"}, 4), "…**forklift** y **pallet** z…");
}

TEST(Snippet, TheChunkWithTheMostMatchesGivesTheSnippet) {
  const std::vector<std::string> chunks = {"one forklift", "forklift and forklift", "forklift x"};
  EXPECT_EQ(BestChunkSnippet(chunks, {"forklift"}, 12), "**forklift** and **forklift**");
  // Among equals the first.
  EXPECT_EQ(BestChunkSnippet({"a forklift", "b forklift"}, {"forklift"}, 12), "a **forklift**");
}

TEST(Snippet, NonAsciiBytesAreWordBytes) {
  EXPECT_EQ(TermSnippet("Straße café forklift", {"café"}, 12), "Straße **café** forklift");
  // Every cut of a multi-byte text stays whole words (no split code point).
  const std::string text = "äöü äöü forklift äöü äöü äöü";
  EXPECT_EQ(TermSnippet(text, {"forklift"}, 1), "…**forklift**…");
}

// Every prefix of a text: the snippet never reads past the text, and it
// marks as many words as the prefix holds (up to the window).
TEST(Snippet, EveryPrefixOfAText) {
  const std::string text = "Forklift, pallet; don't forklift\n\xc3\xa4 pallet.";
  const std::vector<std::string> terms = {"forklift", "pallet", "dont"};
  for (size_t n = 0; n <= text.size(); ++n) {
    const std::string prefix = text.substr(0, n);
    const std::string s = TermSnippet(prefix, terms, 64);
    size_t marks = 0;
    for (size_t p = s.find("**"); p != std::string::npos; p = s.find("**", p + 2)) ++marks;
    EXPECT_EQ(marks, 2u * static_cast<size_t>(CountTermHits(prefix, terms))) << n << ": " << s;
  }
}

}  // namespace
}  // namespace conveyor::storage
