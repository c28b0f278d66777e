// QueueObserver and WorkerRegistry against a real redis-server.
#include "queue/observe.h"

#include <gtest/gtest.h>

#include <thread>

#include "queue/admin.h"
#include "test_support.h"

namespace conveyor::queue {
namespace {

using conveyor::testing::RedisServer;

class ObserveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    options_.host = "127.0.0.1";
    options_.port = redis_.port();
  }
  WorkerInfo Info(const std::string& id, int64_t active) {
    return {id, "host-a", 1234, "0.1.0", 4, active, 1000, 0};
  }
  RedisServer redis_;
  RedisOptions options_;
};

TEST_F(ObserveTest, SnapshotCountsStatesDeadLettersAndLiveWorkers) {
  auto q = OpenRedisQueue(options_);
  ASSERT_TRUE(q) << q.status().ToString();
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE((*q)->Add("00000000-0000-4000-8000-00000000000" + std::to_string(i), "file-upload",
                          "{}", JobOptions{}));
  }
  redis_.Cli({"ZADD", "bull:file-upload-dlq:failed", "1", "x"});
  WorkerRegistry reg(options_, 60000);
  ASSERT_TRUE(reg.Beat(Info("w1", 0)));
  ASSERT_TRUE(reg.Beat(Info("w2", 1)));

  QueueObserver obs(options_, 60000);
  auto s = obs.Snapshot();
  ASSERT_TRUE(s) << s.status().ToString();
  EXPECT_EQ(s->counts.wait, 3);
  EXPECT_EQ(s->counts.active, 0);
  EXPECT_EQ(s->dead_letters, 1);
  EXPECT_EQ(s->live_workers, 2);
  EXPECT_GT(s->round_trip_seconds, 0);
}

TEST_F(ObserveTest, WorkersAreListedAndExpireWithoutBeats) {
  WorkerRegistry reg(options_, /*ttl_ms=*/400);
  auto n = reg.Beat(Info("w1", 2));
  ASSERT_TRUE(n) << n.status().ToString();
  EXPECT_EQ(*n, 1);
  ASSERT_TRUE(reg.Beat(Info("w2", 0)));
  auto list = reg.List();
  ASSERT_TRUE(list);
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].id, "w1");
  EXPECT_EQ((*list)[0].host, "host-a");
  EXPECT_EQ((*list)[0].pid, 1234);
  EXPECT_EQ((*list)[0].concurrency, 4);
  EXPECT_EQ((*list)[0].active, 2);
  EXPECT_GT((*list)[0].last_beat_ms, 0);
  // The hash carries an expiry.
  int64_t pttl = std::stoll(redis_.Cli({"PTTL", "bull:file-upload:conveyor:workers:w1"}));
  EXPECT_GT(pttl, 0);
  EXPECT_LE(pttl, 400);

  ASSERT_TRUE(reg.Leave("w2"));
  ASSERT_EQ(reg.List()->size(), 1u);
  // w1 dies (no more beats): it is gone once its expiry passes.
  EXPECT_TRUE(conveyor::testing::Eventually([&] { return reg.List()->empty(); },
                                            std::chrono::seconds(5)));
  // Its hash expires by Redis's clock, counted from when the beat's script
  // ran, a little after the beat's own time that List compares: the hash
  // may outlive the listing by a moment.
  EXPECT_TRUE(conveyor::testing::Eventually(
      [&] { return redis_.Cli({"EXISTS", "bull:file-upload:conveyor:workers:w1"}) == "0\n"; },
      std::chrono::seconds(2)));
  QueueObserver obs(options_, 400);
  EXPECT_EQ(obs.Snapshot()->live_workers, 0);
  EXPECT_FALSE(reg.Beat(Info("bad:id", 0)));
}

TEST(WorkerId, HasNoColon) {
  std::string id = NewWorkerId("h:1", 42);
  EXPECT_EQ(id.find(':'), std::string::npos);
  EXPECT_EQ(id.rfind("h_1-42-", 0), 0u);
}

}  // namespace
}  // namespace conveyor::queue
