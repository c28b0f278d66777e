#include "http/internal/token_cache.h"

#include <gtest/gtest.h>

#include <string>

#include "http/auth.h"

namespace conveyor::http {
namespace {

constexpr std::string_view kSecret = "cache-secret-0123456789";
constexpr int64_t kNow = 1'700'000'000;

std::string Bearer(std::string_view user, int64_t ttl_s = 3600, std::string_view secret = kSecret,
                   int64_t minted_s = kNow) {
  auto t = MintToken(secret, user, minted_s, ttl_s);
  EXPECT_TRUE(t.ok());
  return "Bearer " + *t;
}

TEST(TokenCache, RepeatedTokenIsServedFromOneEntry) {
  TokenCache cache{std::string(kSecret)};
  std::string h = Bearer("alice");
  for (int i = 0; i < 3; ++i) {
    auto user = cache.Verify(h, kNow + i);
    ASSERT_TRUE(user.ok()) << user.status().ToString();
    EXPECT_EQ(*user, "alice");
  }
  EXPECT_EQ(cache.size(), 1u);
}

TEST(TokenCache, DifferentTokensMapToTheirOwnUsers) {
  TokenCache cache{std::string(kSecret)};
  std::string a = Bearer("alice"), b = Bearer("bob");
  EXPECT_EQ(*cache.Verify(a, kNow), "alice");
  EXPECT_EQ(*cache.Verify(b, kNow), "bob");
  EXPECT_EQ(*cache.Verify(a, kNow), "alice");
  EXPECT_EQ(*cache.Verify(b, kNow), "bob");
}

TEST(TokenCache, CachedTokenIsRefusedFromItsExpiry) {
  TokenCache cache{std::string(kSecret)};
  std::string h = Bearer("alice", /*ttl_s=*/10);
  ASSERT_TRUE(cache.Verify(h, kNow).ok());
  EXPECT_TRUE(cache.Verify(h, kNow + 9).ok());
  auto late = cache.Verify(h, kNow + 10);
  EXPECT_EQ(late.code(), Errc::kUnauthenticated);
  EXPECT_EQ(cache.size(), 0u);
}

TEST(TokenCache, TokenOfAnotherSecretIsRefusedAndNotCached) {
  TokenCache cache{std::string(kSecret)};
  std::string other = Bearer("mallory", 3600, "some-other-secret");
  EXPECT_EQ(cache.Verify(other, kNow).code(), Errc::kUnauthenticated);
  EXPECT_EQ(cache.Verify(other, kNow).code(), Errc::kUnauthenticated);
  EXPECT_EQ(cache.size(), 0u);
}

TEST(TokenCache, EntryOfOneCacheDoesNotVouchForAnotherSecret) {
  TokenCache a{std::string(kSecret)};
  TokenCache b{"a-different-secret"};
  std::string h = Bearer("alice");
  ASSERT_TRUE(a.Verify(h, kNow).ok());
  EXPECT_EQ(b.Verify(h, kNow).code(), Errc::kUnauthenticated);
}

TEST(TokenCache, SizeStaysWithinCapacity) {
  TokenCache cache{std::string(kSecret), /*capacity=*/2};
  std::string t[] = {Bearer("u1"), Bearer("u2"), Bearer("u3"), Bearer("u4")};
  for (const auto& h : t) {
    ASSERT_TRUE(cache.Verify(h, kNow).ok());
    EXPECT_LE(cache.size(), 2u);
  }
  // Evicted tokens still verify (the slow way).
  EXPECT_EQ(*cache.Verify(t[0], kNow), "u1");
}

TEST(TokenCache, FullCacheDropsExpiredEntriesFirst) {
  TokenCache cache{std::string(kSecret), /*capacity=*/2};
  std::string short_lived = Bearer("old", /*ttl_s=*/5);
  std::string long_lived = Bearer("keep", /*ttl_s=*/3600);
  ASSERT_TRUE(cache.Verify(short_lived, kNow).ok());
  ASSERT_TRUE(cache.Verify(long_lived, kNow).ok());
  std::string fresh = Bearer("new", 3600, kSecret, kNow + 10);
  ASSERT_TRUE(cache.Verify(fresh, kNow + 10).ok());
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_EQ(*cache.Verify(long_lived, kNow + 10), "keep");
  EXPECT_EQ(cache.Verify(short_lived, kNow + 10).code(), Errc::kUnauthenticated);
}

TEST(TokenCache, MalformedHeadersGetVerifyBearersErrors) {
  TokenCache cache{std::string(kSecret)};
  EXPECT_EQ(cache.Verify("", kNow).code(), Errc::kUnauthenticated);
  EXPECT_EQ(cache.Verify("Basic abc", kNow).code(), Errc::kUnauthenticated);
  EXPECT_EQ(cache.Verify("Bearer ", kNow).code(), Errc::kUnauthenticated);
  EXPECT_EQ(cache.Verify("Bearer not.a.jwt", kNow).code(), Errc::kUnauthenticated);
  EXPECT_EQ(cache.size(), 0u);
}

TEST(TokenCache, EmptySecretRefusesEverything) {
  TokenCache cache{""};
  EXPECT_EQ(cache.Verify(Bearer("alice"), kNow).code(), Errc::kUnauthenticated);
  EXPECT_EQ(cache.size(), 0u);
}

}  // namespace
}  // namespace conveyor::http
