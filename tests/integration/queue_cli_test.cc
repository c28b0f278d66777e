// `conveyor queue …` end to end: the built binary against a real redis-server.
#include <gtest/gtest.h>

#include <cstdlib>
#include <nlohmann/json.hpp>

#include "queue/admin.h"
#include "queue/queue.h"
#include "test_support.h"

namespace conveyor {
namespace {

using conveyor::testing::ConveyorBinary;
using conveyor::testing::RedisServer;
using conveyor::testing::RunCapture;
using nlohmann::json;

std::string Uuid(int n) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "00000000-0000-4000-8000-%012d", n);
  return buf;
}

class QueueCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // The binary inherits this process's environment.
    setenv("REDIS_HOST", "127.0.0.1", 1);
    setenv("REDIS_PORT", std::to_string(redis_.port()).c_str(), 1);
    unsetenv("REDIS_PASSWORD");
    unsetenv("QUEUE_PREFIX");
    unsetenv("QUEUE_NAME");
    options_.host = "127.0.0.1";
    options_.port = redis_.port();
    auto q = queue::OpenRedisQueue(options_);
    ASSERT_TRUE(q) << q.status().ToString();
    queue_ = std::move(*q);
    auto c = queue::OpenRedisConsumer(options_);
    ASSERT_TRUE(c) << c.status().ToString();
    consumer_ = std::move(*c);
    auto a = queue::OpenRedisAdmin(options_);
    ASSERT_TRUE(a) << a.status().ToString();
    admin_ = std::move(*a);
  }

  // Runs `conveyor queue <args>`; returns stdout, exit code in *code.
  std::string Queue(std::vector<std::string> args, int* code) {
    std::vector<std::string> argv = {ConveyorBinary(), "queue"};
    argv.insert(argv.end(), args.begin(), args.end());
    int st = -1;
    std::string out = RunCapture(argv, &st);
    *code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return out;
  }

  json QueueJson(std::vector<std::string> args) {
    args.push_back("--json");
    int code = -1;
    std::string out = Queue(args, &code);
    EXPECT_EQ(code, 0) << out;
    json j = json::parse(out, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << out;
    return j;
  }

  void AddAndFailForGood(int n, const std::string& reason) {
    queue::JobOptions opts;
    opts.attempts = 1;
    ASSERT_TRUE(queue_->Add(Uuid(n), queue::kJobName, R"({"n":1})", opts));
    auto job = consumer_->Fetch("t", 30000);
    ASSERT_TRUE(job && job->has_value());
    ASSERT_TRUE(consumer_->Fail(**job, reason, "", false));
  }

  RedisServer redis_;
  queue::RedisOptions options_;
  std::unique_ptr<queue::Queue> queue_;
  std::unique_ptr<queue::Consumer> consumer_;
  std::unique_ptr<queue::QueueAdmin> admin_;
};

TEST_F(QueueCliTest, CountsPrintsEveryStateAsJsonAndAsATable) {
  AddAndFailForGood(1, "boom");
  ASSERT_TRUE(queue_->Add(Uuid(2), queue::kJobName, "{}", queue::JobOptions{}));
  json c = QueueJson({"counts"});
  EXPECT_EQ(c["waiting"], 1);
  EXPECT_EQ(c["failed"], 1);
  EXPECT_EQ(c["dead-letter"], 1);
  EXPECT_EQ(c["isPaused"], false);
  int code = -1;
  std::string table = Queue({"counts"}, &code);
  EXPECT_EQ(code, 0);
  EXPECT_NE(table.find("failed            1"), std::string::npos) << table;
  EXPECT_NE(table.find("running"), std::string::npos) << table;
}

TEST_F(QueueCliTest, FailedAndDlqListShowTheFailedJob) {
  AddAndFailForGood(1, "Invalid file format");
  json failed = QueueJson({"failed", "--limit", "5"});
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_EQ(failed[0]["id"], Uuid(1));
  EXPECT_EQ(failed[0]["failedReason"], "Invalid file format");
  EXPECT_EQ(failed[0]["attemptsMade"], 1);
  EXPECT_EQ(failed[0]["data"]["n"], 1);
  json dead = QueueJson({"dlq", "list"});
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(dead[0]["id"], Uuid(1));
  int code = -1;
  std::string table = Queue({"dlq", "list"}, &code);
  EXPECT_EQ(code, 0);
  EXPECT_NE(table.find(Uuid(1)), std::string::npos);
  EXPECT_NE(table.find("Invalid file format"), std::string::npos);
}

TEST_F(QueueCliTest, DlqRetrySendsTheJobBackAndPurgeEmptiesTheDlq) {
  AddAndFailForGood(1, "x");
  AddAndFailForGood(2, "y");
  EXPECT_EQ(QueueJson({"dlq", "retry", Uuid(1)})["retried"], 1);
  EXPECT_EQ(QueueJson({"counts"})["waiting"], 1);
  int code = -1;
  Queue({"dlq", "retry", Uuid(1)}, &code);  // no longer in the DLQ
  EXPECT_EQ(code, 1);
  EXPECT_EQ(QueueJson({"dlq", "purge"})["purged"], 1);
  EXPECT_EQ(QueueJson({"counts"})["dead-letter"], 0);
}

TEST_F(QueueCliTest, RetryFailedAndClean) {
  AddAndFailForGood(1, "x");
  AddAndFailForGood(2, "y");
  EXPECT_EQ(QueueJson({"retry-failed"})["retried"], 2);
  EXPECT_EQ(QueueJson({"counts"})["waiting"], 2);
  EXPECT_EQ(QueueJson({"counts"})["failed"], 0);
  AddAndFailForGood(3, "z");  // fetches the oldest waiting job, not necessarily 3
  json kept = QueueJson({"clean", "--grace", "3600", "--state", "failed"});
  EXPECT_EQ(kept["removed"], 0);
  json cleaned = QueueJson({"clean", "--grace", "0", "--state", "failed", "--limit", "10"});
  EXPECT_EQ(cleaned["removed"], 1);
  EXPECT_EQ(QueueJson({"counts"})["failed"], 0);
}

TEST_F(QueueCliTest, PauseAndResumeSetTheMetaFlag) {
  int code = -1;
  std::string out = Queue({"pause"}, &code);
  EXPECT_EQ(code, 0);
  EXPECT_NE(out.find("paused"), std::string::npos);
  auto paused = admin_->IsPaused();
  ASSERT_TRUE(paused);
  EXPECT_TRUE(*paused);
  EXPECT_EQ(QueueJson({"counts"})["isPaused"], true);
  EXPECT_EQ(QueueJson({"resume"})["paused"], false);
  paused = admin_->IsPaused();
  ASSERT_TRUE(paused);
  EXPECT_FALSE(*paused);
}

TEST_F(QueueCliTest, BadUsageExitsWith2) {
  int code = -1;
  for (std::vector<std::string> args :
       std::vector<std::vector<std::string>>{{},
                                             {"bogus"},
                                             {"dlq"},
                                             {"dlq", "retry"},
                                             {"clean", "--grace", "10"},
                                             {"clean", "--grace", "x", "--state", "failed"},
                                             {"clean", "--grace", "1", "--state", "active"},
                                             {"failed", "--limit", "0"},
                                             {"counts", "--nope"}}) {
    Queue(args, &code);
    EXPECT_EQ(code, 2) << "args: " << json(args).dump();
  }
}

TEST_F(QueueCliTest, UnreachableRedisExitsWith1) {
  setenv("REDIS_PORT", std::to_string(conveyor::testing::FreePort()).c_str(), 1);
  int code = -1;
  Queue({"counts"}, &code);
  EXPECT_EQ(code, 1);
}

}  // namespace
}  // namespace conveyor
