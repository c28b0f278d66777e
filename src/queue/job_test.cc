#include "queue/job.h"

#include <gtest/gtest.h>

#include <limits>

namespace conveyor::queue {
namespace {

TEST(Backoff, ExponentialDoublesFromTheBase) {
  EXPECT_EQ(BackoffDelayMs(BackoffType::kExponential, 5000, 1), 5000);
  EXPECT_EQ(BackoffDelayMs(BackoffType::kExponential, 5000, 2), 10000);
  EXPECT_EQ(BackoffDelayMs(BackoffType::kExponential, 5000, 3), 20000);
  EXPECT_EQ(BackoffDelayMs(BackoffType::kExponential, 500, 2), 1000);
}

TEST(Backoff, FixedAndZero) {
  EXPECT_EQ(BackoffDelayMs(BackoffType::kFixed, 700, 1), 700);
  EXPECT_EQ(BackoffDelayMs(BackoffType::kFixed, 700, 5), 700);
  EXPECT_EQ(BackoffDelayMs(BackoffType::kExponential, 0, 3), 0);
}

TEST(Backoff, HugeAttemptCountsDoNotOverflow) {
  int64_t d = BackoffDelayMs(BackoffType::kExponential, 5000, 1000);
  EXPECT_GT(d, 0);
}

TEST(Backoff, DelayNearInt64MaxWaitsForeverInsteadOfGoingNegative) {
  const int64_t max = std::numeric_limits<int64_t>::max();
  EXPECT_EQ(BackoffDelayMs(BackoffType::kExponential, 9'000'000'000'000'000'000, 2), max);
  EXPECT_EQ(BackoffDelayMs(BackoffType::kExponential, max, 1), max);
  EXPECT_EQ(BackoffDelayMs(BackoffType::kExponential, 1'000'000'000'000, 41), max);
  EXPECT_EQ(BackoffDelayMs(BackoffType::kFixed, max, 3), max);
}

TEST(Retry, FollowsBullMqRule) {
  // attempts 3: attempts made 0 and 1 retry, 2 is the last.
  EXPECT_TRUE(ShouldRetry(0, 3, true));
  EXPECT_TRUE(ShouldRetry(1, 3, true));
  EXPECT_FALSE(ShouldRetry(2, 3, true));
  EXPECT_FALSE(ShouldRetry(0, 3, false));  // permanent errors never retry
  EXPECT_FALSE(ShouldRetry(0, 0, true));   // attempts 0 means one try
  EXPECT_FALSE(ShouldRetry(0, 1, true));
}

// attempts made is read from the job's hash, which any Redis client may write.
TEST(Retry, AttemptsMadeAtIntMaxDoesNotOverflow) {
  const int max = std::numeric_limits<int>::max();
  EXPECT_FALSE(ShouldRetry(max, max, true));
  EXPECT_FALSE(ShouldRetry(max, 3, true));
  EXPECT_TRUE(ShouldRetry(max - 2, max, true));
  EXPECT_FALSE(ShouldRetry(std::numeric_limits<int>::min(), std::numeric_limits<int>::min(), true));
}

}  // namespace
}  // namespace conveyor::queue
