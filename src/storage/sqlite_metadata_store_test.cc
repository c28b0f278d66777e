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


TEST(BuildFtsMatch, QuotesEveryWordAndDropsSyntax) {
  EXPECT_EQ(sqlite::BuildFtsMatch("hello world"), "text : (\"hello\" OR \"world\")");
  EXPECT_EQ(sqlite::BuildFtsMatch("NEAR(a* \"b\")"), "text : (\"NEAR\" OR \"a\" OR \"b\")");
  EXPECT_EQ(sqlite::BuildFtsMatch("a a a"), "text : (\"a\")");
  EXPECT_EQ(sqlite::BuildFtsMatch("\"*-:()"), "");
  EXPECT_EQ(sqlite::BuildFtsMatch(""), "");
}

}  // namespace
}  // namespace conveyor::storage
