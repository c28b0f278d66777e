#include "http/internal/query.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace conveyor::http {
namespace {

std::vector<std::pair<std::string, std::string>> Pairs(std::string_view query, bool* ok) {
  std::vector<std::pair<std::string, std::string>> out;
  *ok = ParseQuery(query, [&](std::string& k, std::string& v) { out.emplace_back(k, v); });
  return out;
}

TEST(Query, FormDecodeTurnsPlusAndEscapesIntoBytes) {
  std::string out;
  ASSERT_TRUE(FormDecode("quick+brown%20fox%2b%00", &out));
  EXPECT_EQ(out, std::string("quick brown fox+\0", 17));
  EXPECT_FALSE(FormDecode("%", &out));
  EXPECT_FALSE(FormDecode("%4", &out));
  EXPECT_FALSE(FormDecode("%zz", &out));
}

TEST(Query, PairsInOrderSkippingEmptyOnes) {
  bool ok = false;
  auto pairs = Pairs("a=1&&b&c=&=d&a=2", &ok);
  ASSERT_TRUE(ok);
  std::vector<std::pair<std::string, std::string>> expected = {
      {"a", "1"}, {"b", ""}, {"c", ""}, {"", "d"}, {"a", "2"}};
  EXPECT_EQ(pairs, expected);
  Pairs("a=1&b=%G0", &ok);
  EXPECT_FALSE(ok);
}

TEST(Query, SearchQueryReadsItsThreeParameters) {
  std::string_view code = "unset";
  auto q = ParseSearchQuery("session_id=s1&q=quick%20brown&limit=5&other=x", &code);
  ASSERT_TRUE(q.ok()) << q.status().ToString();
  EXPECT_EQ(q->session_id, "s1");
  EXPECT_EQ(q->q, "quick brown");
  EXPECT_EQ(q->limit, 5);
  EXPECT_TRUE(code.empty());
  EXPECT_EQ(ParseSearchQuery("session_id=s&q=x", nullptr)->limit, kSearchDefaultLimit);
  EXPECT_EQ(ParseSearchQuery("session_id=s&q=x&limit=1000", nullptr)->limit, kSearchMaxLimit);
  EXPECT_EQ(ParseSearchQuery("session_id=a&session_id=b&q=x", nullptr)->session_id, "b");
}

TEST(Query, SearchQueryErrorsCarryTheirCodes) {
  std::string_view code;
  EXPECT_EQ(ParseSearchQuery("q=x", &code).code(), Errc::kInvalidArgument);
  EXPECT_EQ(code, "missing_session_id");
  EXPECT_EQ(ParseSearchQuery("session_id=s&q=", &code).code(), Errc::kInvalidArgument);
  EXPECT_EQ(code, "missing_query");
  for (const char* bad : {"session_id=s&q=x&limit=", "session_id=s&q=x&limit=0",
                          "session_id=s&q=x&limit=-3", "session_id=s&q=x&limit=5x",
                          "session_id=s%&q=x", "session_id=s&q=x&limit=5%00junk",
                          "session_id=s&q=x&limit=99%00"}) {
    EXPECT_EQ(ParseSearchQuery(bad, &code).code(), Errc::kInvalidArgument) << bad;
    EXPECT_TRUE(code.empty()) << bad;
  }
  // The session id rule of uploads: valid UTF-8, no NUL (libpq would cut the
  // id at it and search another session), at most 256 bytes.
  for (std::string bad : {std::string("session_id=s%00t&q=x"), std::string("session_id=s%FF&q=x"),
                          "session_id=" + std::string(257, 's') + "&q=x"}) {
    EXPECT_EQ(ParseSearchQuery(bad, &code).code(), Errc::kInvalidArgument) << bad;
    EXPECT_EQ(code, "invalid_session_id") << bad;
  }
  EXPECT_EQ(ParseSearchQuery("session_id=s&q=%FF", &code).code(), Errc::kInvalidArgument);
  EXPECT_EQ(code, "invalid_query");
}

}  // namespace
}  // namespace conveyor::http
