// Per-user upload limits (queue/limits.h) against a real redis-server: two
// limiters on one Redis stand for two API processes.
#include "queue/limits.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "queue/internal/redis_connection.h"
#include "test_support.h"

namespace conveyor::queue {
namespace {

using conveyor::testing::Eventually;
using conveyor::testing::RedisServer;
using std::chrono::milliseconds;

class LimitsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    options_.host = "127.0.0.1";
    options_.port = redis_.port();
  }
  std::unique_ptr<UserLimiter> Limiter(const UserLimitSettings& s) {
    return OpenRedisUserLimiter(options_, s);
  }
  void Redis(const std::vector<std::string>& argv) {
    internal::RedisConnection c(options_);
    auto r = c.Command(argv);
    ASSERT_TRUE(r) << r.status().ToString();
  }

  RedisServer redis_;
  RedisOptions options_;
};

UserLimitSettings Only() {
  UserLimitSettings s;
  s.uploads_per_minute = 0;
  s.bytes_per_hour = 0;
  s.uploads_in_flight = 0;
  return s;
}

TEST_F(LimitsTest, UploadsPerMinuteAreSharedByTwoLimiters) {
  UserLimitSettings s = Only();
  s.uploads_per_minute = 3;
  auto a = Limiter(s), b = Limiter(s);
  for (int i = 0; i < 3; ++i) {
    auto d = (i % 2 ? a : b)->Reserve("alice", "u" + std::to_string(i), 10);
    ASSERT_TRUE(d) << d.status().ToString();
    EXPECT_TRUE(d->allowed) << i;
  }
  auto d = a->Reserve("alice", "u3", 10);
  ASSERT_TRUE(d);
  EXPECT_FALSE(d->allowed);
  EXPECT_EQ(d->exceeded, "uploads_per_minute");
  // One token comes back every 20 s.
  EXPECT_GE(d->retry_after_s, 1);
  EXPECT_LE(d->retry_after_s, 20);
  EXPECT_TRUE(b->Reserve("bob", "u4", 10)->allowed);
}

TEST_F(LimitsTest, BytesPerHourRefuseWhatDoesNotFitAndChargeChunkedBodies) {
  UserLimitSettings s = Only();
  s.bytes_per_hour = 1000;
  auto a = Limiter(s), b = Limiter(s);
  EXPECT_TRUE(a->Reserve("alice", "u1", 600)->allowed);
  auto d = b->Reserve("alice", "u2", 600);
  ASSERT_TRUE(d);
  EXPECT_FALSE(d->allowed);
  EXPECT_EQ(d->exceeded, "upload_bytes_per_hour");
  EXPECT_GE(d->retry_after_s, 700);  // 200 bytes short at 1000 bytes/hour: 720 s
  EXPECT_TRUE(b->Reserve("alice", "u3", 300)->allowed);
  // A chunked body (size unknown) is let in, then charged into debt.
  ASSERT_TRUE(a->ChargeBytes("alice", 500));
  auto next = a->Reserve("alice", "u4", 0);
  ASSERT_TRUE(next);
  EXPECT_FALSE(next->allowed);
}

TEST_F(LimitsTest, InFlightCountsJobsUntilFinalAndReleasedSlots) {
  UserLimitSettings s = Only();
  s.uploads_in_flight = 2;
  auto a = Limiter(s), b = Limiter(s);
  auto first = a->Reserve("alice", "job-1", 0);
  ASSERT_TRUE(first);
  EXPECT_TRUE(first->allowed);
  EXPECT_EQ(first->in_flight, 0);
  auto second = b->Reserve("alice", "job-2", 0);
  EXPECT_TRUE(second->allowed);
  EXPECT_EQ(second->in_flight, 1);
  auto third = a->Reserve("alice", "job-3", 0);
  EXPECT_FALSE(third->allowed);
  EXPECT_EQ(third->exceeded, "uploads_in_flight");
  EXPECT_EQ(third->in_flight, 2);

  // job-1's job exists and is waiting: still in flight.
  Redis({"HSET", "bull:file-upload:job-1", "timestamp", "1", "name", "file-upload"});
  EXPECT_FALSE(a->Reserve("alice", "job-3", 0)->allowed);
  // Final (completed or failed for good): no longer.
  Redis({"HSET", "bull:file-upload:job-1", "finishedOn", "2"});
  EXPECT_TRUE(a->Reserve("alice", "job-3", 0)->allowed);
  // An upload refused after it was let in gives its slot back.
  EXPECT_FALSE(b->Reserve("alice", "job-4", 0)->allowed);
  ASSERT_TRUE(a->Release("alice", "job-2"));
  EXPECT_TRUE(b->Reserve("alice", "job-4", 0)->allowed);
}

// Without its limit the count is still kept (job priorities use it), at a
// fixed cost per call: four job hashes read, whatever the set's size; and it
// still follows the jobs, dropping the final ones within a quarter of the
// set's size in calls.
TEST_F(LimitsTest, InFlightFollowsTheJobsReadingFourJobHashesPerCall) {
  auto a = Limiter(Only());
  const int kLive = 30, kFinal = 30;
  for (int i = 0; i < kLive + kFinal; ++i) {
    const std::string id = "job-" + std::to_string(i);
    ASSERT_TRUE(a->Reserve("alice", id, 0)->allowed);
    Redis({"HSET", "bull:file-upload:" + id, "timestamp", "1"});
  }
  for (int i = 0; i < kFinal; ++i) {
    Redis({"HSET", "bull:file-upload:job-" + std::to_string(i), "finishedOn", "2"});
  }
  internal::RedisConnection c(options_);
  auto hmgets = [&] {
    auto info = c.Command({"INFO", "commandstats"});
    EXPECT_TRUE(info);
    const std::string text = info ? info->str : "";
    size_t at = text.find("cmdstat_hmget:calls=");
    return at == std::string::npos ? 0L : std::stol(text.substr(at + 20));
  };
  // Each call adds a live job; the count reaches the live ones (the 30 plus
  // those added) once every final job was seen.
  int64_t in_flight = -1;
  int calls = 0;
  for (; calls < 60; ++calls) {
    const std::string id = "new-" + std::to_string(calls);
    const long before = hmgets();
    auto d = a->Reserve("alice", id, 0);
    ASSERT_TRUE(d);
    // The bucket hash, then at most four job hashes.
    EXPECT_LE(hmgets() - before, 5) << "call " << calls;
    Redis({"HSET", "bull:file-upload:" + id, "timestamp", "1"});
    in_flight = d->in_flight;
    if (in_flight == kLive + calls) break;
  }
  EXPECT_EQ(in_flight, kLive + calls);
  // A quarter of the set per call, and live members seen in the same
  // millisecond keep their place: at most twice that many calls.
  EXPECT_LE(calls, 2 * (kLive + kFinal) / 4);
}

TEST_F(LimitsTest, AnUploadWhoseJobNeverAppearsStopsCountingAfterTheReservation) {
  // What an API process that died mid-upload leaves behind.
  UserLimitSettings s = Only();
  s.uploads_in_flight = 1;
  s.reservation_ms = 300;
  auto a = Limiter(s);
  EXPECT_TRUE(a->Reserve("alice", "lost", 0)->allowed);
  EXPECT_FALSE(a->Reserve("alice", "next", 0)->allowed);
  EXPECT_TRUE(Eventually([&] { return a->Reserve("alice", "next", 0)->allowed; },
                         milliseconds(5000)));
}

TEST_F(LimitsTest, UserIdsCannotReachOtherKeys) {
  EXPECT_EQ(LimitKeyUser("alice@example.com"), "alice@example.com");
  EXPECT_EQ(LimitKeyUser("a:b"), "~613a62");
  EXPECT_EQ(LimitKeyUser("{x}"), "~7b787d");
  UserLimitSettings s = Only();
  s.uploads_per_minute = 1;
  auto a = Limiter(s);
  EXPECT_TRUE(a->Reserve("a:b", "u1", 0)->allowed);
  EXPECT_TRUE(a->Reserve("a", "u2", 0)->allowed);
  EXPECT_FALSE(a->Reserve("a:b", "u3", 0)->allowed);
}

TEST_F(LimitsTest, UnreachableRedisIsUnavailableQuickly) {
  RedisOptions o = options_;
  o.port = conveyor::testing::FreePort();
  UserLimitSettings s;
  auto a = OpenRedisUserLimiter(o, s);
  auto start = std::chrono::steady_clock::now();
  auto d = a->Reserve("alice", "u1", 10);
  EXPECT_FALSE(d);
  EXPECT_EQ(d.code(), Errc::kUnavailable);
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(2000));
}

}  // namespace
}  // namespace conveyor::queue
