// Checks the admin API's pause/resume and retries against the real `bullmq`
// npm package (tests/interop): a pause made by either side is seen by the
// other. Skipped when `node` or tests/interop/node_modules is missing.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "queue/admin.h"
#include "test_support.h"

namespace conveyor::queue {
namespace {

using conveyor::testing::RedisServer;
using conveyor::testing::RunCapture;
using nlohmann::json;

const std::string kInteropDir = CONVEYOR_INTEROP_DIR;
const std::string kId = "6f1c2a9e-0b7d-4c1e-9a51-3d2f7e8b9c10";

class AdminInteropTest : public ::testing::Test {
 protected:
  void SetUp() override {
    int st = -1;
    RunCapture({"node", "--version"}, &st);
    if (st != 0) GTEST_SKIP() << "node is not installed";
    if (!std::filesystem::exists(kInteropDir + "/node_modules/bullmq")) {
      GTEST_SKIP() << "run `npm ci` in tests/interop first";
    }
    redis_ = std::make_unique<RedisServer>();
    options_.host = "127.0.0.1";
    options_.port = redis_->port();
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

  json Node(const std::string& script, std::vector<std::string> args) {
    std::vector<std::string> argv = {"node", kInteropDir + "/" + script, "--port",
                                     std::to_string(redis_->port())};
    argv.insert(argv.end(), args.begin(), args.end());
    int st = -1;
    std::string out = RunCapture(argv, &st);
    EXPECT_EQ(st, 0) << script << " failed; output: " << out;
    json j = json::parse(out, nullptr, /*allow_exceptions=*/false);
    EXPECT_FALSE(j.is_discarded()) << script << " printed: " << out;
    return j;
  }

  bool OurIsPaused() {
    auto p = admin_->IsPaused();
    EXPECT_TRUE(p) << p.status().ToString();
    return p && *p;
  }

  std::unique_ptr<RedisServer> redis_;
  RedisOptions options_;
  std::unique_ptr<Queue> queue_;
  std::unique_ptr<Consumer> consumer_;
  std::unique_ptr<QueueAdmin> admin_;
};

TEST_F(AdminInteropTest, NodeSeesOurPauseAndResume) {
  EXPECT_EQ(Node("pause_queue.mjs", {})["paused"], false);
  ASSERT_TRUE(admin_->Pause());
  EXPECT_EQ(Node("pause_queue.mjs", {})["paused"], true);
  ASSERT_TRUE(admin_->Resume());
  EXPECT_EQ(Node("pause_queue.mjs", {})["paused"], false);
}

TEST_F(AdminInteropTest, NodePauseStopsOurFetchAndNodeResumeRestartsIt) {
  ASSERT_TRUE(queue_->Add(kId, kJobName, R"({"n":1})", JobOptions{}));
  EXPECT_EQ(Node("pause_queue.mjs", {"--action", "pause"})["paused"], true);
  EXPECT_TRUE(OurIsPaused());
  auto none = consumer_->Fetch("w", 30000);
  ASSERT_TRUE(none) << none.status().ToString();
  EXPECT_FALSE(none->has_value());

  json resumed = Node("pause_queue.mjs", {"--action", "resume"});
  EXPECT_EQ(resumed["paused"], false);
  EXPECT_EQ(resumed["counts"]["waiting"], 1);
  EXPECT_FALSE(OurIsPaused());
  auto job = consumer_->Fetch("w", 30000);
  ASSERT_TRUE(job && job->has_value());
  EXPECT_EQ((*job)->id, kId);
}

TEST_F(AdminInteropTest, NodeReadsAJobRetriedFromTheDeadLetterQueue) {
  JobOptions opts;
  opts.attempts = 1;
  ASSERT_TRUE(queue_->Add(kId, kJobName, R"({"n":1})", opts));
  auto job = consumer_->Fetch("w", 30000);
  ASSERT_TRUE(job && job->has_value());
  ASSERT_TRUE(consumer_->Fail(**job, "boom", "", false));
  ASSERT_TRUE(admin_->RetryDeadLetter(kId));
  json r = Node("read_job.mjs", {"--id", kId});
  EXPECT_EQ(r["job"]["state"], "waiting");
  EXPECT_EQ(r["job"]["attemptsMade"], 0);
  EXPECT_EQ(r["job"]["failedReason"], nullptr);
  EXPECT_EQ(r["counts"]["failed"], 0);
  json dlq = Node("read_job.mjs", {"--id", kId, "--queue", kDeadLetterQueueName});
  EXPECT_TRUE(dlq["job"].is_null());
}

}  // namespace
}  // namespace conveyor::queue
