#include "core/ids.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace conveyor {
namespace {

TEST(Ids, NewUuidIsCanonicalVersion4AndUnique) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    std::string id = NewUuid();
    ASSERT_TRUE(IsUuid(id)) << id;
    EXPECT_EQ(id[14], '4');
    EXPECT_TRUE(id[19] == '8' || id[19] == '9' || id[19] == 'a' || id[19] == 'b');
    seen.insert(id);
  }
  EXPECT_EQ(seen.size(), 1000u);
}

// A job id: canonical, version 7, its first 48 bits the wall clock's
// milliseconds, unique, and later ones sort later across milliseconds.
TEST(Ids, NewJobIdIsCanonicalVersion7TimeOrderedAndUnique) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    const int64_t before = NowMs();
    std::string id = NewJobId();
    const int64_t after = NowMs();
    ASSERT_TRUE(IsUuid(id)) << id;
    EXPECT_EQ(id[14], '7');
    EXPECT_TRUE(id[19] == '8' || id[19] == '9' || id[19] == 'a' || id[19] == 'b');
    const int64_t ms = std::stoll(id.substr(0, 8) + id.substr(9, 4), nullptr, 16);
    EXPECT_GE(ms, before) << id;
    EXPECT_LE(ms, after) << id;
    seen.insert(id);
  }
  EXPECT_EQ(seen.size(), 1000u);
  std::string earlier = NewJobId();
  const int64_t t = NowMs();
  while (NowMs() == t) {
  }
  EXPECT_LT(earlier, NewJobId());
}

TEST(Ids, IsUuidRejectsOtherShapes) {
  EXPECT_FALSE(IsUuid(""));
  EXPECT_FALSE(IsUuid("123"));
  EXPECT_FALSE(IsUuid("../../etc/passwd"));
  EXPECT_FALSE(IsUuid("AAAAAAAA-AAAA-4AAA-8AAA-AAAAAAAAAAAA"));
  EXPECT_TRUE(IsUuid("0f8fad5b-d9cb-469f-a165-70867728950e"));
}

TEST(Ids, HexEncode) { EXPECT_EQ(HexEncode(std::string("\x00\xff\x10", 3)), "00ff10"); }

TEST(Base64, RoundTripsAndRefusesJunk) {
  for (const std::string& s : std::initializer_list<std::string>{"", "a", "ab", "abc", "abcd", std::string("\0\xff\x10", 3)}) {
    EXPECT_EQ(Base64Decode(Base64Encode(s)), s);
  }
  EXPECT_EQ(Base64Decode("czE="), "s1");
  EXPECT_EQ(Base64Decode("czE"), "s1");  // padding optional
  EXPECT_FALSE(Base64Decode("c!E=").has_value());
  EXPECT_FALSE(Base64Decode("c").has_value());
}

}  // namespace
}  // namespace conveyor
