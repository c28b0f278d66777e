// The PostgreSQL MetadataStore against a real server started on a free port:
// the shared contract (metadata_store_contract.cc), one fresh database per
// test, plus what only a network database has (restarts, concurrent
// migrators, an unreachable server).
#include "storage/postgres/postgres_metadata_store.h"

#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/ids.h"
#include "storage/metadata_store_contract.h"
#include "test_support.h"

namespace conveyor::storage {
namespace {

using conveyor::testing::PostgresServer;

// One server for the contract tests, started on first use, stopped at exit.
PostgresServer& SharedServer() {
  static PostgresServer server;
  return server;
}

std::string FreshPostgresUrl() {
  static std::atomic<int> n{0};
  return SharedServer().CreateDatabase("contract_" + std::to_string(n++));
}

// Through the factory, as the service opens it.
const StoreBackend kPostgres{FreshPostgresUrl, OpenMetadataStore, [](const std::string& url) {
                               return Migrate(url);
                             }};

INSTANTIATE_TEST_SUITE_P(Postgres, MetadataStoreContract, ::testing::Values(&kPostgres), BackendName);
INSTANTIATE_TEST_SUITE_P(Postgres, MemoryContract, ::testing::Values(&kPostgres), BackendName);

TEST(PostgresMetadataStore, ServerRestartIsUnavailableThenRecovers) {
  PostgresServer server;
  std::string url = server.CreateDatabase("restart");
  auto opened = postgres::Open(url, true);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  auto& store = *opened;
  NewJob j = MakeJob();
  ASSERT_TRUE(store->InsertJob(j).ok());
  // Several pooled connections, all of which the restart breaks.
  std::vector<std::thread> readers;
  for (int i = 0; i < 4; ++i) readers.emplace_back([&] { (void)store->GetJob(j.id); });
  for (auto& t : readers) t.join();

  server.Stop();
  EXPECT_EQ(store->Ping().code(), Errc::kUnavailable);
  EXPECT_EQ(store->GetJob(j.id).code(), Errc::kUnavailable);
  EXPECT_EQ(store->InsertJob(MakeJob()).code(), Errc::kUnavailable);
  EXPECT_EQ(store->MarkProcessing(j.id, 1).code(), Errc::kUnavailable);

  server.Start();
  EXPECT_TRUE(store->Ping().ok());
  auto got = store->GetJob(j.id);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ASSERT_TRUE(got->has_value());
  EXPECT_TRUE(store->MarkProcessing(j.id, 1).ok());
}

TEST(PostgresMetadataStore, RestartWhileIdleRecoversOnNextCall) {
  PostgresServer server;
  auto opened = postgres::Open(server.CreateDatabase("idle"), true);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  auto& store = *opened;
  ASSERT_TRUE(store->Ping().ok());
  server.Stop();
  server.Start();
  // No call saw the server down: the stale pooled connection is replaced.
  EXPECT_TRUE(store->Ping().ok());
  EXPECT_TRUE(store->InsertJob(MakeJob()).ok());
}

TEST(PostgresMetadataStore, ConcurrentMigratorsAgree) {
  std::string url = SharedServer().CreateDatabase("concurrent_migrate");
  std::vector<int> versions(6, -1);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < versions.size(); ++i) {
    threads.emplace_back([&, i] {
      auto v = postgres::Migrate(url);
      versions[i] = v.ok() ? *v : -1;
    });
  }
  for (auto& t : threads) t.join();
  for (int v : versions) EXPECT_GE(v, 1);
  for (int v : versions) EXPECT_EQ(v, versions[0]);
  std::string rows = SharedServer().Psql("SELECT count(*) FROM schema_migrations", "concurrent_migrate");
  EXPECT_EQ(std::stoi(rows), versions[0]);
}

TEST(PostgresMetadataStore, UnreachableServerIsUnavailable) {
  int port = conveyor::testing::FreePort();
  auto store = postgres::Open("postgres://conveyor@127.0.0.1:" + std::to_string(port) + "/x", true);
  EXPECT_EQ(store.code(), Errc::kUnavailable);
  EXPECT_EQ(postgres::Migrate("postgresql://conveyor@127.0.0.1:" + std::to_string(port) + "/x").code(),
            Errc::kUnavailable);
}

TEST(PostgresMetadataStore, ResultJsonIsKeptByteForByte) {
  auto opened = postgres::Open(FreshPostgresUrl(), true);
  ASSERT_TRUE(opened.ok());
  auto& store = *opened;
  NewJob j = MakeJob();
  ASSERT_TRUE(store->InsertJob(j).ok());
  std::string json = "{ \"b\":1,  \"a\" : [ ] }";
  ASSERT_TRUE(store->MarkCompleted(j.id, "file_j", json).ok());
  EXPECT_EQ((**store->GetJob(j.id)).result_json, json);
}

TEST(PostgresMetadataStore, InvalidUtf8TextIsInvalidArgument) {
  auto opened = postgres::Open(FreshPostgresUrl(), true);
  ASSERT_TRUE(opened.ok());
  auto& store = *opened;
  NewJob j = MakeJob();
  ASSERT_TRUE(store->InsertJob(j).ok());
  EXPECT_EQ(store->StoreMemory("alice", "s1", j.id, "file_x", {{0, "bad \xff\xfe text"}}).code(),
            Errc::kInvalidArgument);
  EXPECT_TRUE(store->Ping().ok());
}

// One statement on a raw connection; true when it succeeded.
bool RawExec(PGconn* c, const char* sql, const std::vector<std::string>& params = {}) {
  std::vector<const char*> values;
  for (const auto& p : params) values.push_back(p.c_str());
  PGresult* r = PQexecParams(c, sql, static_cast<int>(values.size()), nullptr, values.data(),
                             nullptr, nullptr, 0);
  const ExecStatusType st = PQresultStatus(r);
  PQclear(r);
  return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
}

// Two runs of one job committing at once: the other run's chunks are written
// but not committed when this one inserts its own, which waits on the unique
// index and then collides. The collision is the other run's doing: kAborted,
// and this run's transaction leaves nothing.
TEST(PostgresMetadataStore, ACompletionMeetingAnotherRunsChunksIsAborted) {
  const std::string url = FreshPostgresUrl();
  auto opened = postgres::Open(url, true);
  ASSERT_TRUE(opened.ok());
  auto& store = *opened;
  NewJob j = MakeJob();
  ASSERT_TRUE(store->InsertJob(j).ok());

  PGconn* other = PQconnectdb(url.c_str());
  PGconn* watcher = PQconnectdb(url.c_str());
  ASSERT_EQ(PQstatus(other), CONNECTION_OK) << PQerrorMessage(other);
  ASSERT_EQ(PQstatus(watcher), CONNECTION_OK) << PQerrorMessage(watcher);
  ASSERT_TRUE(RawExec(other, "BEGIN"));
  ASSERT_TRUE(RawExec(other,
                      "INSERT INTO \"MemoryChunk\" (\"userId\", \"sessionId\", \"jobId\", "
                      "\"fileId\", \"chunkIndex\", \"text\", \"createdAt\") "
                      "VALUES ('alice', 's1', $1, 'file_race', 0, 'the other run', 1)",
                      {j.id}));

  JobCompletion done{.memory = {.user_id = "alice",
                                .session_id = "s1",
                                .job_id = j.id,
                                .file_id = "file_race",
                                .chunks = {{0, "this run"}},
                                .terms = {"run"}},
                     .result_json = "{}"};
  Result<void> result = Internal("not run");
  std::thread run([&] { result = store->CompleteJob(done); });
  // Wait until this run's insert waits on the other run's lock.
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  bool waiting = false;
  while (!waiting && std::chrono::steady_clock::now() < give_up) {
    PGresult* r = PQexec(watcher, "SELECT count(*) FROM pg_locks WHERE NOT granted");
    waiting = PQresultStatus(r) == PGRES_TUPLES_OK && std::string(PQgetvalue(r, 0, 0)) != "0";
    PQclear(r);
    if (!waiting) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_TRUE(waiting);
  ASSERT_TRUE(RawExec(other, "COMMIT"));
  run.join();
  PQfinish(other);
  PQfinish(watcher);

  EXPECT_EQ(result.code(), Errc::kAborted) << result.status().ToString();
  auto row = store->GetJob(j.id);
  ASSERT_TRUE(row && row->has_value());
  EXPECT_NE((*row)->status, JobStatus::kCompleted);  // this run's update was rolled back
  auto hits = store->SearchMemory("alice", "s1", "other", 10);
  ASSERT_TRUE(hits);
  EXPECT_EQ(hits->size(), 1u);  // the other run's chunk, alone
  EXPECT_TRUE(store->Ping().ok());
}

TEST(PostgresSearchTerms, SplitsDedupsAndDropsInvalidUtf8) {
  EXPECT_EQ(postgres::SearchTerms("hello world"), (std::vector<std::string>{"hello", "world"}));
  EXPECT_EQ(postgres::SearchTerms("NEAR(a* \"b\")"), (std::vector<std::string>{"NEAR", "a", "b"}));
  EXPECT_EQ(postgres::SearchTerms("a a a"), (std::vector<std::string>{"a"}));
  EXPECT_TRUE(postgres::SearchTerms("\"*-:()'\\").empty());
  EXPECT_TRUE(postgres::SearchTerms("\xff\xfe").empty());
  EXPECT_EQ(postgres::SearchTerms("caf\xc3\xa9 x"), (std::vector<std::string>{"caf\xc3\xa9", "x"}));
  EXPECT_EQ(postgres::SearchTerms(std::string(1000, 'x'))[0].size(), 64u);
}

}  // namespace
}  // namespace conveyor::storage
