// The group commit against real servers: rows in SQLite (a file) or
// PostgreSQL, jobs in Redis, blobs in a local directory. Two pass-through
// wrappers watch the real components: CountingStore counts the insert
// transactions (and can hold them, so a batch forms deterministically) and
// OrderCheckingQueue checks, from another connection, that every job's row
// is committed before the job is added.
#include "uploads/group_commit.h"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "core/ids.h"
#include "queue/queue.h"
#include "storage/blob_store.h"
#include "storage/metadata_store.h"
#include "test_support.h"

namespace conveyor::uploads {
namespace {

using conveyor::testing::Eventually;
using conveyor::testing::PostgresServer;
using conveyor::testing::RedisServer;
using conveyor::testing::TempDir;
using std::chrono::seconds;

// Forwards to a real store; counts insert transactions (each InsertJob and
// InsertJobs call is one) and, while held, keeps them waiting at the door.
class CountingStore final : public storage::MetadataStore {
 public:
  explicit CountingStore(storage::MetadataStore& inner) : inner_(inner) {}

  Result<void> InsertJob(const storage::NewJob& job) override {
    Enter(1);
    return inner_.InsertJob(job);
  }
  Result<void> InsertJobs(const std::vector<storage::NewJob>& jobs) override {
    Enter(jobs.size());
    batch_calls.fetch_add(1);
    return inner_.InsertJobs(jobs);
  }

  // Inserts wait until Release(); waiting_rows() says how many rows wait.
  void Hold() {
    std::lock_guard lock(mu_);
    held_ = true;
  }
  void Release() {
    {
      std::lock_guard lock(mu_);
      held_ = false;
    }
    cv_.notify_all();
  }
  size_t waiting_rows() {
    std::lock_guard lock(mu_);
    return waiting_rows_;
  }

  std::atomic<int> transactions{0};
  std::atomic<int> batch_calls{0};

  Result<std::optional<storage::JobRecord>> GetJob(const std::string& id) override {
    return inner_.GetJob(id);
  }
  Result<std::optional<storage::JobRecord>> GetJobForUser(const std::string& id,
                                                          const std::string& user) override {
    return inner_.GetJobForUser(id, user);
  }
  Result<void> MarkProcessing(const std::string& id, int attempts) override {
    return inner_.MarkProcessing(id, attempts);
  }
  Result<void> SetProgress(const std::string& id, int percent) override {
    return inner_.SetProgress(id, percent);
  }
  Result<void> MarkCompleted(const std::string& id, const std::string& file_id,
                             const std::string& result_json) override {
    return inner_.MarkCompleted(id, file_id, result_json);
  }
  Result<void> MarkFailed(const std::string& id, const std::string& error) override {
    return inner_.MarkFailed(id, error);
  }
  Result<void> MarkPending(const std::string& id) override { return inner_.MarkPending(id); }
  Result<std::vector<storage::JobRecord>> ListPending(int64_t older_than_ms, int limit) override {
    return inner_.ListPending(older_than_ms, limit);
  }
  Result<void> StoreFileMemory(const storage::FileMemory& memory) override {
    return inner_.StoreFileMemory(memory);
  }
  Result<std::vector<storage::RelatedFile>> FindRelatedFiles(
      const storage::RelatedQuery& query) override {
    return inner_.FindRelatedFiles(query);
  }
  Result<std::vector<storage::MemoryHit>> SearchMemory(const std::string& user_id,
                                                       const std::string& session_id,
                                                       const std::string& query,
                                                       int limit) override {
    return inner_.SearchMemory(user_id, session_id, query, limit);
  }
  Result<void> Ping() override { return inner_.Ping(); }

 private:
  void Enter(size_t rows) {
    transactions.fetch_add(1);
    std::unique_lock lock(mu_);
    waiting_rows_ += rows;
    cv_.wait(lock, [&] { return !held_; });
    waiting_rows_ -= rows;
  }

  storage::MetadataStore& inner_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool held_ = false;
  size_t waiting_rows_ = 0;
};

// Forwards to the real Redis queue; before each add, reads the job's row
// through `observer` (another connection: it sees committed rows only).
class OrderCheckingQueue final : public queue::Queue {
 public:
  OrderCheckingQueue(queue::Queue& inner, storage::MetadataStore& observer)
      : inner_(inner), observer_(observer) {}

  Result<bool> Add(const std::string& id, const std::string& name, const std::string& data,
                   const queue::JobOptions& opts) override {
    Check(id);
    return inner_.Add(id, name, data, opts);
  }
  std::vector<Result<bool>> AddMany(const std::vector<queue::JobToAdd>& jobs) override {
    for (const auto& j : jobs) Check(j.id);
    round_trips.fetch_add(1);
    return inner_.AddMany(jobs);
  }
  Result<bool> Exists(const std::string& id) override { return inner_.Exists(id); }
  Result<queue::JobCounts> Counts() override { return inner_.Counts(); }
  Result<void> Ping() override { return inner_.Ping(); }

  std::atomic<int> checked{0};
  std::atomic<int> added_before_row{0};
  std::atomic<int> round_trips{0};

 private:
  void Check(const std::string& id) {
    checked.fetch_add(1);
    auto row = observer_.GetJob(id);
    if (!row.ok() || !row->has_value()) added_before_row.fetch_add(1);
  }
  queue::Queue& inner_;
  storage::MetadataStore& observer_;
};

// Where the rows go: a URL for a fresh database (two stores may open it).
struct Backend {
  const char* name;
  std::string (*fresh_url)(TempDir& dir);
};

std::string SqliteUrl(TempDir& dir) { return "sqlite://" + (dir / "conveyor.db"); }

PostgresServer& SharedPostgres() {
  static PostgresServer server;
  return server;
}
std::string PostgresUrl(TempDir&) {
  static std::atomic<int> n{0};
  return SharedPostgres().CreateDatabase("group_commit_" + std::to_string(n++));
}

const Backend kSqlite{"sqlite", SqliteUrl};
const Backend kPostgres{"postgres", PostgresUrl};

class GroupCommitTest : public ::testing::TestWithParam<const Backend*> {
 protected:
  void SetUp() override {
    std::string url = GetParam()->fresh_url(dir_);
    auto store = storage::OpenMetadataStore(url, /*migrate=*/true);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(*store);
    auto observer = storage::OpenMetadataStore(url, /*migrate=*/false);
    ASSERT_TRUE(observer.ok()) << observer.status().ToString();
    observer_ = std::move(*observer);
    auto blobs = storage::OpenLocalBlobStore(dir_ / "blobs");
    ASSERT_TRUE(blobs.ok()) << blobs.status().ToString();
    blobs_ = std::move(*blobs);
    queue::RedisOptions o;
    o.host = "127.0.0.1";
    o.port = redis_.port();
    o.command_timeout_ms = 2000;
    auto q = queue::OpenRedisQueue(o);
    ASSERT_TRUE(q.ok()) << q.status().ToString();
    redis_queue_ = std::move(*q);
    counting_ = std::make_unique<CountingStore>(*store_);
    checking_ = std::make_unique<OrderCheckingQueue>(*redis_queue_, *observer_);
  }

  std::unique_ptr<GroupCommitter> NewCommitter(GroupCommitOptions o = {}) {
    o.queue_retry_delay_ms = 1;
    return std::make_unique<GroupCommitter>(*counting_, *checking_, *blobs_, o);
  }

  // A sealed upload: its blob committed under its id, its row described.
  storage::NewJob Sealed(const std::string& session = "s1") {
    FileSink sink(*blobs_, NewUuid(), 1 << 20);
    EXPECT_TRUE(sink.Append("hello " + session).ok());
    AcceptedUpload up;
    up.user_id = "u1";
    up.session_id = session;
    up.original_name = "a.txt";
    up.mime_type = "text/plain";
    auto row = Seal(std::move(up), sink, /*fsync=*/false);
    EXPECT_TRUE(row.ok()) << row.status().ToString();
    return row.ok() ? *row : storage::NewJob{};
  }

  bool JobInRedis(const std::string& id) {
    auto e = redis_queue_->Exists(id);
    return e.ok() && *e;
  }
  bool RowPending(const std::string& id) {
    auto r = observer_->GetJob(id);
    return r.ok() && r->has_value() && (*r)->status == storage::JobStatus::kPending;
  }

  TempDir dir_;
  RedisServer redis_;
  std::unique_ptr<storage::MetadataStore> store_, observer_;
  std::unique_ptr<storage::BlobStore> blobs_;
  std::unique_ptr<queue::Queue> redis_queue_;
  std::unique_ptr<CountingStore> counting_;
  std::unique_ptr<OrderCheckingQueue> checking_;
};

TEST_P(GroupCommitTest, ConcurrentUploadsShareTransactionsAndRoundTrips) {
  GroupCommitOptions o;
  o.sync_blob_names = true;  // one directory fsync per batch, as with UPLOAD_FSYNC
  auto committer = NewCommitter(o);
  constexpr int kCallers = 24;
  std::vector<storage::NewJob> rows;
  for (int i = 0; i < kCallers; ++i) rows.push_back(Sealed("s" + std::to_string(i)));
  // The first transaction waits at the door until every caller has
  // submitted, so the rest must gather behind it.
  counting_->Hold();
  std::vector<Result<AcceptOutcome>> results(kCallers, Internal("no answer"));
  std::vector<std::thread> callers;
  for (int i = 0; i < kCallers; ++i) {
    callers.emplace_back([&, i] { results[i] = committer->Commit(rows[i]); });
  }
  ASSERT_TRUE(Eventually(
      [&] { return counting_->waiting_rows() + committer->queued() == kCallers; }, seconds(10)));
  counting_->Release();
  for (auto& t : callers) t.join();

  for (int i = 0; i < kCallers; ++i) {
    ASSERT_TRUE(results[i].ok()) << i << ": " << results[i].status().ToString();
    EXPECT_EQ(results[i]->job_id, rows[i].id);
    EXPECT_EQ(results[i]->storage_path, rows[i].storage_path);
    EXPECT_TRUE(results[i]->enqueued);
    EXPECT_TRUE(RowPending(rows[i].id)) << i;
    EXPECT_TRUE(JobInRedis(rows[i].id)) << i;
    EXPECT_TRUE(std::filesystem::exists(rows[i].storage_path)) << i;
  }
  // The one held transaction, then one for everything that gathered.
  EXPECT_LE(counting_->transactions.load(), 2);
  EXPECT_LT(counting_->transactions.load(), kCallers);
  EXPECT_LE(checking_->round_trips.load(), 2);
  GroupCommitter::Stats st = committer->stats();
  EXPECT_EQ(st.rows, static_cast<uint64_t>(kCallers));
  EXPECT_EQ(st.batches, static_cast<uint64_t>(counting_->transactions.load()));
  EXPECT_EQ(st.split_batches, 0u);
  EXPECT_EQ(checking_->checked.load(), kCallers);
  EXPECT_EQ(checking_->added_before_row.load(), 0);
}

TEST_P(GroupCommitTest, ARowThatFailsAloneDoesNotFailItsBatch) {
  auto committer = NewCommitter();
  // A row the database refuses: its id is taken already.
  storage::NewJob taken = Sealed();
  ASSERT_TRUE(store_->InsertJob(taken).ok());
  storage::NewJob duplicate = Sealed();
  duplicate.id = taken.id;  // its own blob, the other row's id

  // A plug holds the committer while the batch gathers behind it.
  counting_->Hold();
  std::thread plug([&] { EXPECT_TRUE(committer->Commit(Sealed()).ok()); });
  ASSERT_TRUE(Eventually([&] { return counting_->waiting_rows() == 1; }, seconds(10)));
  const int transactions_before = counting_->transactions.load();

  std::vector<storage::NewJob> rows = {Sealed(), Sealed(), duplicate, Sealed(), Sealed()};
  std::vector<Result<AcceptOutcome>> results(rows.size(), Internal("no answer"));
  std::atomic<int> answered{0};
  for (size_t i = 0; i < rows.size(); ++i) {
    committer->Submit(rows[i], [&, i](Result<AcceptOutcome> r) {
      results[i] = std::move(r);
      answered.fetch_add(1);
    });
  }
  ASSERT_EQ(committer->queued(), rows.size());
  counting_->Release();
  plug.join();
  ASSERT_TRUE(Eventually([&] { return answered.load() == static_cast<int>(rows.size()); },
                         seconds(10)));

  EXPECT_EQ(results[2].code(), Errc::kAlreadyExists) << results[2].status().ToString();
  // Blobs go by the job id: the refused row's id names the blob of the row
  // that has it, which must stay. (The refused row's own file, under another
  // name here, is no row's: the storage sweeper's business.)
  EXPECT_TRUE(std::filesystem::exists(taken.storage_path)) << "another row's blob was removed";
  for (size_t i : {0u, 1u, 3u, 4u}) {
    ASSERT_TRUE(results[i].ok()) << i << ": " << results[i].status().ToString();
    EXPECT_TRUE(results[i]->enqueued);
    EXPECT_TRUE(RowPending(rows[i].id));
    EXPECT_TRUE(JobInRedis(rows[i].id));
  }
  // The batch's transaction failed whole, then each row had its own.
  EXPECT_EQ(counting_->transactions.load() - transactions_before, 1 + static_cast<int>(rows.size()));
  EXPECT_EQ(committer->stats().split_batches, 1u);
  EXPECT_EQ(checking_->added_before_row.load(), 0);
  EXPECT_FALSE(JobInRedis(taken.id)) << "a job was added for the refused row";
}

TEST_P(GroupCommitTest, JobsThatCannotBeAddedLeaveTheirRowsPendingForTheReconciler) {
  GroupCommitOptions o;
  o.queue_add_attempts = 2;
  auto committer = NewCommitter(o);
  redis_.Stop();
  std::vector<storage::NewJob> rows = {Sealed(), Sealed(), Sealed()};
  std::vector<std::thread> callers;
  std::vector<Result<AcceptOutcome>> results(rows.size(), Internal("no answer"));
  for (size_t i = 0; i < rows.size(); ++i) {
    callers.emplace_back([&, i] { results[i] = committer->Commit(rows[i]); });
  }
  for (auto& t : callers) t.join();
  for (size_t i = 0; i < rows.size(); ++i) {
    // Accepted: the row is committed; the reconciler adds the job later.
    ASSERT_TRUE(results[i].ok()) << results[i].status().ToString();
    EXPECT_FALSE(results[i]->enqueued);
    EXPECT_TRUE(RowPending(rows[i].id));
  }
  // Every attempt was made after the rows were committed.
  EXPECT_EQ(checking_->added_before_row.load(), 0);
  EXPECT_GE(checking_->round_trips.load(), 2);
  redis_.Start();
  auto pending = store_->ListPending(NowMs() + 1, 10);
  ASSERT_TRUE(pending.ok());
  EXPECT_EQ(pending->size(), rows.size());
}

TEST_P(GroupCommitTest, StopAnswersWhatIsQueuedThenRefusesNewRows) {
  auto committer = NewCommitter();
  counting_->Hold();
  std::atomic<int> ok{0};
  std::vector<storage::NewJob> rows = {Sealed(), Sealed(), Sealed()};
  for (const auto& row : rows) {
    committer->Submit(row, [&](Result<AcceptOutcome> r) { ok.fetch_add(r.ok() ? 1 : 0); });
  }
  ASSERT_TRUE(Eventually([&] { return counting_->waiting_rows() > 0; }, seconds(10)));
  std::thread stopper([&] { committer->Stop(); });
  counting_->Release();
  stopper.join();
  EXPECT_EQ(ok.load(), 3);
  for (const auto& row : rows) EXPECT_TRUE(JobInRedis(row.id));
  storage::NewJob late = Sealed();
  auto r = committer->Commit(late);
  EXPECT_EQ(r.code(), Errc::kUnavailable);
  EXPECT_FALSE(std::filesystem::exists(late.storage_path));
}

std::string BackendName(const ::testing::TestParamInfo<const Backend*>& info) {
  return info.param->name;
}

INSTANTIATE_TEST_SUITE_P(Rows, GroupCommitTest, ::testing::Values(&kSqlite, &kPostgres),
                         BackendName);

}  // namespace
}  // namespace conveyor::uploads
