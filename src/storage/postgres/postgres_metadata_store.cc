// PostgreSQL MetadataStore. See postgres_metadata_store.h for the connection
// design; the semantics follow sqlite/sqlite_metadata_store.cc method for
// method.
//
// Every write statement sets "updatedAt" to GREATEST(now, updatedAt + 1): the
// column then changes on every change even within one millisecond. Updates
// that must tell "no row" from "row in the wrong state" do it in the same
// statement: a data-modifying CTE plus a read of the row as it was before.
#include "storage/postgres/postgres_metadata_store.h"

#include <libpq-fe.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <optional>
#include <utility>

#include "core/ids.h"
#include "storage/internal/migrations.h"

namespace conveyor::storage::postgres {
namespace {

// Connections open at once per store; callers beyond this wait for one.
constexpr int kMaxConnections = 8;
// How long a call waits for a free connection before kUnavailable.
constexpr auto kAcquireTimeout = std::chrono::seconds(10);
// libpq connect timeout (seconds, per host address): a server that does not
// answer fails the call instead of hanging it.
constexpr const char* kConnectTimeoutSec = "5";
// Server-side bound on one statement, and on waiting for a row lock; past it
// the call fails with kUnavailable and the caller's retry/backoff takes over.
constexpr const char* kSessionOptions = "-c statement_timeout=30000 -c lock_timeout=10000";
// Unacknowledged data on a dead network fails the connection after this long.
constexpr const char* kTcpUserTimeoutMs = "30000";
// Search results per call are clamped to [1, kMaxSearchLimit].
constexpr int kMaxSearchLimit = 100;
// A reference's snippet comes from the first this many chunks of its file.
constexpr int kSnippetChunks = 64;
// Free-text queries keep at most this many distinct words of at most
// kMaxTermBytes each (as the SQLite backend does).
constexpr size_t kMaxTerms = 32;
constexpr size_t kMaxTermBytes = 64;
// Key of the transaction-scoped advisory lock that serialises migrations of
// one database ("conveyor" in ASCII).
constexpr const char* kMigrationLockKey = "109330245772665";
// Text search configuration created by migrations/postgres/0001_init.sql.
#define CONVEYOR_TS_CONFIG "'conveyor_search'"

struct ConnDeleter {
  void operator()(PGconn* c) const { PQfinish(c); }
};
using ConnPtr = std::unique_ptr<PGconn, ConnDeleter>;
struct ResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using PgResult = std::unique_ptr<PGresult, ResultDeleter>;

void IgnoreNotice(void*, const char*) {}

// The Errc for a failed statement (`res` may be null: no result at all).
Status PgStatus(PGconn* conn, const PGresult* res, std::string_view what) {
  std::string msg(what);
  msg += ": ";
  const char* text = res != nullptr ? PQresultErrorMessage(res) : "";
  if (text == nullptr || *text == '\0') text = PQerrorMessage(conn);
  msg += text;
  while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
  const char* state = res != nullptr ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : nullptr;
  if (PQstatus(conn) != CONNECTION_OK || state == nullptr) return Unavailable(std::move(msg));
  std::string_view s(state);
  if (s == "23505") return AlreadyExists(std::move(msg));
  if (s == "23503") return NotFound(std::move(msg));
  if (s.starts_with("08") || s.starts_with("53") || s.starts_with("57") || s == "40001" ||
      s == "40P01" || s == "55P03") {
    // Connection exception, insufficient resources, operator intervention
    // (shutdown, statement/lock timeout), serialization failure, deadlock,
    // lock not available: all retryable.
    return Unavailable(std::move(msg));
  }
  if (s.starts_with("22") || s.starts_with("23")) return InvalidArgument(std::move(msg));
  if (s == "XX001" || s == "XX002") return DataLoss(std::move(msg));
  return Internal(std::move(msg));
}

Result<ConnPtr> Connect(const std::string& url) {
  // With expand_dbname, values in the URL override the keywords before it.
  const char* keys[] = {"connect_timeout", "keepalives", "keepalives_idle",
                        "keepalives_interval", "keepalives_count", "tcp_user_timeout",
                        "options", "application_name", "client_encoding", "dbname", nullptr};
  const char* values[] = {kConnectTimeoutSec, "1", "30", "10", "3", kTcpUserTimeoutMs,
                          kSessionOptions, "conveyor", "UTF8", url.c_str(), nullptr};
  ConnPtr conn(PQconnectdbParams(keys, values, 1));
  if (!conn) return Unavailable("postgres: out of memory opening a connection");
  if (PQstatus(conn.get()) != CONNECTION_OK) {
    std::string msg = PQerrorMessage(conn.get());
    while (!msg.empty() && msg.back() == '\n') msg.pop_back();
    return Unavailable("postgres connect: " + msg);
  }
  PQsetNoticeProcessor(conn.get(), IgnoreNotice, nullptr);
  return conn;
}

// Opened connections, shared by the calls of one store.
class Pool {
 public:
  explicit Pool(std::string url) : url_(std::move(url)) {}

  struct Borrowed {
    ConnPtr conn;
    uint64_t generation = 0;
    bool reused = false;  // came from the idle list rather than a fresh connect
  };

  // An idle connection, a new one if there is room, else waits for one.
  Result<Borrowed> Acquire() {
    std::unique_lock lock(mu_);
    bool ok = cv_.wait_for(lock, kAcquireTimeout,
                           [&] { return !idle_.empty() || open_ < kMaxConnections; });
    if (!ok) return Unavailable("postgres: no free connection within the acquire timeout");
    if (!idle_.empty()) {
      Borrowed b = std::move(idle_.back());
      idle_.pop_back();
      b.reused = true;
      return b;
    }
    ++open_;
    uint64_t gen = generation_;
    lock.unlock();
    auto conn = Connect(url_);
    if (!conn) {
      lock.lock();
      --open_;
      cv_.notify_one();
      return conn.status();
    }
    return Borrowed{std::move(*conn), gen, false};
  }

  // Gives a connection back. A broken one is closed, and so are the idle
  // connections opened before it broke: after a server restart they are dead
  // too, and finding out one call at a time would fail each of those calls.
  void Release(Borrowed b) {
    bool healthy = PQstatus(b.conn.get()) == CONNECTION_OK &&
                   PQtransactionStatus(b.conn.get()) == PQTRANS_IDLE;
    std::vector<Borrowed> doomed;
    {
      std::lock_guard lock(mu_);
      if (healthy && b.generation == generation_) {
        idle_.push_back(std::move(b));
      } else {
        --open_;
        if (!healthy) {
          ++generation_;
          open_ -= static_cast<int>(idle_.size());
          doomed.swap(idle_);
        }
        doomed.push_back(std::move(b));
      }
    }
    cv_.notify_all();
    // PQfinish outside the lock: it may write a Terminate message.
  }

 private:
  const std::string url_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Borrowed> idle_;  // guarded by mu_
  int open_ = 0;                // idle + borrowed; guarded by mu_
  uint64_t generation_ = 0;     // bumped when a connection breaks; guarded by mu_
};

// One borrowed connection, returned to the pool on destruction.
class Session {
 public:
  Session(Pool& pool, Pool::Borrowed b) : pool_(pool), b_(std::move(b)) {}
  ~Session() { pool_.Release(std::move(b_)); }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  bool reused() const { return b_.reused; }
  bool broken() const { return PQstatus(b_.conn.get()) != CONNECTION_OK; }

  // Runs one parameterised statement; parameters are text, never SQL.
  Result<PgResult> Exec(const char* sql, const std::vector<std::string>& params = {}) {
    std::vector<const char*> values;
    values.reserve(params.size());
    for (const auto& p : params) {
      // libpq takes text parameters NUL-terminated: a NUL inside would
      // silently cut the value.
      if (p.find('\0') != std::string::npos) return InvalidArgument("text holds a NUL byte");
      values.push_back(p.c_str());
    }
    PgResult res(PQexecParams(b_.conn.get(), sql, static_cast<int>(values.size()), nullptr,
                              values.data(), nullptr, nullptr, 0));
    return Check(std::move(res), "statement");
  }

  // Runs a script of our own (a migration): several statements, no parameters.
  Result<void> ExecScript(const char* sql) {
    auto r = Check(PgResult(PQexec(b_.conn.get(), sql)), "script");
    if (!r) return r.status();
    return {};
  }

 private:
  Result<PgResult> Check(PgResult res, std::string_view what) {
    auto st = res ? PQresultStatus(res.get()) : PGRES_FATAL_ERROR;
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return res;
    return PgStatus(b_.conn.get(), res.get(), what);
  }

  Pool& pool_;
  Pool::Borrowed b_;
};

// BEGIN ... COMMIT on a session, rolled back unless committed.
class Transaction {
 public:
  explicit Transaction(Session& s) : s_(s) {}
  ~Transaction() {
    if (open_) (void)s_.Exec("ROLLBACK");
  }
  Result<void> Begin() {
    CONVEYOR_RETURN_IF_ERROR(s_.Exec("BEGIN"));
    open_ = true;
    return {};
  }
  Result<void> Commit() {
    open_ = false;
    CONVEYOR_RETURN_IF_ERROR(s_.Exec("COMMIT"));
    return {};
  }

 private:
  Session& s_;
  bool open_ = false;
};

// Runs `fn(Session&)` on a pooled connection. A call whose reused connection
// turns out broken (the server restarted while it sat idle) is retried once
// on a fresh connection: the statement never reached a live server.
template <class Fn>
auto WithSession(Pool& pool, Fn&& fn) -> decltype(fn(std::declval<Session&>())) {
  for (int attempt = 0;; ++attempt) {
    auto b = pool.Acquire();
    if (!b) return b.status();
    Session s(pool, std::move(*b));
    auto r = fn(s);
    if (r || attempt > 0 || !s.reused() || !s.broken() || r.code() != Errc::kUnavailable) {
      return r;
    }
  }
}

std::string_view Val(const PGresult* r, int row, int col) {
  return {PQgetvalue(r, row, col), static_cast<size_t>(PQgetlength(r, row, col))};
}
std::optional<std::string> OptVal(const PGresult* r, int row, int col) {
  if (PQgetisnull(r, row, col)) return std::nullopt;
  return std::string(Val(r, row, col));
}
int64_t Int(const PGresult* r, int row, int col) {
  return std::strtoll(PQgetvalue(r, row, col), nullptr, 10);
}

// Column list shared by every query returning a JobRecord; ReadJob follows it.
#define CONVEYOR_JOB_COLUMNS                                                           \
  "\"id\", \"userId\", \"sessionId\", \"status\", \"fileId\", \"result\", \"error\", " \
  "\"createdAt\", \"updatedAt\", \"originalName\", \"mimeType\", \"size\", \"sha256\", " \
  "\"storagePath\", \"message\", \"progress\", \"attempts\""

Result<JobRecord> ReadJob(const PGresult* r, int row) {
  if (PQnfields(r) != 17) return DataLoss("job row has " + std::to_string(PQnfields(r)) + " columns");
  JobRecord j;
  j.id = Val(r, row, 0);
  j.user_id = Val(r, row, 1);
  j.session_id = Val(r, row, 2);
  auto status = ParseJobStatus(Val(r, row, 3));
  if (!status) return DataLoss("job " + j.id + " has unknown status '" + std::string(Val(r, row, 3)) + "'");
  j.status = *status;
  j.file_id = OptVal(r, row, 4);
  j.result_json = OptVal(r, row, 5);
  j.error = OptVal(r, row, 6);
  j.created_at_ms = Int(r, row, 7);
  j.updated_at_ms = Int(r, row, 8);
  j.original_name = Val(r, row, 9);
  j.mime_type = Val(r, row, 10);
  j.size_bytes = Int(r, row, 11);
  j.sha256_hex = Val(r, row, 12);
  j.storage_path = Val(r, row, 13);
  j.message = Val(r, row, 14);
  j.progress = static_cast<int>(Int(r, row, 15));
  j.attempts = static_cast<int>(Int(r, row, 16));
  return j;
}

Result<std::optional<JobRecord>> ReadOptionalJob(const PGresult* r) {
  if (PQntuples(r) == 0) return std::optional<JobRecord>();
  auto j = ReadJob(r, 0);
  if (!j) return j.status();
  return std::optional<JobRecord>(std::move(*j));
}

int LatestVersion() {
  auto all = internal::Migrations(internal::Dialect::kPostgres);
  return all.empty() ? 0 : all.back().version;
}

constexpr const char* kCreateMigrationsTable =
    "CREATE TABLE IF NOT EXISTS \"schema_migrations\" ("
    " \"version\" INTEGER NOT NULL PRIMARY KEY,"
    " \"name\" TEXT NOT NULL,"
    " \"appliedAt\" BIGINT NOT NULL)";

Result<int> CurrentVersion(Session& s) {
  auto r = s.Exec("SELECT COALESCE(MAX(\"version\"), 0) FROM \"schema_migrations\"");
  if (!r) return r.status();
  return static_cast<int>(Int(r->get(), 0, 0));
}

// Every pending migration in one transaction, under an advisory lock: a
// second process migrating at the same moment waits, then finds nothing to do.
Result<int> ApplyMigrations(Session& s) {
  Transaction tx(s);
  CONVEYOR_RETURN_IF_ERROR(tx.Begin());
  CONVEYOR_RETURN_IF_ERROR(s.Exec("SELECT pg_advisory_xact_lock($1::bigint)", {kMigrationLockKey}));
  CONVEYOR_RETURN_IF_ERROR(s.Exec(kCreateMigrationsTable));
  auto current = CurrentVersion(s);
  if (!current) return current.status();
  int version = *current;
  if (version > LatestVersion()) {
    return FailedPrecondition("database schema version " + std::to_string(version) +
                              " is newer than this build knows (" +
                              std::to_string(LatestVersion()) + ")");
  }
  for (const auto& m : internal::Migrations(internal::Dialect::kPostgres)) {
    if (m.version <= version) continue;
    auto st = s.ExecScript(m.sql);
    if (!st) {
      return Status(st.code(), "migration " + std::to_string(m.version) + "_" + m.name + ": " +
                                   st.status().message());
    }
    CONVEYOR_RETURN_IF_ERROR(
        s.Exec("INSERT INTO \"schema_migrations\" (\"version\", \"name\", \"appliedAt\")"
               " VALUES ($1, $2, $3)",
               {std::to_string(m.version), m.name, std::to_string(NowMs())}));
    version = m.version;
  }
  CONVEYOR_RETURN_IF_ERROR(tx.Commit());
  return version;
}

Result<void> CheckVersion(Session& s) {
  auto exists = s.Exec("SELECT to_regclass('\"schema_migrations\"') IS NOT NULL");
  if (!exists) return exists.status();
  int v = 0;
  if (Val(exists->get(), 0, 0) == "t") {
    auto cur = CurrentVersion(s);
    if (!cur) return cur.status();
    v = *cur;
  }
  if (v < LatestVersion()) {
    return FailedPrecondition("database schema is at version " + std::to_string(v) +
                              ", this build needs " + std::to_string(LatestVersion()) +
                              ": run `conveyor migrate`");
  }
  return {};
}

// Valid UTF-8 (no overlongs, surrogates or code points past U+10FFFF):
// PostgreSQL rejects anything else in a text parameter.
bool ValidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    size_t n;
    uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      n = 1;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + n >= s.size()) return false;  // truncated sequence
    for (size_t k = 1; k <= n; ++k) {
      auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += n + 1;
  }
  return true;
}

size_t Utf8Prefix(std::string_view s, size_t max) {
  if (s.size() <= max) return s.size();
  size_t n = max;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return n;
}

class PostgresMetadataStore final : public MetadataStore {
 public:
  explicit PostgresMetadataStore(std::string url) : pool_(std::move(url)) {}

  Result<void> InsertJob(const NewJob& job) override { return InsertJobs({job}); }

  // One INSERT of every row (VALUES (...), (...)): a single statement is its
  // own transaction, so the rows go in together or not at all, in one round
  // trip.
  Result<void> InsertJobs(const std::vector<NewJob>& jobs) override {
    if (jobs.empty()) return {};
    for (const NewJob& job : jobs) {
      if (job.id.empty() || job.user_id.empty() || job.session_id.empty()) {
        return InvalidArgument("job id, user id and session id are required");
      }
    }
    constexpr int kParamsPerRow = 9;
    // The protocol carries at most 65535 parameters per statement.
    if (jobs.size() > (65535 - 1) / kParamsPerRow) {
      return InvalidArgument("too many rows for one INSERT: " + std::to_string(jobs.size()));
    }
    std::string sql =
        "INSERT INTO \"FileUploadJob\" (\"id\", \"userId\", \"sessionId\", \"status\","
        " \"createdAt\", \"updatedAt\", \"originalName\", \"mimeType\", \"size\","
        " \"sha256\", \"storagePath\", \"message\", \"progress\", \"attempts\") VALUES ";
    std::vector<std::string> params;
    params.reserve(1 + jobs.size() * kParamsPerRow);
    params.push_back(std::to_string(NowMs()));  // $1: createdAt and updatedAt of every row
    for (size_t i = 0; i < jobs.size(); ++i) {
      const NewJob& job = jobs[i];
      auto p = [&](int k) { return "$" + std::to_string(2 + i * kParamsPerRow + k); };
      if (i > 0) sql += ", ";
      sql += "(" + p(0) + ", " + p(1) + ", " + p(2) + ", 'pending', $1, $1, " + p(3) + ", " +
             p(4) + ", " + p(5) + ", " + p(6) + ", " + p(7) + ", " + p(8) + ", 0, 0)";
      params.insert(params.end(), {job.id, job.user_id, job.session_id, job.original_name,
                                   job.mime_type, std::to_string(job.size_bytes), job.sha256_hex,
                                   job.storage_path, job.message});
    }
    auto r = WithSession(pool_, [&](Session& s) { return s.Exec(sql.c_str(), params); });
    if (!r) {
      if (r.code() == Errc::kAlreadyExists) {
        if (jobs.size() == 1) return AlreadyExists("job " + jobs[0].id + " already exists");
        return AlreadyExists("a job of the batch already exists");
      }
      return r.status();
    }
    return {};
  }

  Result<std::optional<JobRecord>> GetJob(const std::string& id) override {
    auto r = WithSession(pool_, [&](Session& s) {
      return s.Exec("SELECT " CONVEYOR_JOB_COLUMNS " FROM \"FileUploadJob\" WHERE \"id\" = $1",
                    {id});
    });
    if (!r) return r.status();
    return ReadOptionalJob(r->get());
  }

  Result<std::optional<JobRecord>> GetJobForUser(const std::string& id,
                                                 const std::string& user_id) override {
    auto r = WithSession(pool_, [&](Session& s) {
      return s.Exec("SELECT " CONVEYOR_JOB_COLUMNS
                    " FROM \"FileUploadJob\" WHERE \"id\" = $1 AND \"userId\" = $2",
                    {id, user_id});
    });
    if (!r) return r.status();
    return ReadOptionalJob(r->get());
  }

  Result<void> MarkProcessing(const std::string& id, int attempts) override {
    return UpdateInFlight(
        id,
        "UPDATE \"FileUploadJob\" SET \"status\" = 'processing', \"progress\" = 0,"
        " \"attempts\" = $2::integer, \"error\" = NULL,"
        " \"updatedAt\" = GREATEST($3::bigint, \"updatedAt\" + 1)"
        " WHERE \"id\" = $1 AND \"status\" IN ('pending', 'processing')",
        {id, std::to_string(attempts), std::to_string(NowMs())});
  }

  Result<std::optional<JobRecord>> ClaimJob(const std::string& id, int attempts) override {
    // One statement: the row as the update left it, or (not taken: final
    // already) as it is; none when there is no row. The outer SELECT sees the
    // table as it was before the update, hence NOT EXISTS.
    auto r = WithSession(pool_, [&](Session& s) {
      return s.Exec(
          "WITH u AS (UPDATE \"FileUploadJob\" SET \"status\" = 'processing', \"progress\" = 0,"
          " \"attempts\" = $2::integer, \"error\" = NULL,"
          " \"updatedAt\" = GREATEST($3::bigint, \"updatedAt\" + 1)"
          " WHERE \"id\" = $1 AND \"status\" IN ('pending', 'processing')"
          " RETURNING " CONVEYOR_JOB_COLUMNS ")"
          " SELECT " CONVEYOR_JOB_COLUMNS " FROM u"
          " UNION ALL SELECT " CONVEYOR_JOB_COLUMNS " FROM \"FileUploadJob\""
          " WHERE \"id\" = $1 AND NOT EXISTS (SELECT 1 FROM u)",
          {id, std::to_string(attempts), std::to_string(NowMs())});
    });
    if (!r) return r.status();
    return ReadOptionalJob(r->get());
  }

  Result<void> SetProgress(const std::string& id, int percent) override {
    auto r = WithSession(pool_, [&](Session& s) {
      return s.Exec(
          "WITH u AS (UPDATE \"FileUploadJob\" SET \"progress\" = $2::integer,"
          " \"updatedAt\" = GREATEST($3::bigint, \"updatedAt\" + 1)"
          " WHERE \"id\" = $1 AND \"status\" = 'processing' AND \"progress\" <> $2::integer"
          " RETURNING 1)"
          " SELECT (SELECT count(*) FROM u),"
          " EXISTS (SELECT 1 FROM \"FileUploadJob\" WHERE \"id\" = $1)",
          {id, std::to_string(std::clamp(percent, 0, 100)), std::to_string(NowMs())});
    });
    if (!r) return r.status();
    if (Int(r->get(), 0, 0) == 1 || Val(r->get(), 0, 1) == "t") return {};
    return NotFound("no job " + id);
  }

  Result<void> MarkCompleted(const std::string& id, const std::string& file_id,
                             const std::string& result_json) override {
    return UpdateOne(id,
                     "UPDATE \"FileUploadJob\" SET \"status\" = 'completed', \"fileId\" = $2,"
                     " \"result\" = $3, \"error\" = NULL, \"progress\" = 100,"
                     " \"updatedAt\" = GREATEST($4::bigint, \"updatedAt\" + 1)"
                     " WHERE \"id\" = $1",
                     {id, file_id, result_json, std::to_string(NowMs())});
  }

  Result<void> MarkFailed(const std::string& id, const std::string& error) override {
    // A completed job keeps its result: a late failure report (a worker whose
    // lease lapsed while another finished the job) must not undo it.
    auto r = WithSession(pool_, [&](Session& s) {
      return s.Exec(
          "WITH u AS (UPDATE \"FileUploadJob\" SET \"status\" = 'failed', \"error\" = $2,"
          " \"updatedAt\" = GREATEST($3::bigint, \"updatedAt\" + 1)"
          " WHERE \"id\" = $1 AND \"status\" <> 'completed' RETURNING 1)"
          " SELECT (SELECT count(*) FROM u),"
          " EXISTS (SELECT 1 FROM \"FileUploadJob\" WHERE \"id\" = $1)",
          {id, error, std::to_string(NowMs())});
    });
    if (!r) return r.status();
    if (Int(r->get(), 0, 0) == 1) return {};
    if (Val(r->get(), 0, 1) != "t") return NotFound("no job " + id);
    return FailedPrecondition("job " + id + " is already completed");
  }

  Result<void> MarkPending(const std::string& id) override {
    // Only a row still in flight goes back: a run that failed after another
    // run of the same job finished it must not reopen the row (its job is
    // final in the queue, so nothing would ever close it again).
    return UpdateInFlight(
        id,
        "UPDATE \"FileUploadJob\" SET \"status\" = 'pending', \"progress\" = 0,"
        " \"error\" = NULL, \"updatedAt\" = GREATEST($2::bigint, \"updatedAt\" + 1)"
        " WHERE \"id\" = $1 AND \"status\" IN ('pending', 'processing')",
        {id, std::to_string(NowMs())});
  }

  Result<std::vector<JobRecord>> ListPending(int64_t older_than_ms, int limit) override {
    std::vector<JobRecord> out;
    if (limit <= 0) return out;
    auto r = WithSession(pool_, [&](Session& s) {
      // COLLATE "C": ties broken by id bytes, as SQLite does, whatever the
      // database's collation.
      return s.Exec("SELECT " CONVEYOR_JOB_COLUMNS
                    " FROM \"FileUploadJob\""
                    " WHERE \"status\" = 'pending' AND \"createdAt\" < $1::bigint"
                    " ORDER BY \"createdAt\", \"id\" COLLATE \"C\" LIMIT $2::integer",
                    {std::to_string(older_than_ms), std::to_string(limit)});
    });
    if (!r) return r.status();
    int n = PQntuples(r->get());
    out.reserve(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) {
      auto rec = ReadJob(r->get(), i);
      if (!rec) return rec.status();
      out.push_back(std::move(*rec));
    }
    return out;
  }

  Result<void> StoreFileMemory(const FileMemory& m) override { return StoreMemoryThen(m, nullptr); }

  Result<void> CompleteJob(const JobCompletion& c) override {
    const FileMemory& m = c.memory;
    return StoreMemoryThen(m, [&](Session& s) -> Result<void> {
      auto r = s.Exec("UPDATE \"FileUploadJob\" SET \"status\" = 'completed', \"fileId\" = $2,"
                      " \"result\" = $3, \"error\" = NULL, \"progress\" = 100,"
                      " \"updatedAt\" = GREATEST($4::bigint, \"updatedAt\" + 1)"
                      " WHERE \"id\" = $1",
                      {m.job_id, m.file_id, c.result_json, std::to_string(NowMs())});
      if (!r) return r.status();
      if (std::string_view(PQcmdTuples(r->get())) == "0") return NotFound("no job " + m.job_id);
      return {};
    });
  }

  // StoreFileMemory, then `and_then` (if any) in the same transaction.
  Result<void> StoreMemoryThen(const FileMemory& m,
                               const std::function<Result<void>(Session&)>& and_then) {
    if (m.user_id.empty() || m.session_id.empty() || m.job_id.empty() || m.file_id.empty()) {
      return InvalidArgument("user id, session id, job id and file id are required");
    }
    if (auto twice = RepeatedChunkIndex(m.chunks)) {
      return InvalidArgument("chunk index " + std::to_string(*twice) + " given twice");
    }
    const std::vector<std::string> terms = CleanTerms(m.terms, kMaxFileTerms);
    return WithSession(pool_, [&](Session& s) -> Result<void> {
      Transaction tx(s);
      CONVEYOR_RETURN_IF_ERROR(tx.Begin());
      // Also drops what an earlier attempt of the same job stored under
      // another file id: one job yields one file's memory.
      CONVEYOR_RETURN_IF_ERROR(
          s.Exec("DELETE FROM \"MemoryChunk\" WHERE \"fileId\" = $1 OR \"jobId\" = $2",
                 {m.file_id, m.job_id}));
      CONVEYOR_RETURN_IF_ERROR(
          s.Exec("DELETE FROM \"MemoryTerm\" WHERE \"fileId\" = $1 OR \"jobId\" = $2",
                 {m.file_id, m.job_id}));
      std::string now = std::to_string(NowMs());
      for (const auto& chunk : m.chunks) {
        auto r = s.Exec("INSERT INTO \"MemoryChunk\" (\"userId\", \"sessionId\", \"jobId\","
                        " \"fileId\", \"chunkIndex\", \"text\", \"createdAt\")"
                        " VALUES ($1, $2, $3, $4, $5, $6, $7)",
                        {m.user_id, m.session_id, m.job_id, m.file_id,
                         std::to_string(chunk.index), chunk.text, now});
        if (!r) {
          if (r.code() == Errc::kNotFound) return NotFound("no job " + m.job_id);
          if (r.code() == Errc::kAlreadyExists) return StoredMeanwhile(m);
          return r.status();
        }
      }
      if (!terms.empty()) {
        // All terms in one statement: the terms are parameters $5.., one row each.
        std::string sql =
            "INSERT INTO \"MemoryTerm\" (\"userId\", \"sessionId\", \"jobId\", \"fileId\", \"term\")"
            " SELECT $1, $2, $3, $4, t FROM (VALUES ";
        std::vector<std::string> params = {m.user_id, m.session_id, m.job_id, m.file_id};
        for (size_t i = 0; i < terms.size(); ++i) {
          params.push_back(terms[i]);
          sql += (i > 0 ? ", ($" : "($") + std::to_string(params.size()) + "::text)";
        }
        sql += ") AS v(t)";
        auto r = s.Exec(sql.c_str(), params);
        if (!r) return r.code() == Errc::kNotFound ? NotFound("no job " + m.job_id) : r.status();
      }
      if (and_then) CONVEYOR_RETURN_IF_ERROR(and_then(s));
      return tx.Commit();
    });
  }

  Result<std::vector<RelatedFile>> FindRelatedFiles(const RelatedQuery& q) override {
    std::vector<RelatedFile> out;
    const std::vector<std::string> terms = CleanTerms(q.terms, kMaxRelatedTerms);
    const int limit = std::clamp(q.limit, 0, kMaxRelatedFiles);
    if (terms.empty() || limit == 0) return out;
    // Per term, the newest files of the scope holding it, through
    // "MemoryTerm_scope_term_idx" (userId, sessionId, term, id) backwards.
    std::vector<std::string> params = {
        q.user_id, q.session_id, q.exclude_file_id,
        std::to_string(std::clamp(q.per_term_limit, 1, kMaxRelatedPerTerm)),
        std::to_string(limit)};
    std::string arms;
    for (const auto& t : terms) {
      params.push_back(t);
      if (!arms.empty()) arms += " UNION ALL ";
      arms += "(SELECT \"id\", \"fileId\", \"jobId\", \"term\" FROM \"MemoryTerm\""
              " WHERE \"userId\" = $1 AND \"sessionId\" = $2 AND \"term\" = $" +
              std::to_string(params.size()) +
              " AND \"fileId\" <> $3 ORDER BY \"id\" DESC LIMIT $4::integer)";
    }
    std::string sql = "SELECT \"fileId\", max(\"jobId\"), array_agg(\"term\"), count(*) AS n,"
                      " max(\"id\") AS newest FROM (" + arms +
                      ") t GROUP BY \"fileId\" ORDER BY n DESC, newest DESC LIMIT $5::integer";
    auto r = WithSession(pool_, [&](Session& s) { return s.Exec(sql.c_str(), params); });
    if (!r) return r.status();
    int n = PQntuples(r->get());
    for (int i = 0; i < n; ++i) {
      RelatedFile f;
      f.file_id = Val(r->get(), i, 0);
      f.job_id = Val(r->get(), i, 1);
      // array_agg's text form: {a,b,"c d"}; terms are words, but compare
      // element by element all the same.
      std::string held(Val(r->get(), i, 2));
      for (const auto& t : terms) {
        for (const std::string& form : {t, "\"" + t + "\""}) {
          size_t pos = held.find(form);
          bool found = false;
          while (pos != std::string::npos) {
            size_t end = pos + form.size();
            if ((held[pos - 1] == '{' || held[pos - 1] == ',') &&
                (held[end] == '}' || held[end] == ',')) {
              found = true;
              break;
            }
            pos = held.find(form, end);
          }
          if (found) {
            f.terms.push_back(t);
            break;
          }
        }
      }
      out.push_back(std::move(f));
    }
    // Each file's best snippet, from its first kSnippetChunks chunks only
    // (the unique index on (fileId, chunkIndex)).
    std::vector<std::string> sparams = {"", q.user_id, q.session_id};
    std::string tsquery;
    for (const auto& t : terms) {
      sparams.push_back(t);
      if (!tsquery.empty()) tsquery += " || ";
      tsquery += "plainto_tsquery(" CONVEYOR_TS_CONFIG ", $" + std::to_string(sparams.size()) + ")";
    }
    std::string ssql =
        "SELECT ts_headline(" CONVEYOR_TS_CONFIG ", c.\"text\", " + tsquery + ","
        " 'StartSel=\"**\", StopSel=\"**\", MinWords=12, MaxWords=25, ShortWord=0')"
        " FROM \"MemoryChunk\" c"
        " WHERE c.\"fileId\" = $1 AND c.\"chunkIndex\" < " + std::to_string(kSnippetChunks) +
        " AND c.\"userId\" = $2 AND c.\"sessionId\" = $3 AND c.\"tsv\" @@ (" + tsquery + ")"
        " ORDER BY ts_rank(c.\"tsv\", " + tsquery + ", 1) DESC, c.\"chunkIndex\" LIMIT 1";
    for (auto& f : out) {
      sparams[0] = f.file_id;
      auto sr = WithSession(pool_, [&](Session& s) { return s.Exec(ssql.c_str(), sparams); });
      if (!sr) return sr.status();
      if (PQntuples(sr->get()) > 0) f.snippet = Val(sr->get(), 0, 0);
    }
    return out;
  }

  Result<std::vector<MemoryHit>> SearchMemory(const std::string& user_id,
                                              const std::string& session_id,
                                              const std::string& query, int limit) override {
    std::vector<MemoryHit> out;
    std::vector<std::string> terms = SearchTerms(query);
    if (terms.empty()) return out;
    // The SQL text depends only on how many words there are: each word is a
    // bound parameter, turned into a tsquery by plainto_tsquery (which treats
    // it as plain text, never as query syntax), and the words are OR'ed.
    std::string tsquery;
    std::vector<std::string> params = {user_id, session_id,
                                       std::to_string(std::clamp(limit, 1, kMaxSearchLimit)),
                                       std::to_string(kSearchCandidates)};
    for (const auto& t : terms) {
      if (!tsquery.empty()) tsquery += " || ";
      params.push_back(t);
      tsquery += "plainto_tsquery(" CONVEYOR_TS_CONFIG ", $" + std::to_string(params.size()) + ")";
    }
    // Ranked: the newest $4 matching chunks of the scope only; headlines: the
    // hits kept only. The query is written out where it is used (not taken
    // from a CTE) so that the planner sees the words and picks, per query,
    // between walking the session newest first ("MemoryChunk_scope_id_idx")
    // for common words and the GIN index for rare ones.
    std::string sql =
        "WITH cand AS (SELECT c.\"id\", ts_rank(c.\"tsv\", " + tsquery + ", 1) AS rank"
        "   FROM \"MemoryChunk\" c"
        "   WHERE c.\"userId\" = $1 AND c.\"sessionId\" = $2 AND c.\"tsv\" @@ (" + tsquery + ")"
        "   ORDER BY c.\"id\" DESC LIMIT $4::integer),"
        " top AS (SELECT \"id\", rank FROM cand ORDER BY rank DESC, \"id\" LIMIT $3::integer)"
        " SELECT c.\"fileId\", c.\"jobId\", c.\"chunkIndex\","
        " ts_headline(" CONVEYOR_TS_CONFIG ", c.\"text\", " + tsquery + ","
        " 'StartSel=\"**\", StopSel=\"**\", MinWords=12, MaxWords=25, ShortWord=0'),"
        " top.rank"
        " FROM top JOIN \"MemoryChunk\" c ON c.\"id\" = top.\"id\""
        " ORDER BY top.rank DESC, c.\"id\"";
    auto r = WithSession(pool_, [&](Session& s) { return s.Exec(sql.c_str(), params); });
    if (!r) return r.status();
    int n = PQntuples(r->get());
    for (int i = 0; i < n; ++i) {
      MemoryHit hit;
      hit.file_id = Val(r->get(), i, 0);
      hit.job_id = Val(r->get(), i, 1);
      hit.chunk_index = static_cast<int>(Int(r->get(), i, 2));
      hit.snippet = Val(r->get(), i, 3);
      hit.score = std::strtod(PQgetvalue(r->get(), i, 4), nullptr);
      out.push_back(std::move(hit));
    }
    return out;
  }

  Result<void> Ping() override {
    auto r = WithSession(pool_, [](Session& s) { return s.Exec("SELECT 1"); });
    if (!r) return r.status();
    return {};
  }

 private:
  // Runs `update` (an UPDATE of row $1 limited to in-flight rows, without
  // RETURNING) and reads the row's status in the same statement: ok when the
  // row changed, else kNotFound or kFailedPrecondition naming its status.
  Result<void> UpdateInFlight(const std::string& id, const std::string& update,
                              const std::vector<std::string>& params) {
    const std::string sql = "WITH u AS (" + update +
                            " RETURNING 1) SELECT (SELECT count(*) FROM u),"
                            " (SELECT \"status\" FROM \"FileUploadJob\" WHERE \"id\" = $1)";
    auto r = WithSession(pool_, [&](Session& s) { return s.Exec(sql.c_str(), params); });
    if (!r) return r.status();
    const PGresult* res = r->get();
    if (Int(res, 0, 0) == 1) return {};
    if (PQgetisnull(res, 0, 1)) return NotFound("no job " + id);
    return FailedPrecondition("job " + id + " is already " + std::string(Val(res, 0, 1)));
  }

  // An UPDATE of one row by id: kNotFound when no row matched.
  Result<void> UpdateOne(const std::string& id, const char* sql,
                         const std::vector<std::string>& params) {
    auto r = WithSession(pool_, [&](Session& s) { return s.Exec(sql, params); });
    if (!r) return r.status();
    if (std::string_view(PQcmdTuples(r->get())) == "0") return NotFound("no job " + id);
    return {};
  }

  Pool pool_;
};

}  // namespace

Result<std::unique_ptr<MetadataStore>> Open(const std::string& url, bool migrate) {
  auto store = std::make_unique<PostgresMetadataStore>(url);
  Pool pool(url);
  auto st = WithSession(pool, [&](Session& s) -> Result<void> {
    if (migrate) {
      auto v = ApplyMigrations(s);
      if (!v) return v.status();
      return {};
    }
    return CheckVersion(s);
  });
  if (!st) return st.status();
  return std::unique_ptr<MetadataStore>(std::move(store));
}

Result<int> Migrate(const std::string& url) {
  Pool pool(url);
  return WithSession(pool, [](Session& s) { return ApplyMigrations(s); });
}

std::vector<std::string> SearchTerms(std::string_view query) {
  std::vector<std::string> terms;
  auto is_word = [](unsigned char c) {
    return c >= 0x80 || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
  };
  size_t i = 0;
  while (i < query.size() && terms.size() < kMaxTerms) {
    while (i < query.size() && !is_word(static_cast<unsigned char>(query[i]))) ++i;
    size_t start = i;
    while (i < query.size() && is_word(static_cast<unsigned char>(query[i]))) ++i;
    if (i == start) break;
    std::string_view word = query.substr(start, i - start);
    std::string term(word.substr(0, Utf8Prefix(word, kMaxTermBytes)));
    if (term.empty() || !ValidUtf8(term)) continue;
    if (std::find(terms.begin(), terms.end(), term) == terms.end()) terms.push_back(std::move(term));
  }
  return terms;
}

}  // namespace conveyor::storage::postgres
