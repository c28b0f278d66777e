#include "http/internal/rate_limiter.h"

#include <gtest/gtest.h>

namespace conveyor::http {
namespace {

TEST(RateLimiter, AllowsABurstThenRefillsAtTheSteadyRate) {
  RateLimiter rl(60);  // one per second, burst 60
  int64_t retry = 0;
  for (int i = 0; i < 60; ++i) EXPECT_TRUE(rl.Allow("u", 1000, &retry)) << i;
  EXPECT_FALSE(rl.Allow("u", 1000, &retry));
  EXPECT_EQ(retry, 1);
  EXPECT_FALSE(rl.Allow("u", 1500, &retry));
  EXPECT_TRUE(rl.Allow("u", 2001, &retry));
  EXPECT_TRUE(rl.Allow("other", 2001, &retry));
}

TEST(RateLimiter, RetryAfterCoversTheWaitForOneToken) {
  RateLimiter rl(2);  // one token per 30 s
  int64_t retry = 0;
  EXPECT_TRUE(rl.Allow("u", 0, &retry));
  EXPECT_TRUE(rl.Allow("u", 0, &retry));
  EXPECT_FALSE(rl.Allow("u", 0, &retry));
  EXPECT_EQ(retry, 30);
}

TEST(RateLimiter, ZeroMeansOff) {
  RateLimiter rl(0);
  int64_t retry = 0;
  for (int i = 0; i < 1000; ++i) EXPECT_TRUE(rl.Allow("u", 0, &retry));
}

}  // namespace
}  // namespace conveyor::http
