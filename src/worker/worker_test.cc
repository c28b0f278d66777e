// The worker end to end on its own: a real redis-server, SQLite, the local
// blob store and the real sandboxed `conveyor extract` child. Jobs are added
// straight to Redis, as a Node.js producer (or anyone with Redis access)
// adds them, to check that the row, not the job data, decides whose job it is
// and which file it reads.
#include "worker/worker.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/ids.h"
#include "queue/payload.h"
#include "queue/queue.h"
#include "storage/blob_store.h"
#include "storage/metadata_store.h"
#include "counting.h"
#include "test_support.h"

namespace conveyor::worker {
namespace {

namespace fs = std::filesystem;
using conveyor::testing::Eventually;
using conveyor::testing::RedisServer;
using conveyor::testing::TempDir;
using std::chrono::seconds;

class WorkerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = storage::OpenMetadataStore("sqlite://" + (dir_ / "conveyor.db"), true);
    ASSERT_TRUE(store) << store.status().ToString();
    store_ = std::move(*store);
    auto blobs = storage::OpenLocalBlobStore(dir_ / "uploads");
    ASSERT_TRUE(blobs) << blobs.status().ToString();
    blobs_ = std::move(*blobs);
    storage_dir_ = fs::canonical(dir_ / "uploads").string();
    opts_.host = "127.0.0.1";
    opts_.port = redis_.port();
    auto q = queue::OpenRedisQueue(opts_);
    ASSERT_TRUE(q) << q.status().ToString();
    producer_ = std::move(*q);
  }
  void TearDown() override {
    if (worker_) worker_->Stop();
  }

  // The worker over `store` (default: store_), its consumers counted in
  // `counts` when given.
  void StartWorker(storage::MetadataStore* store = nullptr,
                   std::shared_ptr<conveyor::testing::CallCounts> counts = nullptr) {
    WorkerSettings s;
    s.concurrency = 1;
    s.reconcile_interval_ms = 3600000;
    s.sandbox.binary_path = conveyor::testing::ConveyorBinary();
    s.sandbox.timeout_ms = 30000;
    if (tweak_) tweak_(s);
    auto opts = opts_;
    ConsumerFactory factory = [opts, counts]() -> Result<std::unique_ptr<queue::Consumer>> {
      auto c = queue::OpenRedisConsumer(opts);
      if (!c || !counts) return c;
      return std::unique_ptr<queue::Consumer>(
          std::make_unique<conveyor::testing::CountingConsumer>(std::move(*c), counts));
    };
    worker_ = std::make_unique<Worker>(s, store ? store : store_.get(), blobs_.get(),
                                       producer_.get(), std::move(factory));
    worker_->Start();
  }

  // An upload as the API stores it: blob <id>, then its row (pending).
  std::string ApiUpload(const std::string& user, const std::string& session, const std::string& text) {
    std::string id = NewUuid();
    auto w = blobs_->Create(id);
    EXPECT_TRUE(w);
    EXPECT_TRUE((*w)->Append(text));
    auto path = (*w)->Commit(false);
    EXPECT_TRUE(path);
    storage::NewJob j;
    j.id = id;
    j.user_id = user;
    j.session_id = session;
    j.original_name = "notes.txt";
    j.mime_type = "text/plain";
    j.size_bytes = static_cast<int64_t>(text.size());
    j.storage_path = *path;
    EXPECT_TRUE(store_->InsertJob(j));
    return id;
  }

  void AddJob(const std::string& id, const std::string& data_json) {
    auto added = producer_->Add(id, queue::kJobName, data_json, queue::JobOptions{});
    ASSERT_TRUE(added) << added.status().ToString();
  }
  void AddJob(const std::string& id, const std::string& user, const std::string& session,
              const std::string& storage_path) {
    AddJob(id, queue::EncodeJobPayload({id, user, session, storage_path, "a.txt", "text/plain", 10, ""}));
  }

  // The job's row once final.
  storage::JobRecord WaitFinal(const std::string& id) {
    storage::JobRecord last;
    bool done = Eventually(
        [&] {
          auto r = store_->GetJob(id);
          if (!r || !r->has_value()) return false;
          last = **r;
          return last.status == storage::JobStatus::kCompleted ||
                 last.status == storage::JobStatus::kFailed;
        },
        seconds(60));
    EXPECT_TRUE(done) << "job " << id << " did not finish";
    return last;
  }
  // True once the queue has failed the job (no row needed).
  bool QueueFailed(const std::string& id) {
    return Eventually(
        [&] { return redis_.Cli({"HGET", "bull:file-upload:" + id, "finishedOn"}).size() > 1; },
        seconds(60));
  }

  size_t Hits(const std::string& user, const std::string& session, const std::string& word) {
    auto hits = store_->SearchMemory(user, session, word, 10);
    return hits ? hits->size() : 0;
  }

  static void WriteFile(const std::string& path, const std::string& text) {
    fs::create_directories(fs::path(path).parent_path());
    std::ofstream(path, std::ios::binary) << text;
  }

  RedisServer redis_;
  TempDir dir_;
  std::string storage_dir_;
  queue::RedisOptions opts_;
  std::unique_ptr<storage::MetadataStore> store_;
  std::unique_ptr<storage::BlobStore> blobs_;
  std::unique_ptr<queue::Queue> producer_;
  std::unique_ptr<Worker> worker_;
  std::function<void(WorkerSettings&)> tweak_;  // applied by StartWorker
};

const char kVictimText[] = "The victim quarterly ledger shows zebrafish revenue in detail.\n";
const char kOwnText[] = "Producer report about lighthouse maintenance schedules.\n";

TEST_F(WorkerTest, RowDecidesUserSessionAndFileWhateverTheJobDataSays) {
  std::string victim = ApiUpload("alice", "s-alice", kVictimText);
  std::string mallory = ApiUpload("mallory", "s-mallory", kOwnText);
  // Mallory's job, its data rewritten to claim Alice's file and session.
  AddJob(mallory, "mallory", "s-alice", blobs_->Location(victim));
  StartWorker();
  auto row = WaitFinal(mallory);
  EXPECT_EQ(row.status, storage::JobStatus::kCompleted) << row.error.value_or("");
  // Mallory's own file, filed under Mallory's own session.
  EXPECT_EQ(Hits("mallory", "s-mallory", "lighthouse"), 1u);
  EXPECT_EQ(Hits("mallory", "s-alice", "lighthouse"), 0u);
  EXPECT_EQ(Hits("mallory", "s-mallory", "zebrafish"), 0u);
  // Alice's upload is untouched, and her job then completes.
  EXPECT_TRUE(fs::exists(blobs_->Location(victim)));
  AddJob(victim, "alice", "s-alice", blobs_->Location(victim));
  EXPECT_EQ(WaitFinal(victim).status, storage::JobStatus::kCompleted);
  EXPECT_EQ(Hits("alice", "s-alice", "zebrafish"), 1u);
}

TEST_F(WorkerTest, JobWithoutRowCannotTakeAnotherUsersPendingUpload) {
  std::string victim = ApiUpload("alice", "s-alice", kVictimText);
  std::string thief = NewUuid();
  AddJob(thief, "mallory", "s-mallory", blobs_->Location(victim));
  StartWorker();
  auto row = WaitFinal(thief);
  EXPECT_EQ(row.status, storage::JobStatus::kFailed);
  EXPECT_EQ(row.error.value_or(""), "Invalid storage path");
  EXPECT_EQ(Hits("mallory", "s-mallory", "zebrafish"), 0u);
  ASSERT_TRUE(fs::exists(blobs_->Location(victim))) << "the victim's upload was deleted";
  AddJob(victim, "alice", "s-alice", blobs_->Location(victim));
  EXPECT_EQ(WaitFinal(victim).status, storage::JobStatus::kCompleted);
  EXPECT_EQ(Hits("alice", "s-alice", "zebrafish"), 1u);
}

TEST_F(WorkerTest, ProducerFilesWithAnyNameUnderStorageDirAreProcessed) {
  const std::string top = storage_dir_ + "/report.txt";
  const std::string nested = storage_dir_ + "/node/2026/notes.txt";
  WriteFile(top, kOwnText);
  WriteFile(nested, "Nested producer file about harbour cranes.\n");
  std::string a = NewUuid(), b = NewUuid();
  AddJob(a, "u-node", "s-node", top);
  AddJob(b, "u-node", "s-node", nested);
  StartWorker();
  for (const auto& id : {a, b}) {
    auto row = WaitFinal(id);
    EXPECT_EQ(row.status, storage::JobStatus::kCompleted) << row.error.value_or("");
    EXPECT_EQ(row.storage_path, blobs_->Location(id));
  }
  EXPECT_EQ(Hits("u-node", "s-node", "lighthouse"), 1u);
  EXPECT_EQ(Hits("u-node", "s-node", "cranes"), 1u);
  EXPECT_FALSE(fs::exists(top));  // adopted, then removed once processed
  EXPECT_FALSE(fs::exists(nested));
}

TEST_F(WorkerTest, SymlinksAnywhereAndPathsOutsideAreRefused) {
  const std::string outside_dir = dir_ / "outside";
  WriteFile(outside_dir + "/secret.txt", kVictimText);
  fs::create_directory_symlink(outside_dir, storage_dir_ + "/linkdir");
  fs::create_symlink(outside_dir + "/secret.txt", storage_dir_ + "/link.txt");
  fs::create_directories(storage_dir_ + "/real");
  fs::create_directory_symlink(outside_dir, storage_dir_ + "/real/inner");
  WriteFile(storage_dir_ + "/tmp/" + NewUuid() + ".part", kVictimText);
  std::vector<std::string> paths = {
      storage_dir_ + "/linkdir/secret.txt", storage_dir_ + "/link.txt",
      storage_dir_ + "/real/inner/secret.txt", storage_dir_ + "/../outside/secret.txt",
      outside_dir + "/secret.txt", storage_dir_ + "/tmp",
  };
  std::vector<std::string> ids;
  for (const auto& p : paths) {
    ids.push_back(NewUuid());
    AddJob(ids.back(), "mallory", "s-mallory", p);
  }
  StartWorker();
  for (size_t i = 0; i < ids.size(); ++i) {
    auto row = WaitFinal(ids[i]);
    EXPECT_EQ(row.status, storage::JobStatus::kFailed) << paths[i];
    EXPECT_EQ(row.error.value_or(""), "Invalid storage path") << paths[i];
  }
  EXPECT_EQ(Hits("mallory", "s-mallory", "zebrafish"), 0u);
  EXPECT_TRUE(fs::exists(outside_dir + "/secret.txt"));
}

TEST_F(WorkerTest, MissingUploadFailsWithAPublicMessage) {
  std::string id = ApiUpload("alice", "s-alice", kVictimText);
  fs::remove(blobs_->Location(id));
  AddJob(id, "alice", "s-alice", blobs_->Location(id));
  StartWorker();
  auto row = WaitFinal(id);
  EXPECT_EQ(row.status, storage::JobStatus::kFailed);
  EXPECT_EQ(row.error.value_or(""), "Uploaded file is missing");
  EXPECT_EQ(row.error.value_or("").find(storage_dir_), std::string::npos);
}

TEST_F(WorkerTest, ProducerJobWithInvalidSessionIdIsRefusedWithoutARow) {
  const std::string file = storage_dir_ + "/bad-session.txt";
  WriteFile(file, kOwnText);
  std::string id = NewUuid();
  // Raw bytes straight into Redis: not valid UTF-8.
  AddJob(id, "{\"jobId\":\"" + id + "\",\"userId\":\"u-node\",\"sessionId\":\"s\xff\xfe\"," +
                 "\"storagePath\":\"" + file + "\",\"originalName\":\"a.txt\"," +
                 "\"mimeType\":\"text/plain\",\"size\":10,\"message\":\"\"}");
  std::string too_long = NewUuid();
  AddJob(too_long, "u-node", std::string(300, 's'), file);
  StartWorker();
  EXPECT_TRUE(QueueFailed(id));
  EXPECT_TRUE(QueueFailed(too_long));
  EXPECT_FALSE(store_->GetJob(id)->has_value());
  EXPECT_FALSE(store_->GetJob(too_long)->has_value());
  EXPECT_TRUE(fs::exists(file));  // never adopted
}

// What one job costs, counted through decorators around the real SQLite store
// and the real Redis consumers: database transactions (writes), database
// reads and Redis round trips (one per Consumer call; pipelined calls count
// once). Printed for the record; the bounds keep the cost from creeping back.
TEST_F(WorkerTest, DatabaseAndRedisRoundTripsPerJob) {
  constexpr int kJobs = 6;
  conveyor::testing::CountingMetadataStore counting(store_.get());
  auto redis = std::make_shared<conveyor::testing::CallCounts>();
  std::vector<std::string> ids;
  for (int i = 0; i < kJobs; ++i) {
    std::string id = ApiUpload("u-count", "s-count",
                               "Report " + std::to_string(i) + " about lighthouse keepers.\n");
    AddJob(id, "u-count", "s-count", blobs_->Location(id));
    ids.push_back(id);
  }
  StartWorker(&counting, redis);
  for (const auto& id : ids) {
    auto row = WaitFinal(id);
    ASSERT_EQ(row.status, storage::JobStatus::kCompleted) << row.error.value_or("");
  }
  // The queue is told after the row: stop so that every call is counted.
  worker_->Stop();
  ASSERT_EQ(worker_->finished(), kJobs);

  int redis_per_job = 0;
  for (auto name : conveyor::testing::CountingConsumer::kJobCalls) redis_per_job += redis->Get(name);
  const double writes = static_cast<double>(counting.writes()) / kJobs;
  const double reads = static_cast<double>(counting.reads()) / kJobs;
  const double round_trips = static_cast<double>(redis_per_job) / kJobs;
  std::printf("per job over %d jobs: %.2f database transactions, %.2f database reads, "
              "%.2f Redis round trips\n  database: %s\n  redis: %s\n",
              kJobs, writes, reads, round_trips, counting.counts.ToString().c_str(),
              redis->ToString().c_str());
  // Each job: one statement takes it, two coarse progress writes, one
  // transaction records it; one Redis round trip per progress stage (six)
  // and one to complete it and lease the next (+ the very first lease).
  EXPECT_LE(counting.writes(), 4 * kJobs) << counting.counts.ToString();
  EXPECT_EQ(counting.counts.Get("GetJob"), 0) << counting.counts.ToString();
  EXPECT_LE(redis_per_job, 7 * kJobs + 1) << redis->ToString();
}

// The database is down for one job only: its completion cannot be recorded,
// so its run waits the outage out under its lease, running again and again.
class OutageForOneJob : public conveyor::testing::CountingMetadataStore {
 public:
  OutageForOneJob(storage::MetadataStore* inner, std::string id)
      : CountingMetadataStore(inner), id_(std::move(id)) {}
  Result<void> CompleteJob(const storage::JobCompletion& c) override {
    if (c.memory.job_id == id_) {
      ++refused_;
      return Unavailable("postgres connect: connection refused");
    }
    return CountingMetadataStore::CompleteJob(c);
  }
  int refused() const { return refused_.load(); }

 private:
  const std::string id_;
  std::atomic<int> refused_{0};
};

// A run waiting out an outage whose lease lapses (another lease holds the
// lock now) stops running again: the job belongs to that lease, and the
// slot goes on to the next job instead of racing it.
TEST_F(WorkerTest, ARunWhoseLeaseLapsedDuringAnOutageStopsAndTheSlotMovesOn) {
  const std::string stuck = ApiUpload("u-lease", "s-lease", "Lighthouse keepers' logbook.\n");
  const std::string next = ApiUpload("u-lease", "s-lease", "Harbour pilots' tide tables.\n");
  AddJob(stuck, "u-lease", "s-lease", blobs_->Location(stuck));
  AddJob(next, "u-lease", "s-lease", blobs_->Location(next));
  OutageForOneJob store(store_.get(), stuck);
  tweak_ = [](WorkerSettings& s) {
    s.lock_ms = 1000;  // renewed every 500 ms
    s.outage_wait_ms = 600000;
  };
  StartWorker(&store);  // one slot
  ASSERT_TRUE(Eventually([&] { return store.refused() >= 2; }, seconds(30)))
      << "the run did not meet the outage";
  EXPECT_EQ(store_->GetJob(next)->value().status, storage::JobStatus::kPending);

  // Another lease takes the lock, as after the stalled check handed the job on.
  const std::string lock_key = "bull:file-upload:" + stuck + ":lock";
  redis_.Cli({"SET", lock_key, "another-lease", "PX", "600000"});
  auto row = WaitFinal(next);
  EXPECT_EQ(row.status, storage::JobStatus::kCompleted) << row.error.value_or("");
  EXPECT_EQ(store_->GetJob(stuck)->value().status, storage::JobStatus::kProcessing);
  EXPECT_EQ(redis_.Cli({"GET", lock_key}), "another-lease\n");
}

}  // namespace
}  // namespace conveyor::worker
