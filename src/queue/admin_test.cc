// Integration tests of the queue admin API against a real redis-server.
#include "queue/admin.h"

#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <nlohmann/json.hpp>

#include "queue/internal/redis_connection.h"
#include "test_support.h"

namespace conveyor::queue {
namespace {

using conveyor::testing::RedisServer;
using internal::RedisConnection;
using internal::RedisReply;
using nlohmann::json;

constexpr const char* kQ = "bull:file-upload:";
constexpr const char* kDlq = "bull:file-upload-dlq:";

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string Uuid(int n) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "00000000-0000-4000-8000-%012d", n);
  return buf;
}

std::string Data(int n) { return R"({"n":)" + std::to_string(n) + "}"; }

class QueueAdminTest : public ::testing::Test {
 protected:
  void SetUp() override {
    options_.host = "127.0.0.1";
    options_.port = redis_.port();
    options_.command_timeout_ms = 2000;
    raw_ = std::make_unique<RedisConnection>(options_);
    auto q = OpenRedisQueue(options_);
    ASSERT_TRUE(q) << q.status().ToString();
    queue_ = std::move(*q);
    auto c = OpenRedisConsumer(options_);
    ASSERT_TRUE(c) << c.status().ToString();
    consumer_ = std::move(*c);
    auto a = OpenRedisAdmin(options_);
    ASSERT_TRUE(a) << a.status().ToString();
    admin_ = std::move(*a);
  }

  RedisReply Cmd(const std::vector<std::string>& argv) {
    auto r = raw_->Command(argv);
    EXPECT_TRUE(r) << r.status().ToString();
    return r ? *r : RedisReply{};
  }
  long long Int(const std::vector<std::string>& argv) { return Cmd(argv).integer; }
  std::string Str(const std::vector<std::string>& argv) { return Cmd(argv).str; }

  std::map<std::string, std::string> Hash(const std::string& key) {
    std::map<std::string, std::string> out;
    RedisReply r = Cmd({"HGETALL", key});
    for (size_t i = 0; i + 1 < r.elements.size(); i += 2) {
      out[r.elements[i].str] = r.elements[i + 1].str;
    }
    return out;
  }

  std::vector<std::map<std::string, std::string>> Events(const std::string& queue_key = kQ) {
    std::vector<std::map<std::string, std::string>> out;
    RedisReply r = Cmd({"XRANGE", queue_key + "events", "-", "+"});
    for (const auto& entry : r.elements) {
      std::map<std::string, std::string> m;
      const auto& kv = entry.elements[1].elements;
      for (size_t i = 0; i + 1 < kv.size(); i += 2) m[kv[i].str] = kv[i + 1].str;
      out.push_back(std::move(m));
    }
    return out;
  }

  // Adds job n and runs it until it fails for good (one attempt).
  void AddAndFailForGood(int n, const std::string& reason, int remove_on_fail = kRemoveOnFail) {
    JobOptions opts;
    opts.attempts = 1;
    opts.remove_on_fail = remove_on_fail;
    auto added = queue_->Add(Uuid(n), kJobName, Data(n), opts);
    ASSERT_TRUE(added) << added.status().ToString();
    auto job = consumer_->Fetch("t", 30000);
    ASSERT_TRUE(job && job->has_value());
    ASSERT_EQ((*job)->id, Uuid(n));
    auto failed = consumer_->Fail(**job, reason, "Error: " + reason, /*retry=*/false);
    ASSERT_TRUE(failed) << failed.status().ToString();
  }

  void AddAndComplete(int n) {
    ASSERT_TRUE(queue_->Add(Uuid(n), kJobName, Data(n), JobOptions{}));
    auto job = consumer_->Fetch("t", 30000);
    ASSERT_TRUE(job && job->has_value());
    ASSERT_TRUE(consumer_->Complete(**job, "null"));
  }

  // Fetches the next job and completes it; returns its id ("" if none).
  std::string FetchAndComplete() {
    auto job = consumer_->Fetch("t2", 30000);
    EXPECT_TRUE(job) << job.status().ToString();
    if (!job || !job->has_value()) return "";
    EXPECT_TRUE(consumer_->Complete(**job, "null"));
    return (*job)->id;
  }

  RedisServer redis_;
  RedisOptions options_;
  std::unique_ptr<RedisConnection> raw_;
  std::unique_ptr<Queue> queue_;
  std::unique_ptr<Consumer> consumer_;
  std::unique_ptr<QueueAdmin> admin_;
};

TEST_F(QueueAdminTest, CountsReportEveryState) {
  AddAndComplete(1);
  AddAndFailForGood(2, "boom");
  ASSERT_TRUE(queue_->Add(Uuid(3), kJobName, Data(3), JobOptions{}));
  auto c = admin_->Counts();
  ASSERT_TRUE(c) << c.status().ToString();
  EXPECT_EQ(c->wait, 1);
  EXPECT_EQ(c->completed, 1);
  EXPECT_EQ(c->failed, 1);
  EXPECT_EQ(c->active, 0);
  auto dlq = admin_->DeadLetterCount();
  ASSERT_TRUE(dlq);
  EXPECT_EQ(*dlq, 1);
}

TEST_F(QueueAdminTest, ListFailedShowsNewestFirstWithReasonAttemptsAndData) {
  AddAndFailForGood(1, "first reason");
  AddAndFailForGood(2, "second reason");
  // Make the order independent of the clock's resolution.
  Cmd({"ZADD", std::string(kQ) + "failed", "1000", Uuid(1)});
  Cmd({"HSET", kQ + Uuid(1), "finishedOn", "1000"});
  auto page = admin_->ListFailed(0, 10);
  ASSERT_TRUE(page) << page.status().ToString();
  ASSERT_EQ(page->size(), 2u);
  EXPECT_EQ((*page)[0].id, Uuid(2));
  EXPECT_EQ((*page)[0].name, kJobName);
  EXPECT_EQ((*page)[0].failed_reason, "second reason");
  EXPECT_EQ((*page)[0].attempts_made, 1);
  EXPECT_GT((*page)[0].finished_on_ms, 1000);
  EXPECT_EQ(json::parse((*page)[0].data_json), json::parse(Data(2)));
  EXPECT_EQ((*page)[1].id, Uuid(1));
  EXPECT_EQ((*page)[1].finished_on_ms, 1000);

  auto second = admin_->ListFailed(1, 1);
  ASSERT_TRUE(second);
  ASSERT_EQ(second->size(), 1u);
  EXPECT_EQ((*second)[0].id, Uuid(1));
  EXPECT_EQ(admin_->ListFailed(-1, 10).code(), Errc::kInvalidArgument);
  EXPECT_EQ(admin_->ListFailed(0, 0).code(), Errc::kInvalidArgument);
}

TEST_F(QueueAdminTest, DeadLetterRoundTripRunsTheJobAgainToCompletion) {
  AddAndFailForGood(1, "provider down");
  auto dead = admin_->ListDeadLetters(0, 10);
  ASSERT_TRUE(dead) << dead.status().ToString();
  ASSERT_EQ(dead->size(), 1u);
  EXPECT_EQ((*dead)[0].id, Uuid(1));
  EXPECT_EQ((*dead)[0].failed_reason, "provider down");
  EXPECT_EQ((*dead)[0].attempts_made, 1);
  EXPECT_EQ(json::parse((*dead)[0].data_json), json::parse(Data(1)));

  auto retried = admin_->RetryDeadLetter(Uuid(1));
  ASSERT_TRUE(retried) << retried.status().ToString();
  // Reprocessed in place: back in wait, finished fields and attempts reset.
  EXPECT_EQ(Int({"ZCARD", std::string(kQ) + "failed"}), 0);
  EXPECT_EQ(Int({"LLEN", std::string(kQ) + "wait"}), 1);
  auto h = Hash(kQ + Uuid(1));
  EXPECT_EQ(h.count("finishedOn"), 0u);
  EXPECT_EQ(h.count("processedOn"), 0u);
  EXPECT_EQ(h.count("failedReason"), 0u);
  EXPECT_EQ(h.count("atm"), 0u);
  EXPECT_EQ(h.count("ats"), 0u);
  EXPECT_EQ(h["data"], Data(1));
  auto ev = Events();
  ASSERT_FALSE(ev.empty());
  EXPECT_EQ(ev.back()["event"], "waiting");
  EXPECT_EQ(ev.back()["jobId"], Uuid(1));
  EXPECT_EQ(ev.back()["prev"], "failed");
  EXPECT_EQ(Str({"ZSCORE", std::string(kQ) + "marker", "0"}), "0");
  // The DLQ copy is gone.
  EXPECT_EQ(Int({"ZCARD", std::string(kDlq) + "failed"}), 0);
  EXPECT_EQ(Int({"EXISTS", kDlq + Uuid(1)}), 0);
  EXPECT_EQ(Events(kDlq).back()["event"], "removed");

  auto job = consumer_->Fetch("t3", 30000);
  ASSERT_TRUE(job && job->has_value());
  EXPECT_EQ((*job)->id, Uuid(1));
  EXPECT_EQ((*job)->attempts_made, 0);
  EXPECT_EQ((*job)->attempts_started, 1);
  ASSERT_TRUE(consumer_->Complete(**job, R"({"ok":true})"));
  EXPECT_FALSE(Str({"ZSCORE", std::string(kQ) + "completed", Uuid(1)}).empty());
}

TEST_F(QueueAdminTest, RetryDeadLetterReAddsAJobTrimmedFromTheMainQueue) {
  AddAndFailForGood(1, "gone", /*remove_on_fail=*/0);
  ASSERT_EQ(Int({"EXISTS", kQ + Uuid(1)}), 0);
  ASSERT_EQ(Int({"ZCARD", std::string(kDlq) + "failed"}), 1);
  long long ids_before = std::stoll(Str({"GET", std::string(kQ) + "id"}));

  ASSERT_TRUE(admin_->RetryDeadLetter(Uuid(1)));
  auto h = Hash(kQ + Uuid(1));
  EXPECT_EQ(h["name"], kJobName);
  EXPECT_EQ(h["data"], Data(1));
  EXPECT_EQ(json::parse(h["opts"])["attempts"], kMaxAttempts);
  EXPECT_EQ(h["delay"], "0");
  EXPECT_EQ(h["priority"], "0");
  EXPECT_FALSE(h["timestamp"].empty());
  EXPECT_EQ(std::stoll(Str({"GET", std::string(kQ) + "id"})), ids_before + 1);
  EXPECT_EQ(Int({"ZCARD", std::string(kDlq) + "failed"}), 0);
  EXPECT_EQ(FetchAndComplete(), Uuid(1));
}

TEST_F(QueueAdminTest, RetryDeadLetterRefusesUnknownIdsAndJobsNoLongerFailed) {
  EXPECT_EQ(admin_->RetryDeadLetter(Uuid(9)).code(), Errc::kNotFound);
  EXPECT_EQ(admin_->RetryDeadLetter("a:b").code(), Errc::kInvalidArgument);

  AddAndFailForGood(1, "x");
  // Someone (Bull Board's retry) already put the main job back in wait.
  Cmd({"ZREM", std::string(kQ) + "failed", Uuid(1)});
  Cmd({"LPUSH", std::string(kQ) + "wait", Uuid(1)});
  EXPECT_EQ(admin_->RetryDeadLetter(Uuid(1)).code(), Errc::kFailedPrecondition);
  EXPECT_EQ(Int({"ZCARD", std::string(kDlq) + "failed"}), 1);
  EXPECT_EQ(Int({"LLEN", std::string(kQ) + "wait"}), 1);
}

TEST_F(QueueAdminTest, RetryAllAndPurgeDeadLetters) {
  for (int n = 1; n <= 3; ++n) AddAndFailForGood(n, "r");
  auto all = admin_->RetryAllDeadLetters();
  ASSERT_TRUE(all) << all.status().ToString();
  EXPECT_EQ(*all, 3);
  EXPECT_EQ(Int({"LLEN", std::string(kQ) + "wait"}), 3);
  EXPECT_EQ(Int({"ZCARD", std::string(kDlq) + "failed"}), 0);
  for (int n = 0; n < 3; ++n) EXPECT_FALSE(FetchAndComplete().empty());

  for (int n = 4; n <= 5; ++n) AddAndFailForGood(n, "r");
  auto purged = admin_->PurgeDeadLetters();
  ASSERT_TRUE(purged) << purged.status().ToString();
  EXPECT_EQ(*purged, 2);
  EXPECT_EQ(Int({"ZCARD", std::string(kDlq) + "failed"}), 0);
  EXPECT_EQ(Int({"EXISTS", kDlq + Uuid(4)}), 0);
  // The main queue's failed jobs are untouched.
  EXPECT_EQ(Int({"ZCARD", std::string(kQ) + "failed"}), 2);
  auto again = admin_->PurgeDeadLetters();
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, 0);
}

TEST_F(QueueAdminTest, RetryFailedPutsEveryFailedJobBackWithFreshAttempts) {
  for (int n = 1; n <= 3; ++n) AddAndFailForGood(n, "r");
  auto moved = admin_->RetryFailed();
  ASSERT_TRUE(moved) << moved.status().ToString();
  EXPECT_EQ(*moved, 3);
  EXPECT_EQ(Int({"ZCARD", std::string(kQ) + "failed"}), 0);
  EXPECT_EQ(Int({"LLEN", std::string(kQ) + "wait"}), 3);
  EXPECT_EQ(Int({"ZCARD", std::string(kDlq) + "failed"}), 0);
  int waiting_prev_failed = 0;
  for (auto& e : Events()) {
    if (e["event"] == "waiting" && e["prev"] == "failed") ++waiting_prev_failed;
  }
  EXPECT_EQ(waiting_prev_failed, 3);
  auto job = consumer_->Fetch("t", 30000);
  ASSERT_TRUE(job && job->has_value());
  EXPECT_EQ((*job)->attempts_made, 0);
  auto none = admin_->RetryFailed();
  ASSERT_TRUE(none);
  EXPECT_EQ(*none, 0);
}

TEST_F(QueueAdminTest, CleanRemovesJobsFinishedBeforeTheGraceWithAllTheirKeys) {
  for (int n = 1; n <= 3; ++n) AddAndComplete(n);
  ASSERT_TRUE(consumer_->AddLog(Uuid(1), "line"));
  // Jobs 1 and 2 finished two minutes ago.
  const std::string old = std::to_string(NowMs() - 120000);
  Cmd({"ZADD", std::string(kQ) + "completed", old, Uuid(1)});
  Cmd({"ZADD", std::string(kQ) + "completed", old, Uuid(2)});

  auto none = admin_->Clean(600000, FinishedState::kCompleted, 0);
  ASSERT_TRUE(none) << none.status().ToString();
  EXPECT_TRUE(none->empty());

  auto limited = admin_->Clean(60000, FinishedState::kCompleted, 1);
  ASSERT_TRUE(limited);
  ASSERT_EQ(limited->size(), 1u);
  auto rest = admin_->Clean(60000, FinishedState::kCompleted, 0);
  ASSERT_TRUE(rest);
  ASSERT_EQ(rest->size(), 1u);
  EXPECT_NE((*limited)[0], (*rest)[0]);
  EXPECT_EQ(Int({"EXISTS", kQ + Uuid(1)}), 0);
  EXPECT_EQ(Int({"EXISTS", kQ + Uuid(1) + ":logs"}), 0);
  EXPECT_EQ(Int({"EXISTS", kQ + Uuid(2)}), 0);
  EXPECT_EQ(Int({"EXISTS", kQ + Uuid(3)}), 1);
  EXPECT_EQ(Int({"ZCARD", std::string(kQ) + "completed"}), 1);
  auto ev = Events();
  EXPECT_EQ(ev.back()["event"], "cleaned");
  EXPECT_EQ(ev.back()["count"], "1");

  AddAndFailForGood(4, "x");
  auto failed = admin_->Clean(0, FinishedState::kFailed, 0);
  ASSERT_TRUE(failed);
  ASSERT_EQ(failed->size(), 1u);
  EXPECT_EQ((*failed)[0], Uuid(4));
  EXPECT_EQ(Int({"ZCARD", std::string(kDlq) + "failed"}), 1);  // the DLQ keeps its copy
  EXPECT_EQ(admin_->Clean(-1, FinishedState::kFailed, 0).code(), Errc::kInvalidArgument);
}

TEST_F(QueueAdminTest, PauseStopsFetchingAndResumeRestartsIt) {
  ASSERT_TRUE(queue_->Add(Uuid(1), kJobName, Data(1), JobOptions{}));
  ASSERT_TRUE(admin_->Pause());
  auto paused = admin_->IsPaused();
  ASSERT_TRUE(paused);
  EXPECT_TRUE(*paused);
  EXPECT_EQ(Str({"HGET", std::string(kQ) + "meta", "paused"}), "1");  // Node: === "1"
  EXPECT_EQ(Int({"EXISTS", std::string(kQ) + "marker"}), 0);
  EXPECT_EQ(Events().back()["event"], "paused");

  auto none = consumer_->Fetch("t", 30000);
  ASSERT_TRUE(none);
  EXPECT_FALSE(none->has_value());
  // A job added while paused waits without a wake-up marker.
  ASSERT_TRUE(queue_->Add(Uuid(2), kJobName, Data(2), JobOptions{}));
  EXPECT_EQ(Int({"EXISTS", std::string(kQ) + "marker"}), 0);
  EXPECT_EQ(Int({"LLEN", std::string(kQ) + "wait"}), 2);

  ASSERT_TRUE(admin_->Resume());
  paused = admin_->IsPaused();
  ASSERT_TRUE(paused);
  EXPECT_FALSE(*paused);
  EXPECT_EQ(Int({"HEXISTS", std::string(kQ) + "meta", "paused"}), 0);
  EXPECT_EQ(Str({"ZSCORE", std::string(kQ) + "marker", "0"}), "0");
  EXPECT_EQ(Events().back()["event"], "resumed");
  EXPECT_EQ(FetchAndComplete(), Uuid(1));
  EXPECT_EQ(FetchAndComplete(), Uuid(2));
}

TEST_F(QueueAdminTest, ResumeMovesTheLegacyPausedListIntoWait) {
  ASSERT_TRUE(queue_->Add(Uuid(1), kJobName, Data(1), JobOptions{}));
  ASSERT_TRUE(queue_->Add(Uuid(2), kJobName, Data(2), JobOptions{}));
  ASSERT_TRUE(admin_->Pause());
  // A v4/v5 producer parked job 2 in the `paused` list.
  Cmd({"LREM", std::string(kQ) + "wait", "0", Uuid(2)});
  Cmd({"LPUSH", std::string(kQ) + "paused", Uuid(2)});
  ASSERT_TRUE(admin_->Resume());
  EXPECT_EQ(Int({"EXISTS", std::string(kQ) + "paused"}), 0);
  EXPECT_EQ(Int({"LLEN", std::string(kQ) + "wait"}), 2);
  // Legacy paused jobs were queued earlier, so they go to the front (RPUSH).
  EXPECT_EQ(FetchAndComplete(), Uuid(2));
  EXPECT_EQ(FetchAndComplete(), Uuid(1));
}

TEST_F(QueueAdminTest, ResumeWithOnlyDelayedJobsSetsTheDelayedMarker) {
  JobOptions opts;
  opts.delay_ms = 60000;
  ASSERT_TRUE(queue_->Add(Uuid(1), kJobName, Data(1), opts));
  ASSERT_TRUE(admin_->Pause());
  ASSERT_TRUE(admin_->Resume());
  std::string score = Str({"ZSCORE", std::string(kQ) + "marker", "1"});
  ASSERT_FALSE(score.empty());
  EXPECT_GT(std::stod(score), static_cast<double>(NowMs()));
}

TEST(QueueAdminOpen, ReportsAnUnreachableRedis) {
  RedisOptions o;
  o.host = "127.0.0.1";
  o.port = conveyor::testing::FreePort();
  o.connect_timeout_ms = 500;
  auto a = OpenRedisAdmin(o);
  ASSERT_FALSE(a);
  EXPECT_EQ(a.code(), Errc::kUnavailable);
}

}  // namespace
}  // namespace conveyor::queue
