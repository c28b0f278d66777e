#include "core/words.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace conveyor {
namespace {

struct Cut {
  std::string bytes;
  std::string folded;
  bool operator==(const Cut&) const = default;
};

std::vector<Cut> Cuts(std::string_view text) {
  std::vector<Cut> out;
  ForEachWord(text, [&](size_t begin, size_t end, const std::string& folded) {
    out.push_back({std::string(text.substr(begin, end - begin)), folded});
  });
  return out;
}

TEST(Words, RunsOfLettersDigitsAndNonAsciiBytesLowerCased) {
  EXPECT_EQ(Cuts("Hello, WORLD 42x!"),
            (std::vector<Cut>{{"Hello", "hello"}, {"WORLD", "world"}, {"42x", "42x"}}));
  EXPECT_EQ(Cuts("naïve 日本語-Text"),
            (std::vector<Cut>{{"naïve", "naïve"}, {"日本語", "日本語"}, {"Text", "text"}}));
  // Only ASCII is folded: "Ä" stays as it is.
  EXPECT_EQ(Cuts("ÄRGER"), (std::vector<Cut>{{"ÄRGER", "Ärger"}}));
  EXPECT_TRUE(Cuts("").empty());
  EXPECT_TRUE(Cuts(" .,;-_'\"\t\n").empty());
}

TEST(Words, AnApostropheJoinsOnlyBetweenAWordAndALetterOrDigit) {
  EXPECT_EQ(Cuts("Don't"), (std::vector<Cut>{{"Don't", "dont"}}));
  EXPECT_EQ(Cuts("'quoted' rock'n'roll"),
            (std::vector<Cut>{{"quoted", "quoted"}, {"rock'n'roll", "rocknroll"}}));
  // At the end, doubled, or before a non-ASCII byte it splits.
  EXPECT_EQ(
      Cuts("dogs' x''y l'été"),
      (std::vector<Cut>{{"dogs", "dogs"}, {"x", "x"}, {"y", "y"}, {"l", "l"}, {"été", "été"}}));
  EXPECT_EQ(Cuts("end'"), (std::vector<Cut>{{"end", "end"}}));
}

TEST(Words, EveryPrefixCutsWithoutReadingPastItsEnd) {
  const std::string text = "It's a naïve test, isn't it? 'ok' 9'9";
  for (size_t n = 0; n <= text.size(); ++n) {
    std::string prefix = text.substr(0, n);  // its own allocation: ASan sees overreads
    for (const Cut& c : Cuts(prefix)) {
      EXPECT_FALSE(c.bytes.empty());
      EXPECT_LE(c.folded.size(), c.bytes.size());
    }
  }
  EXPECT_EQ(Cuts(text).size(), 8u);
}

}  // namespace
}  // namespace conveyor
