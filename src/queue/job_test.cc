#include "queue/job.h"

#include <gtest/gtest.h>

#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "queue/payload.h"

namespace conveyor::queue {
namespace {

TEST(JobPayload, EncodingIsNlohmannsTextForEveryKindOfString) {
  const std::vector<std::string> texts = {
      "", "plain", "quote \" backslash \\ slash /", "\b\f\n\r\t", std::string("nul\0x", 5),
      "\x01\x1f\x7f", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
      // Not UTF-8: replaced the way nlohmann replaces it.
      "bad \xff end", "\xc3", "\xed\xa0\x80 surrogate", "\xc0\xaf overlong"};
  for (const std::string& t : texts) {
    JobPayload p{t, "u" + t, "s" + t, "/data/" + t, t, t, -42, t, "r" + t};
    nlohmann::json j = {{"jobId", p.job_id},       {"userId", p.user_id},
                        {"sessionId", p.session_id}, {"storagePath", p.storage_path},
                        {"originalName", p.original_name}, {"mimeType", p.mime_type},
                        {"size", p.size},          {"message", p.message},
                        {"requestId", p.request_id}};
    EXPECT_EQ(EncodeJobPayload(p),
              j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace))
        << "text: " << t;
  }
}

TEST(JobPayload, RequestIdIsOptionalBothWays) {
  JobPayload p{"j", "u", "s", "/d", "a", "m", 1, ""};
  EXPECT_EQ(EncodeJobPayload(p).find("requestId"), std::string::npos);
  auto back = DecodeJobPayload(EncodeJobPayload(p));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->request_id, "");
  p.request_id = "req-1";
  back = DecodeJobPayload(EncodeJobPayload(p));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->request_id, "req-1");
}

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
