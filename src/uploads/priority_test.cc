// Job priorities (uploads/priority.h) and their order in a real Redis queue:
// the priority table, a premium job overtaking queued standard ones, the
// aging turn that keeps a free job from starving under a stream of premium
// jobs, and one user's burst not holding another user's single upload.
#include "uploads/priority.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "queue/internal/redis_connection.h"
#include "queue/queue.h"
#include "test_support.h"

namespace conveyor::uploads {
namespace {

using conveyor::testing::RedisServer;

constexpr int64_t kKiB = 1024;
constexpr int64_t kMiB = 1024 * 1024;

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

TEST(JobPriority, FollowsTheTable) {
  PrioritySettings s;
  EXPECT_EQ(JobPriority(Tier::kPremium, 10 * kKiB, 0, s), 1);
  EXPECT_EQ(JobPriority(Tier::kPremium, 2 * kMiB, 0, s), 2);
  EXPECT_EQ(JobPriority(Tier::kPremium, 20 * kMiB, 0, s), 3);
  EXPECT_EQ(JobPriority(Tier::kStandard, 10 * kKiB, 0, s), 4);
  EXPECT_EQ(JobPriority(Tier::kStandard, 20 * kMiB, 0, s), 6);
  EXPECT_EQ(JobPriority(Tier::kFree, 10 * kKiB, 0, s), 8);
  EXPECT_EQ(JobPriority(Tier::kFree, 20 * kMiB, 0, s), 10);
  // Each 10 uploads in flight: one step back.
  EXPECT_EQ(JobPriority(Tier::kStandard, 10 * kKiB, 9, s), 4);
  EXPECT_EQ(JobPriority(Tier::kStandard, 10 * kKiB, 10, s), 5);
  EXPECT_EQ(JobPriority(Tier::kStandard, 10 * kKiB, 999, s), 103);
  s.in_flight_step = 0;
  EXPECT_EQ(JobPriority(Tier::kStandard, 10 * kKiB, 999, s), 4);
  EXPECT_EQ(ParseTier("premium"), Tier::kPremium);
  EXPECT_EQ(ParseTier("free"), Tier::kFree);
  EXPECT_EQ(ParseTier(""), Tier::kStandard);
  EXPECT_EQ(ParseTier("gold"), Tier::kStandard);
}

class PriorityQueueTest : public ::testing::Test {
 protected:
  void SetUp() override {
    options_.host = "127.0.0.1";
    options_.port = redis_.port();
    auto q = queue::OpenRedisQueue(options_);
    ASSERT_TRUE(q) << q.status().ToString();
    queue_ = std::move(*q);
    auto c = queue::OpenRedisConsumer(options_);
    ASSERT_TRUE(c) << c.status().ToString();
    consumer_ = std::move(*c);
  }

  static queue::JobToAdd Job(const std::string& id, int priority, int64_t aging_ms = 0) {
    queue::JobOptions o;
    o.priority = priority;
    o.aging_ms = aging_ms;
    return {id, queue::kJobName, R"({"jobId":")" + id + R"("})", o};
  }
  void Add(const std::vector<queue::JobToAdd>& jobs) {
    for (auto& r : queue_->AddMany(jobs)) ASSERT_TRUE(r && *r) << r.status().ToString();
  }
  // The id of the next job fetched ("" when none).
  std::string Next() {
    auto j = consumer_->Fetch("token-" + std::to_string(++fetches_), 30000);
    EXPECT_TRUE(j) << j.status().ToString();
    return j && *j ? (*j)->id : std::string();
  }

  RedisServer redis_;
  queue::RedisOptions options_;
  std::unique_ptr<queue::Queue> queue_;
  std::unique_ptr<queue::Consumer> consumer_;
  int fetches_ = 0;
};

TEST_F(PriorityQueueTest, JobsAreWrittenInBullMqsPriorityFormat) {
  Add({Job("job-a", 4)});
  Add({Job("job-b", 1)});
  {
    queue::internal::RedisConnection c(options_);
    auto score = c.Command({"ZSCORE", "bull:file-upload:prioritized", "job-b"});
    ASSERT_TRUE(score);
    // priority * 2^32 + the priority counter (2nd prioritized add).
    EXPECT_EQ(score->str, std::to_string(1LL * 4294967296LL + 2));
    auto hash = c.Command({"HMGET", "bull:file-upload:job-b", "priority", "opts"});
    ASSERT_TRUE(hash);
    EXPECT_EQ(hash->elements[0].str, "1");
    EXPECT_NE(hash->elements[1].str.find(R"("priority":1)"), std::string::npos)
        << hash->elements[1].str;
    auto wait = c.Command({"LLEN", "bull:file-upload:wait"});
    EXPECT_EQ(wait->integer, 0);
  }
  auto counts = queue_->Counts();
  ASSERT_TRUE(counts);
  EXPECT_EQ(counts->prioritized, 2);
}

TEST_F(PriorityQueueTest, PremiumJobOvertakesQueuedStandardJobs) {
  PrioritySettings s;
  std::vector<queue::JobToAdd> standard;
  for (int i = 0; i < 20; ++i) {
    standard.push_back(Job("std-" + std::to_string(i), JobPriority(Tier::kStandard, kKiB, 0, s)));
  }
  Add(standard);
  Add({Job("premium", JobPriority(Tier::kPremium, 20 * kMiB, 0, s))});
  EXPECT_EQ(Next(), "premium");
  // The standard ones keep their order (FIFO within a priority).
  for (int i = 0; i < 20; ++i) EXPECT_EQ(Next(), "std-" + std::to_string(i));
}

TEST_F(PriorityQueueTest, FreeJobIsNotStarvedByAStreamOfPremiumJobs) {
  PrioritySettings s;
  const int free_p = JobPriority(Tier::kFree, 20 * kMiB, 0, s);
  const int premium_p = JobPriority(Tier::kPremium, kKiB, 0, s);
  // The free job ages after 1 ms; premium jobs only after an hour.
  const int64_t added = NowMs();
  Add({Job("free", free_p, /*aging_ms=*/1)});
  int n = 0;
  Add({Job("p-" + std::to_string(n++), premium_p, 3600000),
       Job("p-" + std::to_string(n++), premium_p, 3600000)});
  while (NowMs() <= added + 1) {
  }
  // Two premium jobs arrive for every fetch: strict priority would never
  // reach the free job. The aging turn serves it within two fetches.
  int position = 0;
  for (int fetch = 1; fetch <= 10 && position == 0; ++fetch) {
    if (Next() == "free") position = fetch;
    Add({Job("p-" + std::to_string(n++), premium_p, 3600000),
         Job("p-" + std::to_string(n++), premium_p, 3600000)});
  }
  EXPECT_GE(position, 1);
  EXPECT_LE(position, 2);
}

TEST_F(PriorityQueueTest, WithoutAgingTheStreamOfPremiumJobsWins) {
  // The control of the test above: the free job is only reached by aging.
  PrioritySettings s;
  const int premium_p = JobPriority(Tier::kPremium, kKiB, 0, s);
  Add({Job("free", JobPriority(Tier::kFree, 20 * kMiB, 0, s), /*aging_ms=*/0)});
  int n = 0;
  Add({Job("p-" + std::to_string(n++), premium_p), Job("p-" + std::to_string(n++), premium_p)});
  for (int fetch = 1; fetch <= 10; ++fetch) {
    EXPECT_NE(Next(), "free");
    Add({Job("p-" + std::to_string(n++), premium_p), Job("p-" + std::to_string(n++), premium_p)});
  }
}

TEST_F(PriorityQueueTest, OneUsersBurstDoesNotHoldAnotherUsersUpload) {
  PrioritySettings s;
  // Alice's 1,000 uploads: each one has the ones before it in flight.
  std::vector<queue::JobToAdd> burst;
  for (int k = 0; k < 1000; ++k) {
    burst.push_back(Job("alice-" + std::to_string(k), JobPriority(Tier::kStandard, kKiB, k, s)));
  }
  Add(burst);
  // Bob's single upload, same tier, nothing else in flight.
  Add({Job("bob", JobPriority(Tier::kStandard, kKiB, 0, s))});
  int position = 0;
  for (int fetch = 1; fetch <= 1001 && position == 0; ++fetch) {
    if (Next() == "bob") position = fetch;
  }
  // Behind at most the in_flight_step (10) of Alice's uploads that share
  // his priority, not behind 1,000.
  EXPECT_GE(position, 1);
  EXPECT_LE(position, s.in_flight_step + 1);
}

}  // namespace
}  // namespace conveyor::uploads
