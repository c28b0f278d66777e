// Checks conveyor's queue against the real `bullmq` npm package (pinned in
// tests/interop/package.json): jobs conveyor writes are read and processed by
// Node's Queue/Worker, and jobs Node adds are processed by conveyor.
// Skipped when `node` or tests/interop/node_modules is missing.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "queue/queue.h"
#include "test_support.h"

namespace conveyor::queue {
namespace {

using conveyor::testing::RedisServer;
using conveyor::testing::RunCapture;
using nlohmann::json;

const std::string kInteropDir = CONVEYOR_INTEROP_DIR;
const std::string kId = "6f1c2a9e-0b7d-4c1e-9a51-3d2f7e8b9c10";
const std::string kData =
    R"({"jobId":"6f1c2a9e-0b7d-4c1e-9a51-3d2f7e8b9c10","userId":"u1","sessionId":"s1",)"
    R"("storagePath":"/data/a\/b.pdf","originalName":"a.pdf","mimeType":"application/pdf",)"
    R"("size":1234,"message":"hi"})";

class BullMqInteropTest : public ::testing::Test {
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
  }

  // Runs tests/interop/<script> with --port and `args`; returns its JSON line.
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

  json ReadJob(const std::string& id, const std::string& queue = "file-upload") {
    return Node("read_job.mjs", {"--id", id, "--queue", queue});
  }

  std::unique_ptr<RedisServer> redis_;
  RedisOptions options_;
  std::unique_ptr<Queue> queue_;
  std::unique_ptr<Consumer> consumer_;
};

TEST_F(BullMqInteropTest, NodeReadsAJobConveyorAdded) {
  auto added = queue_->Add(kId, kJobName, kData, JobOptions{});
  ASSERT_TRUE(added) << added.status().ToString();
  json r = ReadJob(kId);
  ASSERT_TRUE(r["job"].is_object()) << r.dump();
  EXPECT_EQ(r["job"]["id"], kId);
  EXPECT_EQ(r["job"]["name"], "file-upload");
  EXPECT_EQ(r["job"]["data"], json::parse(kData));
  EXPECT_EQ(r["job"]["opts"]["attempts"], 3);
  EXPECT_EQ(r["job"]["opts"]["backoff"]["type"], "exponential");
  EXPECT_EQ(r["job"]["opts"]["backoff"]["delay"], 5000);
  EXPECT_EQ(r["job"]["opts"]["removeOnComplete"], 1000);
  EXPECT_EQ(r["job"]["opts"]["removeOnFail"], 1000);
  EXPECT_EQ(r["job"]["state"], "waiting");
  EXPECT_EQ(r["counts"]["waiting"], 1);
  EXPECT_EQ(r["counts"]["active"], 0);
}

TEST_F(BullMqInteropTest, NodeWorkerProcessesAJobConveyorAdded) {
  ASSERT_TRUE(queue_->Add(kId, kJobName, kData, JobOptions{}));
  json worked = Node("work_job.mjs", {"--timeout", "20000"});
  EXPECT_EQ(worked["id"], kId);
  EXPECT_EQ(worked["data"], json::parse(kData));
  json r = ReadJob(kId);
  EXPECT_EQ(r["job"]["state"], "completed");
  EXPECT_EQ(r["job"]["returnvalue"]["processedBy"], "node");
  EXPECT_EQ(r["job"]["progress"], 50);
  EXPECT_EQ(r["counts"]["completed"], 1);
}

TEST_F(BullMqInteropTest, ConveyorCompletesAJobNodeAdded) {
  json added = Node("add_job.mjs", {"--id", kId, "--data", kData});
  ASSERT_EQ(added["id"], kId);
  auto fetched = consumer_->Fetch("conveyor-worker:0", 30000);
  ASSERT_TRUE(fetched) << fetched.status().ToString();
  ASSERT_TRUE(fetched->has_value());
  const ActiveJob& job = **fetched;
  EXPECT_EQ(job.id, kId);
  EXPECT_EQ(job.name, "file-upload");
  EXPECT_EQ(json::parse(job.data_json), json::parse(kData));
  // Node's opts went through msgpack and Lua cjson; they still parse.
  EXPECT_EQ(job.options.attempts, 3);
  EXPECT_EQ(job.options.backoff_type, BackoffType::kExponential);
  EXPECT_EQ(job.options.backoff_delay_ms, 5000);
  EXPECT_EQ(job.options.remove_on_complete, 1000);
  EXPECT_EQ(job.options.remove_on_fail, 1000);
  const std::string result = R"({"aiResponse":{"text":"ok"},"fileId":"file_1"})";
  ASSERT_TRUE(consumer_->Complete(job, result));
  json r = ReadJob(kId);
  EXPECT_EQ(r["job"]["state"], "completed");
  EXPECT_EQ(r["job"]["returnvalue"], json::parse(result));
  EXPECT_EQ(r["job"]["attemptsMade"], 1);
  EXPECT_EQ(r["counts"]["completed"], 1);
}

TEST_F(BullMqInteropTest, NodeSeesRetriesFailuresAndTheDeadLetterCopy) {
  ASSERT_TRUE(queue_->Add(kId, kJobName, kData, JobOptions{}));
  auto first = consumer_->Fetch("w:0", 30000);
  ASSERT_TRUE(first && first->has_value());
  ASSERT_TRUE(consumer_->Fail(**first, "provider timeout", "Error: provider timeout", true));
  json r = ReadJob(kId);
  EXPECT_EQ(r["job"]["state"], "delayed");
  EXPECT_EQ(r["counts"]["delayed"], 1);

  const std::string other = "0b1d4c3e-2f6a-4e8b-9c7d-1a2b3c4d5e6f";
  ASSERT_TRUE(queue_->Add(other, kJobName, kData, JobOptions{}));
  auto second = consumer_->Fetch("w:1", 30000);
  ASSERT_TRUE(second && second->has_value());
  ASSERT_TRUE(consumer_->Fail(**second, "Invalid file format", "UnrecoverableError", false));
  r = ReadJob(other);
  EXPECT_EQ(r["job"]["state"], "failed");
  EXPECT_EQ(r["job"]["failedReason"], "Invalid file format");
  EXPECT_EQ(r["counts"]["failed"], 1);
  json dlq = ReadJob(other, kDeadLetterQueueName);
  ASSERT_TRUE(dlq["job"].is_object()) << dlq.dump();
  EXPECT_EQ(dlq["job"]["state"], "failed");
  EXPECT_EQ(dlq["job"]["name"], "file-upload");
  EXPECT_EQ(dlq["job"]["data"], json::parse(kData));
  EXPECT_EQ(dlq["job"]["failedReason"], "Invalid file format");
  EXPECT_EQ(dlq["job"]["attemptsMade"], 1);
  EXPECT_EQ(dlq["counts"]["failed"], 1);
}

}  // namespace
}  // namespace conveyor::queue
