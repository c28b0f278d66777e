// Integration tests of the BullMQ-format queue against a real redis-server.
#include "queue/queue.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "queue/internal/async_redis.h"
#include "queue/internal/redis_connection.h"
#include "test_support.h"

namespace conveyor::queue {
namespace {

using conveyor::testing::Eventually;
using conveyor::testing::RedisServer;
using internal::RedisConnection;
using internal::RedisReply;
using nlohmann::json;
using std::chrono::milliseconds;

constexpr const char* kQ = "bull:file-upload:";
constexpr const char* kDlq = "bull:file-upload-dlq:";
const std::string kData = R"({"jobId":"x","userId":"u1","size":3})";

int64_t NowMs() {
  return std::chrono::duration_cast<milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string Uuid(int n) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "00000000-0000-4000-8000-%012d", n);
  return buf;
}

class RedisQueueTest : public ::testing::Test {
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
  }

  RedisReply Cmd(const std::vector<std::string>& argv) {
    auto r = raw_->Command(argv);
    EXPECT_TRUE(r) << r.status().ToString();
    return r ? *r : RedisReply{};
  }
  std::string Str(const std::vector<std::string>& argv) { return Cmd(argv).str; }
  long long Int(const std::vector<std::string>& argv) { return Cmd(argv).integer; }

  std::map<std::string, std::string> Hash(const std::string& key) {
    std::map<std::string, std::string> out;
    RedisReply r = Cmd({"HGETALL", key});
    for (size_t i = 0; i + 1 < r.elements.size(); i += 2) {
      out[r.elements[i].str] = r.elements[i + 1].str;
    }
    return out;
  }

  // The events stream as a list of field maps, oldest first.
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

  // Events named `name` (optionally for `id`).
  std::vector<std::map<std::string, std::string>> EventsNamed(const std::string& name,
                                                              const std::string& id = "") {
    std::vector<std::map<std::string, std::string>> out;
    for (auto& e : Events()) {
      if (e["event"] == name && (id.empty() || e["jobId"] == id)) out.push_back(e);
    }
    return out;
  }

  ActiveJob MustFetch(const std::string& token = "tok-1", int64_t lock_ms = 30000) {
    auto r = consumer_->Fetch(token, lock_ms);
    EXPECT_TRUE(r) << r.status().ToString();
    EXPECT_TRUE(r && r->has_value());
    return r && r->has_value() ? **r : ActiveJob{};
  }

  void MustAdd(const std::string& id, const JobOptions& opts = {}) {
    auto r = queue_->Add(id, kJobName, kData, opts);
    ASSERT_TRUE(r) << r.status().ToString();
    ASSERT_TRUE(*r);
  }

  RedisServer redis_;
  RedisOptions options_;
  std::unique_ptr<RedisConnection> raw_;
  std::unique_ptr<Queue> queue_;
  std::unique_ptr<Consumer> consumer_;
};

TEST_F(RedisQueueTest, AddWritesBullMqJobAndCounts) {
  const std::string id = Uuid(1);
  MustAdd(id);

  auto exists = queue_->Exists(id);
  ASSERT_TRUE(exists);
  EXPECT_TRUE(*exists);
  auto other = queue_->Exists(Uuid(2));
  ASSERT_TRUE(other);
  EXPECT_FALSE(*other);

  auto counts = queue_->Counts();
  ASSERT_TRUE(counts);
  EXPECT_EQ(counts->wait, 1);
  EXPECT_EQ(counts->active + counts->delayed + counts->completed + counts->failed, 0);

  auto h = Hash(kQ + id);
  EXPECT_EQ(h["name"], "file-upload");
  EXPECT_EQ(json::parse(h["data"]), json::parse(kData));
  EXPECT_EQ(h["delay"], "0");
  EXPECT_EQ(h["priority"], "0");
  EXPECT_NEAR(std::stoll(h["timestamp"]), NowMs(), 10000);
  json opts = json::parse(h["opts"]);
  EXPECT_EQ(opts["attempts"], 3);
  EXPECT_EQ(opts["backoff"]["type"], "exponential");
  EXPECT_EQ(opts["backoff"]["delay"], 5000);
  EXPECT_EQ(opts["removeOnComplete"], 1000);
  EXPECT_EQ(opts["removeOnFail"], 1000);

  EXPECT_EQ(Str({"GET", std::string(kQ) + "id"}), "1");
  EXPECT_EQ(Str({"HGET", std::string(kQ) + "meta", "opts.maxLenEvents"}), "10000");
  EXPECT_EQ(Str({"ZSCORE", std::string(kQ) + "marker", "0"}), "0");
  auto events = Events();
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0]["event"], "added");
  EXPECT_EQ(events[0]["name"], "file-upload");
  EXPECT_EQ(events[1]["event"], "waiting");
  EXPECT_EQ(events[1]["jobId"], id);
}

TEST_F(RedisQueueTest, DuplicateAddIsANoOp) {
  const std::string id = Uuid(1);
  MustAdd(id);
  auto again = queue_->Add(id, kJobName, R"({"other":true})", JobOptions{});
  ASSERT_TRUE(again) << again.status().ToString();
  EXPECT_FALSE(*again);
  EXPECT_EQ(Int({"LLEN", std::string(kQ) + "wait"}), 1);
  EXPECT_EQ(json::parse(Hash(kQ + id)["data"]), json::parse(kData));
  EXPECT_EQ(Str({"GET", std::string(kQ) + "id"}), "2");  // INCRed anyway, as BullMQ does
  EXPECT_EQ(EventsNamed("duplicated", id).size(), 1u);
}

TEST_F(RedisQueueTest, IdsBullMqRefusesAreInvalidArguments) {
  for (const char* bad : {"", "0", "0:abc", "123", "a:b", "meta", "wait"}) {
    auto r = queue_->Add(bad, kJobName, "{}", JobOptions{});
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.code(), Errc::kInvalidArgument) << bad;
  }
}

TEST_F(RedisQueueTest, AddManyAddsEachJobAsAddWouldInOneRoundTrip) {
  MustAdd(Uuid(2));
  std::vector<JobToAdd> jobs;
  for (int i = 1; i <= 50; ++i) jobs.push_back({Uuid(i), kJobName, kData, JobOptions{}});
  jobs.push_back({"123", kJobName, kData, JobOptions{}});  // refused alone
  auto stat = [&] {
    // "cmdstat_evalsha:calls=N,..." counts the script calls the server ran.
    std::string info = Cmd({"INFO", "commandstats"}).str;
    size_t at = info.find("cmdstat_evalsha:calls=");
    return at == std::string::npos ? 0LL : std::stoll(info.substr(at + 22));
  };
  const long long calls_before = stat();
  std::vector<Result<bool>> added = queue_->AddMany(jobs);
  ASSERT_EQ(added.size(), jobs.size());
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(added[i]) << i << ": " << added[i].status().ToString();
    EXPECT_EQ(*added[i], i != 1) << "only the job added before is a duplicate";
    EXPECT_EQ(json::parse(Hash(kQ + Uuid(i + 1))["data"]), json::parse(kData));
  }
  EXPECT_EQ(added[50].code(), Errc::kInvalidArgument);
  EXPECT_EQ(stat() - calls_before, 50);
  EXPECT_EQ(Int({"LLEN", std::string(kQ) + "wait"}), 50);
  // Waiting order is the order of the batch (LPUSH: the newest at the head).
  EXPECT_EQ(Str({"LINDEX", std::string(kQ) + "wait", "0"}), Uuid(50));
  EXPECT_EQ(Str({"LINDEX", std::string(kQ) + "wait", "-1"}), Uuid(2));
}

TEST_F(RedisQueueTest, AddManyAfterARedisRestartReconnectsAndAdds) {
  ASSERT_TRUE(queue_->AddMany({{Uuid(1), kJobName, kData, JobOptions{}}})[0]);
  redis_.Stop();
  std::vector<Result<bool>> down = queue_->AddMany({{Uuid(2), kJobName, kData, JobOptions{}}});
  EXPECT_EQ(down[0].code(), Errc::kUnavailable);
  redis_.Start();
  raw_ = std::make_unique<RedisConnection>(options_);
  // The reconnect backoff may refuse the first calls; the add goes through
  // once it has passed.
  ASSERT_TRUE(Eventually(
      [&] { return queue_->AddMany({{Uuid(2), kJobName, kData, JobOptions{}}})[0].ok(); },
      std::chrono::seconds(10)));
  EXPECT_EQ(Int({"EXISTS", kQ + Uuid(2)}), 1);
}

TEST_F(RedisQueueTest, FetchLeasesJobWithLockTokenAndEvents) {
  const std::string id = Uuid(1);
  MustAdd(id);
  Cmd({"DEL", std::string(kQ) + "marker"});
  ActiveJob job = MustFetch("worker-a:0", 30000);
  EXPECT_EQ(job.id, id);
  EXPECT_EQ(job.name, "file-upload");
  EXPECT_EQ(json::parse(job.data_json), json::parse(kData));
  EXPECT_EQ(job.token, "worker-a:0");
  EXPECT_EQ(job.attempts_made, 0);
  EXPECT_EQ(job.attempts_started, 1);
  EXPECT_FALSE(job.deferred_failure);
  EXPECT_EQ(job.options.attempts, 3);
  EXPECT_EQ(job.options.backoff_type, BackoffType::kExponential);
  EXPECT_EQ(job.options.backoff_delay_ms, 5000);
  EXPECT_EQ(job.options.remove_on_complete, 1000);

  EXPECT_EQ(Str({"GET", kQ + id + ":lock"}), "worker-a:0");
  long long pttl = Int({"PTTL", kQ + id + ":lock"});
  EXPECT_GT(pttl, 25000);
  EXPECT_LE(pttl, 30000);
  EXPECT_EQ(Int({"LLEN", std::string(kQ) + "wait"}), 0);
  EXPECT_EQ(Str({"LINDEX", std::string(kQ) + "active", "0"}), id);
  auto h = Hash(kQ + id);
  EXPECT_EQ(h["ats"], "1");
  EXPECT_NEAR(std::stoll(h["processedOn"]), NowMs(), 10000);
  auto active = EventsNamed("active", id);
  ASSERT_EQ(active.size(), 1u);
  EXPECT_EQ(active[0]["prev"], "waiting");
  EXPECT_EQ(Str({"ZSCORE", std::string(kQ) + "marker", "0"}), "0");  // re-added for the next worker

  auto none = consumer_->Fetch("worker-a:1", 30000);
  ASSERT_TRUE(none);
  EXPECT_FALSE(none->has_value());
}

TEST_F(RedisQueueTest, CompleteAndFetchFinishesOneJobAndLeasesTheNext) {
  const std::string a = Uuid(1), b = Uuid(2);
  MustAdd(a);
  MustAdd(b);
  ActiveJob first = MustFetch("w:0", 30000);
  auto r = consumer_->CompleteAndFetch(first, "{\"ok\":1}", "w:1", 30000);
  ASSERT_TRUE(r.completed) << r.completed.status().ToString();
  ASSERT_TRUE(r.next) << r.next.status().ToString();
  ASSERT_TRUE(r.next->has_value());
  EXPECT_EQ((*r.next)->id, first.id == a ? b : a);
  EXPECT_EQ((*r.next)->token, "w:1");
  EXPECT_EQ(Str({"HGET", kQ + first.id, "returnvalue"}), "{\"ok\":1}");
  EXPECT_EQ(Str({"GET", kQ + (*r.next)->id + ":lock"}), "w:1");
  // Nothing left: the completion still happens, the fetch is empty.
  auto last = consumer_->CompleteAndFetch(**r.next, "null", "w:2", 30000);
  ASSERT_TRUE(last.completed);
  ASSERT_TRUE(last.next);
  EXPECT_FALSE(last.next->has_value());
  EXPECT_EQ(Int({"ZCARD", std::string(kQ) + "completed"}), 2);
  // A lost lock fails the completion but not the fetch.
  const std::string c = Uuid(3);
  MustAdd(c);
  ActiveJob third = MustFetch("w:3", 30000);
  ActiveJob forged = third;
  forged.token = "someone-else";
  auto lost = consumer_->CompleteAndFetch(forged, "null", "w:4", 30000);
  EXPECT_EQ(lost.completed.code(), Errc::kFailedPrecondition);
  ASSERT_TRUE(lost.next);
}

TEST_F(RedisQueueTest, CompleteKeepsTheNewest1000Jobs) {
  constexpr int kJobs = 1005;
  for (int i = 0; i < kJobs; ++i) MustAdd(Uuid(i));
  for (int i = 0; i < kJobs; ++i) {
    ActiveJob job = MustFetch();
    ASSERT_EQ(job.id, Uuid(i));  // FIFO
    auto done = consumer_->Complete(job, R"({"fileId":"file_)" + std::to_string(i) + R"("})");
    ASSERT_TRUE(done) << done.status().ToString();
  }
  auto counts = queue_->Counts();
  ASSERT_TRUE(counts);
  EXPECT_EQ(counts->completed, 1000);
  EXPECT_EQ(counts->active, 0);
  EXPECT_EQ(counts->wait, 0);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(Int({"EXISTS", kQ + Uuid(i)}), 0) << i;
    EXPECT_EQ(Int({"EXISTS", kQ + Uuid(i) + ":logs"}), 0) << i;
  }
  auto last = Hash(kQ + Uuid(kJobs - 1));
  EXPECT_EQ(json::parse(last["returnvalue"])["fileId"], "file_1004");
  EXPECT_EQ(last["atm"], "1");
  EXPECT_FALSE(last["finishedOn"].empty());
  EXPECT_EQ(Int({"EXISTS", kQ + Uuid(kJobs - 1) + ":lock"}), 0);
  EXPECT_EQ(Str({"ZSCORE", std::string(kQ) + "completed", Uuid(5)}), Hash(kQ + Uuid(5))["finishedOn"]);
  auto completed = EventsNamed("completed", Uuid(kJobs - 1));
  ASSERT_EQ(completed.size(), 1u);
  EXPECT_EQ(completed[0]["prev"], "active");
  EXPECT_EQ(json::parse(completed[0]["returnvalue"])["fileId"], "file_1004");
  EXPECT_EQ(Events().back()["event"], "drained");
}

TEST_F(RedisQueueTest, RetryParksInDelayedWithBackoffThenRunsWhenDue) {
  const std::string id = Uuid(1);
  JobOptions opts;
  opts.backoff_delay_ms = 300;  // short, but the same arithmetic as the default 5000
  MustAdd(id, opts);
  ActiveJob job = MustFetch();
  int64_t before = NowMs();
  ASSERT_TRUE(consumer_->Fail(job, "database unavailable", "Error: database unavailable\n  at x",
                              /*retry=*/true));
  int64_t after = NowMs();

  auto counts = queue_->Counts();
  ASSERT_TRUE(counts);
  EXPECT_EQ(counts->delayed, 1);
  EXPECT_EQ(counts->active, 0);
  EXPECT_EQ(counts->failed, 0);
  double score = std::stod(Str({"ZSCORE", std::string(kQ) + "delayed", id}));
  EXPECT_GE(score, static_cast<double>(before + 300) * 4096);
  EXPECT_LE(score, static_cast<double>(after + 300) * 4096 + 4095);
  auto h = Hash(kQ + id);
  EXPECT_EQ(h["delay"], "300");
  EXPECT_EQ(h["atm"], "1");
  EXPECT_EQ(h["failedReason"], "database unavailable");
  json trace = json::parse(h["stacktrace"]);
  ASSERT_TRUE(trace.is_array());
  ASSERT_EQ(trace.size(), 1u);
  EXPECT_EQ(trace[0], "Error: database unavailable\n  at x");
  EXPECT_EQ(Int({"EXISTS", kQ + id + ":lock"}), 0);
  auto delayed = EventsNamed("delayed", id);
  ASSERT_EQ(delayed.size(), 1u);
  int64_t due = std::stoll(delayed[0]["delay"]);  // absolute due time
  EXPECT_EQ(static_cast<double>(due), std::floor(score / 4096));
  EXPECT_TRUE(EventsNamed("failed").empty());

  // Not before it is due...
  auto early = consumer_->Fetch("tok-2", 30000);
  ASSERT_TRUE(early);
  EXPECT_FALSE(early->has_value());
  // ...and the delayed marker wakes the consumer when it is.
  std::optional<ActiveJob> again;
  ASSERT_TRUE(Eventually(
      [&] {
        auto woke = consumer_->WaitForWork(1000);
        if (!woke || !*woke) return false;
        auto f = consumer_->Fetch("tok-2", 30000);
        if (f && f->has_value()) again = **f;
        return again.has_value();
      },
      milliseconds(5000)));
  EXPECT_GE(NowMs(), due);
  EXPECT_EQ(again->id, id);
  EXPECT_EQ(again->attempts_made, 1);
  EXPECT_EQ(again->attempts_started, 2);
  EXPECT_EQ(Hash(kQ + id)["delay"], "0");
  EXPECT_EQ(EventsNamed("waiting", id).back()["prev"], "delayed");
}

TEST_F(RedisQueueTest, FirstRetryWithDefaultOptionsWaitsFiveSeconds) {
  const std::string id = Uuid(1);
  MustAdd(id);
  ActiveJob job = MustFetch();
  int64_t before = NowMs();
  ASSERT_TRUE(consumer_->Fail(job, "timeout", "", true));
  double due_ms = std::stod(Str({"ZSCORE", std::string(kQ) + "delayed", id})) / 4096;
  EXPECT_GE(due_ms, static_cast<double>(before + 5000));
  EXPECT_LE(due_ms, static_cast<double>(NowMs() + 5000 + 1));
  EXPECT_EQ(Hash(kQ + id)["delay"], "5000");
  double marker = std::stod(Str({"ZSCORE", std::string(kQ) + "marker", "1"}));
  EXPECT_NEAR(marker, due_ms, 1.0);
}

TEST_F(RedisQueueTest, RetryWithoutBackoffGoesStraightBackToWait) {
  const std::string id = Uuid(1);
  JobOptions opts;
  opts.backoff_delay_ms = 0;
  MustAdd(id, opts);
  ActiveJob job = MustFetch();
  ASSERT_TRUE(consumer_->Fail(job, "flaky", "", true));
  EXPECT_EQ(Int({"LLEN", std::string(kQ) + "wait"}), 1);
  EXPECT_EQ(EventsNamed("waiting", id).back()["prev"], "active");
  ActiveJob again = MustFetch();
  EXPECT_EQ(again.attempts_made, 1);
}

TEST_F(RedisQueueTest, PermanentFailureFailsAtOnceAndIsDeadLettered) {
  const std::string id = Uuid(1);
  MustAdd(id);
  ActiveJob job = MustFetch();
  ASSERT_TRUE(consumer_->Fail(job, "Invalid file format", "UnrecoverableError: x", false));

  auto counts = queue_->Counts();
  ASSERT_TRUE(counts);
  EXPECT_EQ(counts->failed, 1);
  EXPECT_EQ(counts->delayed + counts->wait + counts->active, 0);
  auto h = Hash(kQ + id);
  EXPECT_EQ(h["failedReason"], "Invalid file format");
  EXPECT_EQ(h["atm"], "1");
  EXPECT_FALSE(h["finishedOn"].empty());
  auto failed = EventsNamed("failed", id);
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_EQ(failed[0]["failedReason"], "Invalid file format");
  EXPECT_EQ(failed[0]["prev"], "active");
  EXPECT_TRUE(EventsNamed("retries-exhausted").empty());  // attempts remained

  // The dead-letter copy, in the DLQ's failed set.
  EXPECT_NE(Str({"ZSCORE", std::string(kDlq) + "failed", id}), "");
  auto d = Hash(kDlq + id);
  EXPECT_EQ(d["name"], "file-upload");
  EXPECT_EQ(json::parse(d["data"]), json::parse(kData));
  EXPECT_EQ(json::parse(d["opts"])["attempts"], 1);
  EXPECT_EQ(d["failedReason"], "Invalid file format");
  EXPECT_EQ(d["atm"], "1");
  EXPECT_EQ(json::parse(d["stacktrace"])[0], "UnrecoverableError: x");
  EXPECT_EQ(d["priority"], "0");
  EXPECT_EQ(d["delay"], "0");
  EXPECT_EQ(Int({"LLEN", std::string(kDlq) + "wait"}), 0);  // nothing consumes it by itself
}

TEST_F(RedisQueueTest, ExhaustedAttemptsFailEmitRetriesExhaustedAndDeadLetter) {
  const std::string id = Uuid(1);
  JobOptions opts;
  opts.attempts = 2;
  opts.backoff_delay_ms = 0;
  MustAdd(id, opts);
  ActiveJob first = MustFetch();
  ASSERT_TRUE(consumer_->Fail(first, "boom 1", "trace 1", true));
  ActiveJob second = MustFetch();
  EXPECT_EQ(second.attempts_made, 1);
  ASSERT_TRUE(consumer_->Fail(second, "boom 2", "trace 2", true));  // retry asked, none left

  auto counts = queue_->Counts();
  ASSERT_TRUE(counts);
  EXPECT_EQ(counts->failed, 1);
  EXPECT_EQ(counts->wait + counts->delayed + counts->active, 0);
  auto exhausted = EventsNamed("retries-exhausted", id);
  ASSERT_EQ(exhausted.size(), 1u);
  EXPECT_EQ(exhausted[0]["attemptsMade"], "2");
  EXPECT_EQ(EventsNamed("failed", id).size(), 1u);
  auto d = Hash(kDlq + id);
  EXPECT_EQ(d["failedReason"], "boom 2");
  EXPECT_EQ(d["atm"], "2");
  EXPECT_EQ(json::parse(d["stacktrace"]), json::parse(R"(["trace 1","trace 2"])"));
}

TEST_F(RedisQueueTest, LostLockIsAFailedPrecondition) {
  const std::string id = Uuid(1);
  MustAdd(id);
  ActiveJob job = MustFetch("mine");
  Cmd({"SET", kQ + id + ":lock", "someone-else"});
  auto done = consumer_->Complete(job, "null");
  ASSERT_FALSE(done);
  EXPECT_EQ(done.code(), Errc::kFailedPrecondition);
  auto failed = consumer_->Fail(job, "x", "", false);
  EXPECT_EQ(failed.code(), Errc::kFailedPrecondition);
  EXPECT_EQ(Str({"LINDEX", std::string(kQ) + "active", "0"}), id);  // untouched

  std::vector<ActiveJob*> held = {&job};
  auto lost = consumer_->ExtendLocks(held, 30000);
  ASSERT_TRUE(lost);
  EXPECT_EQ(*lost, std::vector<ActiveJob*>{&job});

  Cmd({"DEL", kQ + id + ":lock"});
  EXPECT_EQ(consumer_->Complete(job, "null").code(), Errc::kFailedPrecondition);
  EXPECT_EQ(consumer_->Release(job).code(), Errc::kFailedPrecondition);
}

// A worker can hold two leases of one job: one whose lock lapsed (the job was
// recovered as stalled) and the one it fetched again. Only the lapsed one is
// lost, and the live one is renewed.
TEST_F(RedisQueueTest, ExtendLocksNamesTheLapsedLeaseOfTwoWithOneId) {
  const std::string id = Uuid(1);
  MustAdd(id);
  MustAdd(Uuid(2));
  ActiveJob stale = MustFetch("first", 1000);
  ActiveJob other = MustFetch("other", 1000);
  ActiveJob live = stale;
  live.token = "second";
  Cmd({"SET", kQ + id + ":lock", "second", "PX", "1000"});
  std::vector<ActiveJob*> held = {&live, &stale, &other};
  auto lost = consumer_->ExtendLocks(held, 60000);
  ASSERT_TRUE(lost) << lost.status().ToString();
  EXPECT_EQ(*lost, std::vector<ActiveJob*>{&stale});
  EXPECT_EQ(Str({"GET", kQ + id + ":lock"}), "second");
  EXPECT_GT(Int({"PTTL", kQ + id + ":lock"}), 50000);
  EXPECT_GT(Int({"PTTL", kQ + Uuid(2) + ":lock"}), 50000);
}

TEST_F(RedisQueueTest, ExtendLocksRenewsAndClearsTheStalledMark) {
  const std::string id = Uuid(1);
  MustAdd(id);
  ActiveJob job = MustFetch("mine", 1000);
  ASSERT_TRUE(consumer_->RecoverStalled(60000));  // marks the active job
  EXPECT_EQ(Int({"SISMEMBER", std::string(kQ) + "stalled", id}), 1);
  std::vector<ActiveJob*> held = {&job};
  auto lost = consumer_->ExtendLocks(held, 60000);
  ASSERT_TRUE(lost);
  EXPECT_TRUE(lost->empty());
  EXPECT_GT(Int({"PTTL", kQ + id + ":lock"}), 50000);
  EXPECT_EQ(Int({"SISMEMBER", std::string(kQ) + "stalled", id}), 0);
}

TEST_F(RedisQueueTest, StalledJobReturnsToFrontOfWaitThenIsDeferredFailed) {
  const std::string id = Uuid(1);
  MustAdd(id);
  MustAdd(Uuid(2));
  const std::string stalled_check = std::string(kQ) + "stalled-check";

  // Two passes around an expired lock: the first marks, the second recovers.
  auto stall = [&](const std::string& token) {
    ActiveJob job = MustFetch(token, 50);
    EXPECT_EQ(job.id, id);
    EXPECT_TRUE(Eventually([&] { return Int({"EXISTS", stalled_check}) == 0; },
                           milliseconds(2000)));
    auto marked = consumer_->RecoverStalled(1);
    EXPECT_TRUE(marked && marked->empty());
    EXPECT_TRUE(Eventually([&] { return Int({"EXISTS", kQ + id + ":lock"}) == 0; },
                           milliseconds(2000)));
    EXPECT_TRUE(Eventually([&] { return Int({"EXISTS", stalled_check}) == 0; },
                           milliseconds(2000)));
    auto recovered = consumer_->RecoverStalled(1);
    EXPECT_TRUE(recovered);
    return recovered ? *recovered : std::vector<std::string>{};
  };

  EXPECT_EQ(stall("w1"), std::vector<std::string>{id});
  // Front of the queue: ahead of Uuid(2), which was added after it.
  EXPECT_EQ(Str({"LINDEX", std::string(kQ) + "wait", "-1"}), id);
  EXPECT_EQ(Hash(kQ + id)["stc"], "1");
  EXPECT_EQ(Hash(kQ + id).count("defa"), 0u);
  EXPECT_EQ(EventsNamed("stalled", id).size(), 1u);
  EXPECT_EQ(EventsNamed("waiting", id).back()["prev"], "active");

  EXPECT_EQ(stall("w2"), std::vector<std::string>{id});
  EXPECT_EQ(Hash(kQ + id)["stc"], "2");
  EXPECT_EQ(Hash(kQ + id)["defa"], "job stalled more than allowable limit");

  ActiveJob job = MustFetch("w3");
  EXPECT_EQ(job.id, id);
  EXPECT_EQ(job.stalled_count, 2);
  ASSERT_TRUE(job.deferred_failure.has_value());
  EXPECT_EQ(*job.deferred_failure, "job stalled more than allowable limit");
  // Even a transient-looking failure is final for it.
  ASSERT_TRUE(consumer_->Fail(job, *job.deferred_failure, "", true));
  EXPECT_NE(Str({"ZSCORE", std::string(kQ) + "failed", id}), "");
  EXPECT_EQ(Hash(kQ + id).count("defa"), 0u);
  EXPECT_NE(Str({"ZSCORE", std::string(kDlq) + "failed", id}), "");
}

TEST_F(RedisQueueTest, StalledCheckIsThrottled) {
  MustAdd(Uuid(1));
  MustFetch("w", 50);
  ASSERT_TRUE(consumer_->RecoverStalled(60000));
  ASSERT_TRUE(Eventually([&] { return Int({"EXISTS", kQ + Uuid(1) + ":lock"}) == 0; },
                         milliseconds(2000)));
  auto skipped = consumer_->RecoverStalled(60000);
  ASSERT_TRUE(skipped);
  EXPECT_TRUE(skipped->empty());
  EXPECT_EQ(Int({"LLEN", std::string(kQ) + "active"}), 1);
}

TEST_F(RedisQueueTest, PausedQueueIsNotFetched) {
  Cmd({"HSET", std::string(kQ) + "meta", "paused", "1"});
  MustAdd(Uuid(1));
  EXPECT_EQ(Int({"EXISTS", std::string(kQ) + "marker"}), 0);  // no wake-up while paused
  auto none = consumer_->Fetch("t", 30000);
  ASSERT_TRUE(none);
  EXPECT_FALSE(none->has_value());
  EXPECT_EQ(Int({"LLEN", std::string(kQ) + "wait"}), 1);
  Cmd({"HDEL", std::string(kQ) + "meta", "paused"});
  EXPECT_EQ(MustFetch().id, Uuid(1));
}

TEST_F(RedisQueueTest, ProgressAndLogs) {
  const std::string id = Uuid(1);
  MustAdd(id);
  ASSERT_TRUE(consumer_->UpdateProgress(id, "42"));
  ASSERT_TRUE(consumer_->UpdateProgress(id, R"({"pct":50})"));
  EXPECT_EQ(json::parse(Hash(kQ + id)["progress"])["pct"], 50);
  auto progress = EventsNamed("progress", id);
  ASSERT_EQ(progress.size(), 2u);
  EXPECT_EQ(progress[0]["data"], "42");
  ASSERT_TRUE(consumer_->AddLog(id, "parsed 3 pages"));
  ASSERT_TRUE(consumer_->AddLog(id, "analysed"));
  RedisReply logs = Cmd({"LRANGE", kQ + id + ":logs", "0", "-1"});
  ASSERT_EQ(logs.elements.size(), 2u);
  EXPECT_EQ(logs.elements[0].str, "parsed 3 pages");
  EXPECT_EQ(logs.elements[1].str, "analysed");
  EXPECT_EQ(consumer_->UpdateProgress(Uuid(9), "1").code(), Errc::kNotFound);
  EXPECT_EQ(consumer_->AddLog(Uuid(9), "x").code(), Errc::kNotFound);
}

TEST_F(RedisQueueTest, ReportProgressWritesTheProgressEventAndTheLogLine) {
  const std::string id = Uuid(1);
  MustAdd(id);
  ASSERT_TRUE(consumer_->ReportProgress(id, R"({"stage":"extract","percent":20})",
                                        "stage extract 20%"));
  ASSERT_TRUE(consumer_->ReportProgress(id, R"({"stage":"store","percent":90})",
                                        "stage store 90%"));
  EXPECT_EQ(json::parse(Hash(kQ + id)["progress"])["stage"], "store");
  auto progress = EventsNamed("progress", id);
  ASSERT_EQ(progress.size(), 2u);
  EXPECT_EQ(json::parse(progress[0]["data"])["percent"], 20);
  RedisReply logs = Cmd({"LRANGE", kQ + id + ":logs", "0", "-1"});
  ASSERT_EQ(logs.elements.size(), 2u);
  EXPECT_EQ(logs.elements[0].str, "stage extract 20%");
  EXPECT_EQ(logs.elements[1].str, "stage store 90%");
  EXPECT_EQ(consumer_->ReportProgress(Uuid(9), "1", "x").code(), Errc::kNotFound);
  EXPECT_EQ(Int({"EXISTS", kQ + Uuid(9) + ":logs"}), 0);
  // A job added with keepLogs (a Node producer's `kl`) keeps that many lines.
  Cmd({"HSET", kQ + id, "opts", R"({"attempts":3,"kl":1})"});
  ASSERT_TRUE(consumer_->ReportProgress(id, "95", "stage done 95%"));
  logs = Cmd({"LRANGE", kQ + id + ":logs", "0", "-1"});
  ASSERT_EQ(logs.elements.size(), 1u);
  EXPECT_EQ(logs.elements[0].str, "stage done 95%");
  EXPECT_EQ(EventsNamed("progress", id).size(), 3u);
}

// PostProgress does not wait, but what the consumer sends next follows it
// on the same connection: the job's log holds the posted lines, in order,
// before the completion's reply comes back.
TEST_F(RedisQueueTest, PostedProgressReachesRedisBeforeTheNextCall) {
  const std::string id = Uuid(1);
  MustAdd(id);
  ActiveJob job = MustFetch();
  for (int i = 1; i <= 20; ++i) {
    consumer_->PostProgress(id, std::to_string(i), "stage " + std::to_string(i));
  }
  consumer_->PostProgress(Uuid(9), "1", "a job that is gone: logged, nothing written");
  ASSERT_TRUE(consumer_->Complete(job, R"({"ok":true})"));
  RedisReply logs = Cmd({"LRANGE", kQ + id + ":logs", "0", "-1"});
  ASSERT_EQ(logs.elements.size(), 20u);
  for (int i = 1; i <= 20; ++i) EXPECT_EQ(logs.elements[i - 1].str, "stage " + std::to_string(i));
  EXPECT_EQ(EventsNamed("progress", id).size(), 20u);
  EXPECT_EQ(Int({"EXISTS", kQ + Uuid(9) + ":logs"}), 0);
  EXPECT_EQ(Hash(kQ + id)["progress"], "20");
}

TEST_F(RedisQueueTest, ReleasePutsTheJobBackAtTheFront) {
  MustAdd(Uuid(1));
  MustAdd(Uuid(2));
  ActiveJob job = MustFetch("w");
  ASSERT_TRUE(consumer_->Release(job));
  EXPECT_EQ(Int({"EXISTS", kQ + Uuid(1) + ":lock"}), 0);
  EXPECT_EQ(Int({"LLEN", std::string(kQ) + "active"}), 0);
  EXPECT_EQ(EventsNamed("waiting", Uuid(1)).back()["prev"], "active");
  EXPECT_EQ(MustFetch("w2").id, Uuid(1));
}

TEST_F(RedisQueueTest, WaitForWorkWakesOnAddAndTimesOutWhenIdle) {
  Cmd({"DEL", std::string(kQ) + "marker"});
  auto idle = consumer_->WaitForWork(50);
  ASSERT_TRUE(idle);
  EXPECT_FALSE(*idle);
  std::thread producer([&] {
    // Add from another connection while the consumer blocks.
    auto q = OpenRedisQueue(options_);
    ASSERT_TRUE(q);
    ASSERT_TRUE((*q)->Add(Uuid(1), kJobName, "{}", JobOptions{}));
  });
  auto woke = consumer_->WaitForWork(5000);
  producer.join();
  ASSERT_TRUE(woke) << woke.status().ToString();
  EXPECT_TRUE(*woke);
  EXPECT_EQ(MustFetch().id, Uuid(1));
}

// The consumer is shared by a worker's slots: calls from many threads at once
// are pipelined on its one command connection, each gets its own reply.
TEST_F(RedisQueueTest, OneConsumerServesManyThreadsAtOnce) {
  constexpr int kJobs = 120, kThreads = 8;
  for (int i = 1; i <= kJobs; ++i) MustAdd(Uuid(i));
  std::atomic<int> done{0};
  std::vector<std::thread> threads;
  std::mutex mu;
  std::map<std::string, int> seen;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      uint64_t seq = 0;
      for (;;) {
        std::string token = "tok-" + std::to_string(t) + "-" + std::to_string(seq++);
        auto job = consumer_->Fetch(token, 30000);
        ASSERT_TRUE(job) << job.status().ToString();
        if (!job->has_value()) return;
        ASSERT_EQ((*job)->token, token);
        ASSERT_TRUE(consumer_->ReportProgress((*job)->id, "50", "half way"));
        ASSERT_TRUE(consumer_->Complete(**job, "\"" + (*job)->id + "\""));
        std::lock_guard lock(mu);
        seen[(*job)->id]++;
        done++;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(done.load(), kJobs);
  EXPECT_EQ(seen.size(), static_cast<size_t>(kJobs));
  for (const auto& [id, n] : seen) {
    EXPECT_EQ(n, 1) << id;
    EXPECT_EQ(Hash(kQ + id)["returnvalue"], "\"" + id + "\"");
  }
  auto counts = queue_->Counts();
  ASSERT_TRUE(counts);
  EXPECT_EQ(counts->completed, kJobs);
}

// BZPOPMIN has a connection of its own: a thread waiting for work does not
// hold up the other threads' commands.
TEST_F(RedisQueueTest, WaitingForWorkDoesNotDelayOtherCalls) {
  Cmd({"DEL", std::string(kQ) + "marker"});
  std::thread waiter([&] { (void)consumer_->WaitForWork(4000); });
  ASSERT_TRUE(Eventually(
      [&] { return Str({"INFO", "clients"}).find("blocked_clients:1") != std::string::npos; },
      milliseconds(5000)));
  auto start = std::chrono::steady_clock::now();
  MustAdd(Uuid(1));  // wakes the waiter too
  auto none = consumer_->Fetch("tok-x", 30000);  // may race the wake-up: any answer
  ASSERT_TRUE(none) << none.status().ToString();
  auto elapsed = std::chrono::steady_clock::now() - start;
  waiter.join();
  EXPECT_LT(elapsed, milliseconds(2000));
}

// A server that stops answering: the call fails with kUnavailable after the
// command timeout instead of hanging, and the consumer works again after.
TEST_F(RedisQueueTest, UnansweredCallTimesOutAndTheConsumerRecovers) {
  RedisOptions quick = options_;
  quick.command_timeout_ms = 300;
  auto c = OpenRedisConsumer(quick);
  ASSERT_TRUE(c) << c.status().ToString();
  auto first = (*c)->Fetch("tok-1", 30000);
  ASSERT_TRUE(first) << first.status().ToString();
  Cmd({"CLIENT", "PAUSE", "1500"});
  auto start = std::chrono::steady_clock::now();
  auto paused = (*c)->Fetch("tok-2", 30000);
  auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(paused);
  EXPECT_EQ(paused.code(), Errc::kUnavailable);
  EXPECT_LT(elapsed, milliseconds(1400));
  MustAdd(Uuid(1));  // after the pause (the producer's call waits it out)
  std::optional<ActiveJob> job;
  ASSERT_TRUE(Eventually(
      [&] {
        auto f = (*c)->Fetch("tok-3", 30000);
        if (f && f->has_value()) job = **f;
        return job.has_value();
      },
      milliseconds(10000)));
  EXPECT_EQ(job->id, Uuid(1));
}

TEST_F(RedisQueueTest, SurvivesRedisRestartFromAof) {
  const std::string id = Uuid(1);
  MustAdd(id);
  redis_.Kill();
  auto down = consumer_->Fetch("t", 30000);
  ASSERT_FALSE(down);
  EXPECT_EQ(down.code(), Errc::kUnavailable);
  EXPECT_EQ(queue_->Ping().code(), Errc::kUnavailable);
  redis_.Start();
  std::optional<ActiveJob> job;
  ASSERT_TRUE(Eventually(
      [&] {
        auto f = consumer_->Fetch("t", 30000);
        if (f && f->has_value()) job = **f;
        return job.has_value();
      },
      milliseconds(10000)));
  EXPECT_EQ(job->id, id);
  EXPECT_TRUE(queue_->Ping());
  auto exists = queue_->Exists(id);
  ASSERT_TRUE(exists);
  EXPECT_TRUE(*exists);
}

TEST_F(RedisQueueTest, ScriptFlushIsSurvived) {
  MustAdd(Uuid(1));
  Cmd({"SCRIPT", "FLUSH"});
  MustAdd(Uuid(2));
  ActiveJob job = MustFetch();
  Cmd({"SCRIPT", "FLUSH"});
  ASSERT_TRUE(consumer_->Complete(job, "null"));
  auto counts = queue_->Counts();
  ASSERT_TRUE(counts);
  EXPECT_EQ(counts->completed, 1);
  EXPECT_EQ(counts->wait, 1);
}

TEST_F(RedisQueueTest, UnreachableRedisIsUnavailable) {
  RedisOptions nowhere = options_;
  nowhere.port = conveyor::testing::FreePort();
  nowhere.connect_timeout_ms = 200;
  auto q = OpenRedisQueue(nowhere);
  ASSERT_FALSE(q);
  EXPECT_EQ(q.code(), Errc::kUnavailable);
}

// The event-driven connection builds replies with its own reader functions;
// the blocking one copies hiredis's. Every shape a script can answer must
// come out the same from both: nested arrays, nils inside arrays, empty
// arrays and strings, binary bytes, integers, status and error elements.
bool SameReply(const RedisReply& a, const RedisReply& b) {
  if (a.type != b.type || a.str != b.str || a.integer != b.integer ||
      a.elements.size() != b.elements.size()) {
    return false;
  }
  for (size_t i = 0; i < a.elements.size(); ++i) {
    if (!SameReply(a.elements[i], b.elements[i])) return false;
  }
  return true;
}

TEST_F(RedisQueueTest, TheEventDrivenConnectionReadsEveryReplyShapeAsTheBlockingOneDoes) {
  internal::AsyncRedis async(options_);
  const std::vector<std::string> bodies = {
      "return 7",
      "return 'plain'",
      "return ''",
      "return ARGV[1]",
      "return {}",
      "return {1, false, 'x', {}, {2, {3, {ARGV[1], false}}}}",
      "return redis.status_reply('FINE')",
      "return {redis.status_reply('S'), redis.error_reply('E inside'), -5}",
      "local t = {} for i = 1, 300 do t[i] = {i, tostring(i) .. string.rep('y', i)} end return t",
  };
  const std::string binary("a\0b\r\nc", 6);
  int n = 0;
  for (const std::string& body : bodies) {
    internal::Script script{"shape" + std::to_string(n++), body, Str({"SCRIPT", "LOAD", body})};
    auto blocking = raw_->Eval(script, {}, {binary});
    auto evented = async.Eval(internal::EvalCommand(script, {}, {binary}));
    ASSERT_TRUE(blocking) << body << ": " << blocking.status().ToString();
    ASSERT_TRUE(evented) << body << ": " << evented.status().ToString();
    EXPECT_TRUE(SameReply(*blocking, *evented)) << body;
  }
  // An error reply as the whole answer is the script's failure on both.
  const std::string fails = "return redis.error_reply('no good')";
  internal::Script failing{"failing", fails, Str({"SCRIPT", "LOAD", fails})};
  auto blocking = raw_->Eval(failing, {}, {});
  auto evented = async.Eval(internal::EvalCommand(failing, {}, {}));
  ASSERT_FALSE(evented);
  EXPECT_EQ(evented.code(), blocking.code());
  EXPECT_NE(evented.status().message().find("no good"), std::string::npos);
}

}  // namespace
}  // namespace conveyor::queue
