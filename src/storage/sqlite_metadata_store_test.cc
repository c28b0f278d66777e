#include "storage/metadata_store.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <sqlite3.h>

#include <atomic>
#include <chrono>
#include <future>
#include <string>

#include "core/ids.h"
#include "storage/metadata_store_contract.h"
#include "storage/sqlite/sqlite_metadata_store.h"
#include "test_support.h"

namespace conveyor::storage {
namespace {

using conveyor::testing::TempDir;

// Every backend behaviour (metadata_store_contract.cc) on SQLite files, one
// fresh file per test.
std::string FreshSqliteUrl() {
  static TempDir dir;
  static std::atomic<int> n{0};
  return "sqlite://" + (dir / ("db" + std::to_string(n++) + ".db"));
}

const StoreBackend kSqlite{FreshSqliteUrl, OpenMetadataStore, [](const std::string& url) {
                             return Migrate(url);
                           }};

INSTANTIATE_TEST_SUITE_P(Sqlite, MetadataStoreContract, ::testing::Values(&kSqlite), BackendName);
INSTANTIATE_TEST_SUITE_P(Sqlite, MemoryContract, ::testing::Values(&kSqlite), BackendName);

// A private in-memory database works like a file.
TEST(SqliteMetadataStore, InMemoryDatabaseLifecycle) {
  auto opened = OpenMetadataStore("sqlite://:memory:", true);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  auto& store = *opened;
  NewJob j = MakeJob();
  ASSERT_TRUE(store->InsertJob(j).ok());
  ASSERT_TRUE(store->MarkProcessing(j.id, 1).ok());
  ASSERT_TRUE(store->StoreMemory("alice", "s1", j.id, "file_m", {{0, "lima mike"}}).ok());
  ASSERT_TRUE(store->MarkCompleted(j.id, "file_m", "{}").ok());
  EXPECT_EQ((**store->GetJob(j.id)).status, JobStatus::kCompleted);
  auto hits = store->SearchMemory("alice", "s1", "mike", 10);
  ASSERT_TRUE(hits.ok());
  EXPECT_EQ(hits->size(), 1u);
}

TEST(SqliteMetadataStore, DatabaseAndItsDirectoryArePrivate) {
  TempDir dir;
  const std::string db = dir / "new/sub/conveyor.db";
  auto opened = OpenMetadataStore("sqlite://" + db, true);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  ASSERT_TRUE((*opened)->InsertJob(MakeJob()).ok());
  auto mode = [](const std::string& p) {
    struct stat st {};
    EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
    return st.st_mode & 07777;
  };
  EXPECT_EQ(mode(dir / "new"), 0700u);
  EXPECT_EQ(mode(dir / "new/sub"), 0700u);
  EXPECT_EQ(mode(db), 0600u);
  EXPECT_EQ(mode(db + "-wal"), 0600u);
  EXPECT_EQ(mode(db + "-shm"), 0600u);
}

TEST(SqliteMetadataStore, MigrationsAreIdempotentOnReopen) {
  TempDir dir;
  std::string url = "sqlite://" + (dir / "sub/conveyor.db");
  auto v1 = Migrate(url);
  ASSERT_TRUE(v1.ok()) << v1.status().ToString();
  EXPECT_GE(*v1, 1);
  auto v2 = Migrate(url);
  ASSERT_TRUE(v2.ok());
  EXPECT_EQ(*v1, *v2);
  NewJob j = MakeJob();
  {
    auto store = OpenMetadataStore(url, true);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    ASSERT_TRUE((*store)->InsertJob(j).ok());
  }
  auto store = OpenMetadataStore(url, false);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  auto got = (*store)->GetJob(j.id);
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_TRUE((*store)->Ping().ok());
}


// A writer waits for the write lock another connection (another process,
// as the API and the worker are) holds, and goes on once it is released,
// rather than failing with SQLITE_BUSY.
TEST(SqliteMetadataStore, WriterWaitsForAnotherConnectionsWriteLock) {
  TempDir dir;
  const std::string db = dir / "shared.db";
  auto opened = OpenMetadataStore("sqlite://" + db, true);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  auto& store = *opened;
  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open(db.c_str(), &other), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
  NewJob j = MakeJob();
  auto insert = std::async(std::launch::async, [&] { return store->InsertJob(j); });
  // Still waiting while the lock is held (a handler that gave up at once
  // would have answered by now).
  EXPECT_EQ(insert.wait_for(std::chrono::milliseconds(200)), std::future_status::timeout);
  ASSERT_EQ(sqlite3_exec(other, "COMMIT", nullptr, nullptr, nullptr), SQLITE_OK);
  auto done = insert.get();
  EXPECT_TRUE(done.ok()) << done.status().ToString();
  sqlite3_close(other);
  auto row = store->GetJob(j.id);
  ASSERT_TRUE(row.ok());
  EXPECT_TRUE(row->has_value());
}

TEST(SqliteMetadataStore, UrlSchemes) {
  EXPECT_EQ(OpenMetadataStore("mysql://x", true).code(), Errc::kInvalidArgument);
  EXPECT_EQ(OpenMetadataStore("sqlite://relative.db", true).code(), Errc::kInvalidArgument);
  // postgres:// reaches the PostgreSQL backend: nothing listens on this port.
  std::string pg = "://u:p@127.0.0.1:" + std::to_string(conveyor::testing::FreePort()) + "/db";
  EXPECT_EQ(OpenMetadataStore("postgres" + pg, true).code(), Errc::kUnavailable);
  EXPECT_EQ(Migrate("postgresql" + pg).code(), Errc::kUnavailable);
}

// The status fields read without waiting, once a reader connection is idle
// (a first read through the pool leaves one); the same answers as
// GetJobForUser.
TEST(SqliteMetadataStore, TryGetJobStatusForUserAnswersFromAnIdleReader) {
  TempDir dir;
  auto opened = OpenMetadataStore("sqlite://" + (dir / "t.db"), true);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  auto& store = *opened;
  NewJob j = MakeJob("alice");
  ASSERT_TRUE(store->InsertJob(j).ok());
  ASSERT_TRUE(store->GetJobForUser(j.id, "alice").ok());  // a reader is idle now

  auto status = [&](const std::string& id, const std::string& user) {
    TriedStatusRead t = store->TryGetJobStatusForUser(id, user);
    EXPECT_TRUE(t.has_value()) << "gave up although a reader was idle";
    if (!t) return std::optional<JobStatusRow>();
    EXPECT_TRUE(t->ok()) << t->status().ToString();
    return t->ok() ? **t : std::optional<JobStatusRow>();
  };
  auto pending = status(j.id, "alice");
  ASSERT_TRUE(pending);
  EXPECT_EQ(pending->status, JobStatus::kPending);
  EXPECT_FALSE(pending->result_json);
  EXPECT_FALSE(pending->error);
  EXPECT_FALSE(status(j.id, "mallory"));  // another user's job: none
  EXPECT_FALSE(status(NewUuid(), "alice"));

  ASSERT_TRUE(store->MarkProcessing(j.id, 1).ok());
  ASSERT_TRUE(store->SetProgress(j.id, 42).ok());
  auto processing = status(j.id, "alice");
  ASSERT_TRUE(processing);
  EXPECT_EQ(processing->status, JobStatus::kProcessing);
  EXPECT_EQ(processing->progress, 42);

  // Put back to pending (a retry): seen at once, the store keeps no copy.
  ASSERT_TRUE(store->MarkPending(j.id).ok());
  EXPECT_EQ(status(j.id, "alice")->status, JobStatus::kPending);

  ASSERT_TRUE(store->MarkProcessing(j.id, 2).ok());
  ASSERT_TRUE(store->MarkFailed(j.id, "Invalid file format").ok());
  auto failed = status(j.id, "alice");
  ASSERT_TRUE(failed);
  EXPECT_EQ(failed->status, JobStatus::kFailed);
  EXPECT_EQ(failed->error, "Invalid file format");

  ASSERT_TRUE(store->MarkCompleted(j.id, "file_x", R"({"a":1})").ok());
  auto done = status(j.id, "alice");
  ASSERT_TRUE(done);
  EXPECT_EQ(done->status, JobStatus::kCompleted);
  EXPECT_EQ(done->result_json, R"({"a":1})");
  EXPECT_EQ(done->progress, 100);
}

// It never opens a connection (file I/O); an in-memory database (reads share
// the writer's lock) always gives up. (A lock held by another process, the
// third case, cannot be staged here: every WAL connection of this process
// holds the database file's shared lock, and fcntl locks of one process never
// conflict.)
TEST(SqliteMetadataStore, TryGetJobStatusForUserGivesUpInsteadOfWaiting) {
  TempDir dir;
  const std::string path = dir / "t.db";
  auto opened = OpenMetadataStore("sqlite://" + path, true);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  auto& store = *opened;
  NewJob j = MakeJob("alice");
  ASSERT_TRUE(store->InsertJob(j).ok());
  EXPECT_FALSE(store->TryGetJobStatusForUser(j.id, "alice"))
      << "answered without an idle reader connection";
  ASSERT_TRUE(store->GetJobForUser(j.id, "alice").ok());
  ASSERT_TRUE(store->TryGetJobStatusForUser(j.id, "alice"));

  // It gives its reader back: answered again, and again.
  for (int i = 0; i < 3; ++i) {
    auto again = store->TryGetJobStatusForUser(j.id, "alice");
    ASSERT_TRUE(again) << i;
    ASSERT_TRUE(again->ok()) << again->status().ToString();
    EXPECT_EQ((*again)->value().status, JobStatus::kPending);
  }

  auto mem = OpenMetadataStore("sqlite://:memory:", true);
  ASSERT_TRUE(mem.ok());
  ASSERT_TRUE((*mem)->InsertJob(j).ok());
  ASSERT_TRUE((*mem)->GetJobForUser(j.id, "alice").ok());
  EXPECT_FALSE((*mem)->TryGetJobStatusForUser(j.id, "alice"));
}

TEST(BuildFtsMatch, QuotesEveryWordAndDropsSyntax) {
  EXPECT_EQ(sqlite::BuildFtsMatch("hello world"), "text : (\"hello\" OR \"world\")");
  EXPECT_EQ(sqlite::BuildFtsMatch("NEAR(a* \"b\")"), "text : (\"NEAR\" OR \"a\" OR \"b\")");
  EXPECT_EQ(sqlite::BuildFtsMatch("a a a"), "text : (\"a\")");
  EXPECT_EQ(sqlite::BuildFtsMatch("\"*-:()"), "");
  EXPECT_EQ(sqlite::BuildFtsMatch(""), "");
}

}  // namespace
}  // namespace conveyor::storage
