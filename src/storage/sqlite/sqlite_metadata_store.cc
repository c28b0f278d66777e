// SQLite MetadataStore. See sqlite_metadata_store.h for the connection design.
//
// Every write statement sets "updatedAt" to max(now, updatedAt + 1): the
// column then changes on every change even within one millisecond, so a
// client comparing it (or an ETag made from it) never misses an update.
#include "storage/sqlite/sqlite_metadata_store.h"

#include <sqlite3.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/files.h"
#include "core/ids.h"
#include "storage/internal/migrations.h"
#include "storage/snippet.h"

namespace conveyor::storage::sqlite {
namespace {

// How long a statement waits for another process's lock before failing with
// kUnavailable. Long enough to ride out a checkpoint or a burst of writes from
// the other process, short enough that a caller's retry/backoff takes over.
constexpr int kBusyTimeoutMs = 5000;
// Idle reader connections kept open; more are opened on demand and closed
// when returned beyond this count.
constexpr size_t kMaxIdleReaders = 8;
// Search results per call are clamped to [1, kMaxSearchLimit].
constexpr int kMaxSearchLimit = 100;
// Free-text queries keep at most this many distinct words, each cut at
// kMaxTermBytes: enough for any sentence a person types, bounded for the index.
constexpr size_t kMaxTerms = 32;
constexpr size_t kMaxTermBytes = 64;
// Words in a snippet (FTS5 snippet()'s token count; snippet.h for references).
constexpr int kSnippetTokens = 12;
// A reference's snippet comes from the first this many chunks of its file.
constexpr int kSnippetChunks = 64;

Status SqliteStatus(int rc, sqlite3* db, std::string_view what) {
  std::string msg(what);
  msg += ": ";
  msg += db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
    case SQLITE_FULL:
    case SQLITE_NOMEM:
    case SQLITE_PROTOCOL:
    case SQLITE_READONLY:
    case SQLITE_INTERRUPT:
      return Unavailable(std::move(msg));
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return DataLoss(std::move(msg));
    case SQLITE_CONSTRAINT:
      if (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE) {
        return AlreadyExists(std::move(msg));
      }
      if (rc == SQLITE_CONSTRAINT_FOREIGNKEY) return NotFound(std::move(msg));
      return InvalidArgument(std::move(msg));
    case SQLITE_TOOBIG:
    case SQLITE_RANGE:
    case SQLITE_MISMATCH:
      return InvalidArgument(std::move(msg));
    default:
      return Internal(std::move(msg));
  }
}

// FTS5 auxiliary functions of our own. FTS5's bm25() computes each phrase's
// document frequency by reading the phrase's whole doclist, across every
// user, on each query: its cost grows with the whole index. These read the
// current row only, and the ranking (RankCandidates) takes its statistics
// from the candidates a search looked at.
//
//   conveyor_hits(MemoryChunkFts)  "<tokens of text> <n0> <n1> ...": the
//                                  text column's size and, per phrase of the
//                                  MATCH expression, its instances in the text
//   conveyor_text_hits(MemoryChunkFts)  the sum of those instances
void CountTextHits(const Fts5ExtensionApi* api, Fts5Context* fts, std::vector<int>* counts,
                   int* tokens, int* rc) {
  counts->assign(static_cast<size_t>(api->xPhraseCount(fts)), 0);
  int n = 0;
  *rc = api->xInstCount(fts, &n);
  for (int i = 0; *rc == SQLITE_OK && i < n; ++i) {
    int phrase = 0, column = 0, offset = 0;
    *rc = api->xInst(fts, i, &phrase, &column, &offset);
    if (*rc == SQLITE_OK && column == 0 && phrase >= 0 &&
        phrase < static_cast<int>(counts->size())) {
      ++(*counts)[static_cast<size_t>(phrase)];
    }
  }
  if (*rc == SQLITE_OK) *rc = api->xColumnSize(fts, 0, tokens);
}

void HitsFunction(const Fts5ExtensionApi* api, Fts5Context* fts, sqlite3_context* ctx, int,
                  sqlite3_value**) {
  std::vector<int> counts;
  int tokens = 0, rc = SQLITE_OK;
  CountTextHits(api, fts, &counts, &tokens, &rc);
  if (rc != SQLITE_OK) {
    sqlite3_result_error_code(ctx, rc);
    return;
  }
  std::string out = std::to_string(tokens);
  for (int c : counts) out += ' ' + std::to_string(c);
  sqlite3_result_text(ctx, out.data(), static_cast<int>(out.size()), SQLITE_TRANSIENT);
}

void TextHitsFunction(const Fts5ExtensionApi* api, Fts5Context* fts, sqlite3_context* ctx, int,
                      sqlite3_value**) {
  std::vector<int> counts;
  int tokens = 0, rc = SQLITE_OK;
  CountTextHits(api, fts, &counts, &tokens, &rc);
  if (rc != SQLITE_OK) {
    sqlite3_result_error_code(ctx, rc);
    return;
  }
  int64_t sum = 0;
  for (int c : counts) sum += c;
  sqlite3_result_int64(ctx, sum);
}

Status RegisterFts5Functions(sqlite3* db) {
  fts5_api* api = nullptr;
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v2(db, "SELECT fts5(?1)", -1, &stmt, nullptr);
  if (rc == SQLITE_OK) {
    sqlite3_bind_pointer(stmt, 1, &api, "fts5_api_ptr", nullptr);
    rc = sqlite3_step(stmt);
    rc = rc == SQLITE_ROW ? SQLITE_OK : rc;
  }
  sqlite3_finalize(stmt);
  if (rc != SQLITE_OK || api == nullptr) return Internal("this SQLite has no FTS5");
  if (api->xCreateFunction(api, "conveyor_hits", nullptr, HitsFunction, nullptr) != SQLITE_OK ||
      api->xCreateFunction(api, "conveyor_text_hits", nullptr, TextHitsFunction, nullptr) !=
          SQLITE_OK) {
    return Internal("cannot register the FTS5 ranking functions");
  }
  return OkStatus();
}

// One candidate of a search: its rowid and conveyor_hits() of it.
struct Candidate {
  int64_t id = 0;
  int tokens = 0;
  std::vector<int> hits;  // per phrase
  double score = 0;
};

// Okapi BM25 (k1 1.2, b 0.75) over `c` with the candidates as the corpus:
// document frequencies and the average length are theirs. Sorts best first
// (ties: lower rowid first).
void RankCandidates(std::vector<Candidate>& c) {
  if (c.empty()) return;
  constexpr double k1 = 1.2, b = 0.75;
  size_t phrases = 0;
  double total_tokens = 0;
  for (const auto& x : c) {
    phrases = std::max(phrases, x.hits.size());
    total_tokens += x.tokens;
  }
  const double n = static_cast<double>(c.size());
  const double avg = std::max(1.0, total_tokens / n);
  std::vector<double> idf(phrases, 0);
  for (size_t p = 0; p < phrases; ++p) {
    double df = 0;
    for (const auto& x : c) df += (p < x.hits.size() && x.hits[p] > 0) ? 1 : 0;
    idf[p] = std::log((n - df + 0.5) / (df + 0.5) + 1.0);
  }
  for (auto& x : c) {
    double s = 0;
    for (size_t p = 0; p < x.hits.size(); ++p) {
      double tf = x.hits[p];
      if (tf > 0) s += idf[p] * tf * (k1 + 1) / (tf + k1 * (1 - b + b * x.tokens / avg));
    }
    x.score = s;
  }
  std::sort(c.begin(), c.end(), [](const Candidate& a, const Candidate& b) {
    if (a.score != b.score) return a.score > b.score;
    return a.id < b.id;
  });
}

// One sqlite3 handle plus its cache of prepared statements. Used by one thread
// at a time (opened with SQLITE_OPEN_NOMUTEX).
class Connection {
 public:
  static Result<std::unique_ptr<Connection>> Open(const std::string& path) {
    sqlite3* db = nullptr;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    int rc = sqlite3_open_v2(path.c_str(), &db, flags, nullptr);
    std::unique_ptr<Connection> conn(new Connection(db));
    if (rc != SQLITE_OK) return SqliteStatus(rc, db, "open " + path);
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, kBusyTimeoutMs);
    // journal_mode is persistent in the file; the rest are per connection.
    // WAL on :memory: silently stays "memory", which is fine.
    auto st = conn->Exec(
        "PRAGMA journal_mode=WAL;"
        "PRAGMA synchronous=NORMAL;"
        "PRAGMA foreign_keys=ON;"
        "PRAGMA temp_store=MEMORY;");
    if (!st) return st.status();
    if (Status fts = RegisterFts5Functions(db); !fts.ok()) return fts;
    return conn;
  }

  ~Connection() {
    for (auto& [sql, stmt] : cache_) sqlite3_finalize(stmt);
    sqlite3_close_v2(db_);
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  sqlite3* db() const { return db_; }

  // Runs one or more statements that return no rows.
  Result<void> Exec(const char* sql) {
    char* err = nullptr;
    int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &err);
    if (rc == SQLITE_OK) return {};
    std::string what = err != nullptr ? err : "exec";
    sqlite3_free(err);
    return SqliteStatus(rc, nullptr, what);
  }

  // A cached prepared statement for `sql` (a string literal in this file).
  Result<sqlite3_stmt*> Prepare(const char* sql) {
    auto it = cache_.find(sql);
    if (it != cache_.end()) return it->second;
    sqlite3_stmt* stmt = nullptr;
    int rc = sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
    if (rc != SQLITE_OK) return SqliteStatus(rc, db_, "prepare");
    cache_.emplace(sql, stmt);
    return stmt;
  }

 private:
  explicit Connection(sqlite3* db) : db_(db) {}
  sqlite3* db_;
  // Keyed by the literal's address: each call site passes the same pointer.
  std::unordered_map<const char*, sqlite3_stmt*> cache_;
};

// A borrowed cached statement: binds, steps, reads columns, and resets on
// destruction so the next user finds it clean.
class Stmt {
 public:
  static Result<Stmt> Make(Connection& conn, const char* sql) {
    auto s = conn.Prepare(sql);
    if (!s) return s.status();
    return Stmt(conn.db(), *s);
  }
  Stmt(Stmt&& o) noexcept : db_(o.db_), stmt_(std::exchange(o.stmt_, nullptr)), bind_rc_(o.bind_rc_) {}
  Stmt& operator=(Stmt&&) = delete;
  ~Stmt() {
    if (stmt_ != nullptr) {
      sqlite3_reset(stmt_);
      sqlite3_clear_bindings(stmt_);
    }
  }

  Stmt& Bind(int i, std::string_view v) {
    Check(sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
    return *this;
  }
  // Binds without a copy: `v` must stay valid until the statement is done
  // (this Stmt destroyed), as the caller's arguments of a point read are.
  Stmt& BindStatic(int i, std::string_view v) {
    Check(sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC));
    return *this;
  }
  Stmt& Bind(int i, int64_t v) {
    Check(sqlite3_bind_int64(stmt_, i, v));
    return *this;
  }
  Stmt& Bind(int i, int v) { return Bind(i, static_cast<int64_t>(v)); }

  // True when a row is ready, false when done.
  Result<bool> Step() {
    if (bind_rc_ != SQLITE_OK) return SqliteStatus(bind_rc_, db_, "bind");
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return SqliteStatus(rc, db_, "step");
  }
  // One sqlite3_step: its result code as it is (SQLITE_ROW, SQLITE_DONE,
  // SQLITE_BUSY...), for callers that treat some codes apart.
  int StepRc() {
    if (bind_rc_ != SQLITE_OK) return bind_rc_;
    return sqlite3_step(stmt_);
  }
  // Runs a statement that returns no rows; the number of rows changed.
  Result<int> Run() {
    auto r = Step();
    if (!r) return r.status();
    return sqlite3_changes(db_);
  }

  std::string Text(int col) const {
    auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
    return p != nullptr ? std::string(p, static_cast<size_t>(sqlite3_column_bytes(stmt_, col)))
                        : std::string();
  }
  std::optional<std::string> OptText(int col) const {
    if (sqlite3_column_type(stmt_, col) == SQLITE_NULL) return std::nullopt;
    return Text(col);
  }
  int64_t Int64(int col) const { return sqlite3_column_int64(stmt_, col); }
  double Double(int col) const { return sqlite3_column_double(stmt_, col); }

 private:
  Stmt(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  void Check(int rc) {
    if (rc != SQLITE_OK && bind_rc_ == SQLITE_OK) bind_rc_ = rc;
  }
  sqlite3* db_;
  sqlite3_stmt* stmt_;
  int bind_rc_ = SQLITE_OK;
};

// BEGIN IMMEDIATE ... COMMIT, rolled back unless committed. IMMEDIATE takes
// the write lock up front, so two processes never deadlock upgrading a read.
class Transaction {
 public:
  explicit Transaction(Connection& conn) : conn_(conn) {}
  ~Transaction() {
    if (open_) (void)conn_.Exec("ROLLBACK");
  }
  Result<void> Begin() {
    CONVEYOR_RETURN_IF_ERROR(conn_.Exec("BEGIN IMMEDIATE"));
    open_ = true;
    return {};
  }
  Result<void> Commit() {
    CONVEYOR_RETURN_IF_ERROR(conn_.Exec("COMMIT"));
    open_ = false;
    return {};
  }

 private:
  Connection& conn_;
  bool open_ = false;
};

Result<int> CurrentVersion(Connection& conn) {
  auto stmt = Stmt::Make(conn, "SELECT COALESCE(MAX(\"version\"), 0) FROM \"schema_migrations\"");
  if (!stmt) return stmt.status();
  auto row = stmt->Step();
  if (!row) return row.status();
  return static_cast<int>(stmt->Int64(0));
}

int LatestVersion() {
  auto all = internal::Migrations(internal::Dialect::kSqlite);
  return all.empty() ? 0 : all.back().version;
}

// Applies every pending migration in one transaction: a crash or error leaves
// the schema as it was, and a second process migrating at the same moment
// waits on the write lock, then finds nothing to do.
Result<int> ApplyMigrations(Connection& conn) {
  CONVEYOR_RETURN_IF_ERROR(conn.Exec(
      "CREATE TABLE IF NOT EXISTS \"schema_migrations\" ("
      " \"version\" INTEGER NOT NULL PRIMARY KEY,"
      " \"name\" TEXT NOT NULL,"
      " \"appliedAt\" BIGINT NOT NULL)"));
  Transaction tx(conn);
  CONVEYOR_RETURN_IF_ERROR(tx.Begin());
  auto current = CurrentVersion(conn);
  if (!current) return current.status();
  int version = *current;
  if (version > LatestVersion()) {
    return FailedPrecondition("database schema version " + std::to_string(version) +
                              " is newer than this build knows (" +
                              std::to_string(LatestVersion()) + ")");
  }
  for (const auto& m : internal::Migrations(internal::Dialect::kSqlite)) {
    if (m.version <= version) continue;
    auto st = conn.Exec(m.sql);
    if (!st) {
      return Status(st.code(), "migration " + std::to_string(m.version) + "_" + m.name + ": " +
                                   st.status().message());
    }
    auto rec = Stmt::Make(conn,
                          "INSERT INTO \"schema_migrations\" (\"version\", \"name\", \"appliedAt\")"
                          " VALUES (?1, ?2, ?3)");
    if (!rec) return rec.status();
    rec->Bind(1, m.version).Bind(2, std::string_view(m.name)).Bind(3, NowMs());
    CONVEYOR_RETURN_IF_ERROR(rec->Run());
    version = m.version;
  }
  CONVEYOR_RETURN_IF_ERROR(tx.Commit());
  return version;
}

// Column list shared by every query returning a JobRecord; ReadJob follows it.
#define CONVEYOR_JOB_COLUMNS                                                           \
  "\"id\", \"userId\", \"sessionId\", \"status\", \"fileId\", \"result\", \"error\", " \
  "\"createdAt\", \"updatedAt\", \"originalName\", \"mimeType\", \"size\", \"sha256\", " \
  "\"storagePath\", \"message\", \"progress\", \"attempts\""

Result<JobRecord> ReadJob(const Stmt& s) {
  JobRecord r;
  r.id = s.Text(0);
  r.user_id = s.Text(1);
  r.session_id = s.Text(2);
  auto status = ParseJobStatus(s.Text(3));
  if (!status) return DataLoss("job " + r.id + " has unknown status '" + s.Text(3) + "'");
  r.status = *status;
  r.file_id = s.OptText(4);
  r.result_json = s.OptText(5);
  r.error = s.OptText(6);
  r.created_at_ms = s.Int64(7);
  r.updated_at_ms = s.Int64(8);
  r.original_name = s.Text(9);
  r.mime_type = s.Text(10);
  r.size_bytes = s.Int64(11);
  r.sha256_hex = s.Text(12);
  r.storage_path = s.Text(13);
  r.message = s.Text(14);
  r.progress = static_cast<int>(s.Int64(15));
  r.attempts = static_cast<int>(s.Int64(16));
  return r;
}

// The FTS token naming one (user, session) scope; must match the expression in
// migrations/sqlite/0001_init.sql ('u' || hex(userId) || 'x' || hex(sessionId) || 'z').
std::string ScopeToken(const std::string& user_id, const std::string& session_id) {
  auto upper_hex = [](const std::string& s) {
    std::string h = HexEncode(s);
    std::transform(h.begin(), h.end(), h.begin(),
                   [](char c) { return c >= 'a' && c <= 'f' ? static_cast<char>(c - 32) : c; });
    return h;
  };
  return "u" + upper_hex(user_id) + "x" + upper_hex(session_id) + "z";
}

// Length of a UTF-8 prefix of `s` of at most `max` bytes that ends on a code
// point boundary.
size_t Utf8Prefix(std::string_view s, size_t max) {
  if (s.size() <= max) return s.size();
  size_t n = max;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return n;
}

class SqliteMetadataStore final : public MetadataStore {
 public:
  SqliteMetadataStore(std::string path, bool memory, std::unique_ptr<Connection> writer)
      : path_(std::move(path)), memory_(memory), writer_(std::move(writer)) {}

  Result<void> InsertJob(const NewJob& job) override {
    CONVEYOR_RETURN_IF_ERROR(CheckNewJob(job));
    std::lock_guard lock(write_mu_);
    return InsertRow(job, NowMs());
  }

  Result<void> InsertJobs(const std::vector<NewJob>& jobs) override {
    if (jobs.empty()) return {};
    for (const NewJob& job : jobs) CONVEYOR_RETURN_IF_ERROR(CheckNewJob(job));
    std::lock_guard lock(write_mu_);
    Transaction tx(*writer_);
    CONVEYOR_RETURN_IF_ERROR(tx.Begin());
    const int64_t now = NowMs();
    for (const NewJob& job : jobs) CONVEYOR_RETURN_IF_ERROR(InsertRow(job, now));
    return tx.Commit();
  }

  Result<std::optional<JobRecord>> GetJob(const std::string& id) override {
    Reader reader(*this);
    auto s = Stmt::Make(reader.conn(),
                        "SELECT " CONVEYOR_JOB_COLUMNS " FROM \"FileUploadJob\" WHERE \"id\" = ?1");
    if (!s) return s.status();
    s->Bind(1, id);
    return ReadOptionalJob(*s);
  }

  Result<std::optional<JobRecord>> GetJobForUser(const std::string& id,
                                                 const std::string& user_id) override {
    Reader reader(*this);
    auto s = Stmt::Make(reader.conn(), "SELECT " CONVEYOR_JOB_COLUMNS
                                       " FROM \"FileUploadJob\" WHERE \"id\" = ?1 AND \"userId\" = ?2");
    if (!s) return s.status();
    s->Bind(1, id).Bind(2, user_id);
    return ReadOptionalJob(*s);
  }

  TriedStatusRead TryGetJobStatusForUser(const std::string& id,
                                         const std::string& user_id) override {
    // :memory: reads share the writer's connection and lock.
    if (memory_) return std::nullopt;
    IdleReader reader(*this);
    if (!reader) return std::nullopt;  // opening one is file I/O: the caller's pool does it
    sqlite3* db = reader.conn().db();
    // No busy handler: a read that would wait for a lock gives up at once.
    sqlite3_busy_timeout(db, 0);
    TriedStatusRead out;
    {
      auto s = Stmt::Make(reader.conn(),
                          "SELECT \"status\", \"progress\", \"result\", \"error\""
                          " FROM \"FileUploadJob\" WHERE \"id\" = ?1 AND \"userId\" = ?2");
      if (!s) {
        out.emplace(s.status());
      } else {
        s->BindStatic(1, id).BindStatic(2, user_id);
        const int rc = s->StepRc();
        if ((rc & 0xff) == SQLITE_BUSY) {
          // out stays empty: the caller reads again where it may wait.
        } else if (rc == SQLITE_DONE) {
          out.emplace(std::optional<JobStatusRow>());
        } else if (rc != SQLITE_ROW) {
          out.emplace(SqliteStatus(rc, db, "step"));
        } else if (auto status = ParseJobStatus(s->Text(0)); !status) {
          out.emplace(DataLoss("job " + id + " has unknown status '" + s->Text(0) + "'"));
        } else {
          JobStatusRow row;
          row.status = *status;
          row.progress = static_cast<int>(s->Int64(1));
          row.result_json = s->OptText(2);
          row.error = s->OptText(3);
          out.emplace(std::optional<JobStatusRow>(std::move(row)));
        }
      }
    }  // the statement is reset before the connection goes back
    sqlite3_busy_timeout(db, kBusyTimeoutMs);
    return out;
  }

  Result<void> MarkProcessing(const std::string& id, int attempts) override {
    std::lock_guard lock(write_mu_);
    auto s = Stmt::Make(*writer_,
                        "UPDATE \"FileUploadJob\" SET \"status\" = 'processing', \"progress\" = 0,"
                        " \"attempts\" = ?2, \"error\" = NULL,"
                        " \"updatedAt\" = MAX(?3, \"updatedAt\" + 1)"
                        " WHERE \"id\" = ?1 AND \"status\" IN ('pending', 'processing')");
    if (!s) return s.status();
    s->Bind(1, id).Bind(2, attempts).Bind(3, NowMs());
    auto n = s->Run();
    if (!n) return n.status();
    if (*n == 1) return {};
    return NotInFlightLocked(id);
  }

  Result<std::optional<JobRecord>> ClaimJob(const std::string& id, int attempts) override {
    std::lock_guard lock(write_mu_);
    {
      auto s = Stmt::Make(*writer_,
                          "UPDATE \"FileUploadJob\" SET \"status\" = 'processing', \"progress\" = 0,"
                          " \"attempts\" = ?2, \"error\" = NULL,"
                          " \"updatedAt\" = MAX(?3, \"updatedAt\" + 1)"
                          " WHERE \"id\" = ?1 AND \"status\" IN ('pending', 'processing')"
                          " RETURNING " CONVEYOR_JOB_COLUMNS);
      if (!s) return s.status();
      s->Bind(1, id).Bind(2, attempts).Bind(3, NowMs());
      auto taken = ReadOptionalJob(*s);
      if (!taken) return taken.status();
      if (taken->has_value()) {
        // Run the statement to its end, which ends its implicit transaction.
        auto done = s->Step();
        if (!done) return done.status();
        return taken;
      }
    }
    // Not taken: final already, or no row.
    auto s = Stmt::Make(*writer_,
                        "SELECT " CONVEYOR_JOB_COLUMNS " FROM \"FileUploadJob\" WHERE \"id\" = ?1");
    if (!s) return s.status();
    s->Bind(1, id);
    return ReadOptionalJob(*s);
  }

  Result<void> SetProgress(const std::string& id, int percent) override {
    std::lock_guard lock(write_mu_);
    auto s = Stmt::Make(*writer_,
                        "UPDATE \"FileUploadJob\" SET \"progress\" = ?2,"
                        " \"updatedAt\" = MAX(?3, \"updatedAt\" + 1)"
                        " WHERE \"id\" = ?1 AND \"status\" = 'processing' AND \"progress\" <> ?2");
    if (!s) return s.status();
    s->Bind(1, id).Bind(2, std::clamp(percent, 0, 100)).Bind(3, NowMs());
    auto n = s->Run();
    if (!n) return n.status();
    if (*n == 1) return {};
    return ExistsOrNotFound(id);
  }

  Result<void> MarkCompleted(const std::string& id, const std::string& file_id,
                             const std::string& result_json) override {
    std::lock_guard lock(write_mu_);
    auto s = Stmt::Make(*writer_,
                        "UPDATE \"FileUploadJob\" SET \"status\" = 'completed', \"fileId\" = ?2,"
                        " \"result\" = ?3, \"error\" = NULL, \"progress\" = 100,"
                        " \"updatedAt\" = MAX(?4, \"updatedAt\" + 1)"
                        " WHERE \"id\" = ?1");
    if (!s) return s.status();
    s->Bind(1, id).Bind(2, file_id).Bind(3, result_json).Bind(4, NowMs());
    auto n = s->Run();
    if (!n) return n.status();
    if (*n == 0) return NotFound("no job " + id);
    return {};
  }

  Result<void> MarkFailed(const std::string& id, const std::string& error) override {
    std::lock_guard lock(write_mu_);
    // A completed job keeps its result: a late failure report (a worker whose
    // lease lapsed while another finished the job) must not undo it.
    auto s = Stmt::Make(*writer_,
                        "UPDATE \"FileUploadJob\" SET \"status\" = 'failed', \"error\" = ?2,"
                        " \"updatedAt\" = MAX(?3, \"updatedAt\" + 1)"
                        " WHERE \"id\" = ?1 AND \"status\" <> 'completed'");
    if (!s) return s.status();
    s->Bind(1, id).Bind(2, error).Bind(3, NowMs());
    auto n = s->Run();
    if (!n) return n.status();
    if (*n == 1) return {};
    return NotInFlightLocked(id);
  }

  Result<void> MarkPending(const std::string& id) override {
    // Only a row still in flight goes back (see the PostgreSQL store).
    std::lock_guard lock(write_mu_);
    auto s = Stmt::Make(*writer_,
                        "UPDATE \"FileUploadJob\" SET \"status\" = 'pending', \"progress\" = 0,"
                        " \"error\" = NULL, \"updatedAt\" = MAX(?2, \"updatedAt\" + 1)"
                        " WHERE \"id\" = ?1 AND \"status\" IN ('pending', 'processing')");
    if (!s) return s.status();
    s->Bind(1, id).Bind(2, NowMs());
    auto n = s->Run();
    if (!n) return n.status();
    if (*n == 1) return {};
    return NotInFlightLocked(id);
  }

  Result<std::vector<JobRecord>> ListPending(int64_t older_than_ms, int limit) override {
    std::vector<JobRecord> out;
    if (limit <= 0) return out;
    Reader reader(*this);
    auto s = Stmt::Make(reader.conn(), "SELECT " CONVEYOR_JOB_COLUMNS
                                       " FROM \"FileUploadJob\""
                                       " WHERE \"status\" = 'pending' AND \"createdAt\" < ?1"
                                       " ORDER BY \"createdAt\", \"id\" LIMIT ?2");
    if (!s) return s.status();
    s->Bind(1, older_than_ms).Bind(2, limit);
    for (;;) {
      auto row = s->Step();
      if (!row) return row.status();
      if (!*row) break;
      auto rec = ReadJob(*s);
      if (!rec) return rec.status();
      out.push_back(std::move(*rec));
    }
    return out;
  }

  Result<void> StoreFileMemory(const FileMemory& m) override { return StoreMemoryThen(m, nullptr); }

  Result<void> CompleteJob(const JobCompletion& c) override {
    const FileMemory& m = c.memory;
    return StoreMemoryThen(m, [&]() -> Result<void> {
      auto s = Stmt::Make(*writer_,
                          "UPDATE \"FileUploadJob\" SET \"status\" = 'completed', \"fileId\" = ?2,"
                          " \"result\" = ?3, \"error\" = NULL, \"progress\" = 100,"
                          " \"updatedAt\" = MAX(?4, \"updatedAt\" + 1)"
                          " WHERE \"id\" = ?1");
      if (!s) return s.status();
      s->Bind(1, m.job_id).Bind(2, m.file_id).Bind(3, c.result_json).Bind(4, NowMs());
      auto n = s->Run();
      if (!n) return n.status();
      if (*n == 0) return NotFound("no job " + m.job_id);
      return {};
    });
  }

  // StoreFileMemory, then `and_then` (if any) in the same transaction.
  Result<void> StoreMemoryThen(const FileMemory& m,
                               const std::function<Result<void>()>& and_then) {
    if (m.user_id.empty() || m.session_id.empty() || m.job_id.empty() || m.file_id.empty()) {
      return InvalidArgument("user id, session id, job id and file id are required");
    }
    if (auto twice = RepeatedChunkIndex(m.chunks)) {
      return InvalidArgument("chunk index " + std::to_string(*twice) + " given twice");
    }
    const std::vector<std::string> terms = CleanTerms(m.terms, kMaxFileTerms);
    std::lock_guard lock(write_mu_);
    Transaction tx(*writer_);
    CONVEYOR_RETURN_IF_ERROR(tx.Begin());
    // Also drops what an earlier attempt of the same job stored under another
    // file id: one job yields one file's memory.
    for (const char* sql : {"DELETE FROM \"MemoryChunk\" WHERE \"fileId\" = ?1 OR \"jobId\" = ?2",
                            "DELETE FROM \"MemoryTerm\" WHERE \"fileId\" = ?1 OR \"jobId\" = ?2"}) {
      auto del = Stmt::Make(*writer_, sql);
      if (!del) return del.status();
      del->Bind(1, m.file_id).Bind(2, m.job_id);
      CONVEYOR_RETURN_IF_ERROR(del->Run());
    }
    int64_t now = NowMs();
    for (const auto& chunk : m.chunks) {
      auto ins = Stmt::Make(*writer_,
                            "INSERT INTO \"MemoryChunk\" (\"userId\", \"sessionId\", \"jobId\","
                            " \"fileId\", \"chunkIndex\", \"text\", \"createdAt\")"
                            " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
      if (!ins) return ins.status();
      ins->Bind(1, m.user_id).Bind(2, m.session_id).Bind(3, m.job_id).Bind(4, m.file_id);
      ins->Bind(5, chunk.index).Bind(6, chunk.text).Bind(7, now);
      auto r = ins->Run();
      if (!r) {
        if (r.code() == Errc::kNotFound) return NotFound("no job " + m.job_id);
        if (r.code() == Errc::kAlreadyExists) return StoredMeanwhile(m);
        return r.status();
      }
    }
    for (const auto& term : terms) {
      auto ins = Stmt::Make(*writer_,
                            "INSERT INTO \"MemoryTerm\" (\"userId\", \"sessionId\", \"jobId\","
                            " \"fileId\", \"term\") VALUES (?1, ?2, ?3, ?4, ?5)");
      if (!ins) return ins.status();
      ins->Bind(1, m.user_id).Bind(2, m.session_id).Bind(3, m.job_id).Bind(4, m.file_id);
      ins->Bind(5, term);
      auto r = ins->Run();
      if (!r) return r.code() == Errc::kNotFound ? NotFound("no job " + m.job_id) : r.status();
    }
    if (and_then) CONVEYOR_RETURN_IF_ERROR(and_then());
    return tx.Commit();
  }

  Result<std::vector<RelatedFile>> FindRelatedFiles(const RelatedQuery& q) override {
    std::vector<RelatedFile> out;
    const std::vector<std::string> terms = CleanTerms(q.terms, kMaxRelatedTerms);
    const int limit = std::clamp(q.limit, 0, kMaxRelatedFiles);
    if (terms.empty() || limit == 0) return out;
    // Per term, the newest files of the scope holding it, through the
    // covering index "MemoryTerm_scope_term_idx" read backwards; counted
    // here rather than by a GROUP BY, whose temporary b-trees cost more than
    // the rows.
    struct Seen {
      std::string job_id;
      int n = 0;
      int64_t newest = 0;
      uint32_t held = 0;  // bit i: terms[i]
      static_assert(kMaxRelatedTerms <= 32);
    };
    std::unordered_map<std::string, Seen> seen;
    Reader reader(*this);
    const int per_term = std::clamp(q.per_term_limit, 1, kMaxRelatedPerTerm);
    for (size_t i = 0; i < terms.size(); ++i) {
      auto s = Stmt::Make(reader.conn(),
                          "SELECT \"id\", \"fileId\", \"jobId\" FROM \"MemoryTerm\""
                          " WHERE \"userId\" = ?1 AND \"sessionId\" = ?2 AND \"term\" = ?3"
                          " AND \"fileId\" <> ?4 ORDER BY \"id\" DESC LIMIT ?5");
      if (!s) return s.status();
      s->BindStatic(1, q.user_id).BindStatic(2, q.session_id).BindStatic(3, terms[i]);
      s->BindStatic(4, q.exclude_file_id).Bind(5, per_term);
      for (;;) {
        auto row = s->Step();
        if (!row) return row.status();
        if (!*row) break;
        Seen& f = seen[s->Text(1)];
        if (f.n == 0) f.job_id = s->Text(2);
        f.n += 1;
        f.newest = std::max(f.newest, s->Int64(0));
        f.held |= uint32_t{1} << i;
      }
    }
    // Most terms first, then the newest.
    std::vector<std::pair<const std::string*, const Seen*>> ranked;
    ranked.reserve(seen.size());
    for (const auto& [file_id, f] : seen) ranked.emplace_back(&file_id, &f);
    const size_t keep = std::min(ranked.size(), static_cast<size_t>(limit));
    std::partial_sort(ranked.begin(), ranked.begin() + static_cast<ptrdiff_t>(keep), ranked.end(),
                      [](const auto& a, const auto& b) {
                        if (a.second->n != b.second->n) return a.second->n > b.second->n;
                        return a.second->newest > b.second->newest;
                      });
    for (size_t k = 0; k < keep; ++k) {
      RelatedFile f;
      f.file_id = *ranked[k].first;
      f.job_id = ranked[k].second->job_id;
      for (size_t i = 0; i < terms.size(); ++i) {
        if (ranked[k].second->held & (uint32_t{1} << i)) f.terms.push_back(terms[i]);
      }
      out.push_back(std::move(f));
    }
    // Each file's best snippet, from its first kSnippetChunks chunks only
    // (the unique index on (fileId, chunkIndex)), computed from their text:
    // the cost of the file, not of the session or the index (snippet.h).
    std::vector<std::string> chunks;
    for (auto& f : out) {
      auto s = Stmt::Make(reader.conn(),
                          "SELECT \"text\" FROM \"MemoryChunk\" WHERE \"fileId\" = ?1"
                          " AND \"chunkIndex\" < ?2 ORDER BY \"chunkIndex\"");
      if (!s) return s.status();
      s->Bind(1, f.file_id).Bind(2, kSnippetChunks);
      chunks.clear();
      for (;;) {
        auto row = s->Step();
        if (!row) return row.status();
        if (!*row) break;
        chunks.push_back(s->Text(0));
      }
      f.snippet = BestChunkSnippet(chunks, terms, kSnippetTokens);
    }
    return out;
  }

  Result<std::vector<MemoryHit>> SearchMemory(const std::string& user_id,
                                              const std::string& session_id,
                                              const std::string& query, int limit) override {
    std::vector<MemoryHit> out;
    std::string words = BuildFtsMatch(query);
    if (words.empty()) return out;
    std::string match = "scope : \"" + ScopeToken(user_id, session_id) + "\" AND " + words;
    Reader reader(*this);
    // First the ranking, over the newest kSearchCandidates matches only (FTS5
    // walks the index by descending rowid and stops there) with BM25 whose
    // statistics are those of the candidates (RankCandidates), then a snippet
    // for each hit kept: both cost what the result costs, not what the session
    // or the whole index holds. The scope token is in every candidate, so it
    // weighs nothing.
    std::vector<Candidate> candidates;
    {
      auto s = Stmt::Make(reader.conn(),
                          "SELECT rowid, conveyor_hits(\"MemoryChunkFts\") FROM \"MemoryChunkFts\""
                          " WHERE \"MemoryChunkFts\" MATCH ?1 ORDER BY rowid DESC LIMIT ?2");
      if (!s) return s.status();
      s->Bind(1, match).Bind(2, kSearchCandidates);
      for (;;) {
        auto row = s->Step();
        if (!row) return row.status();
        if (!*row) break;
        Candidate c;
        c.id = s->Int64(0);
        std::string hits = s->Text(1);
        const char* p = hits.c_str();
        char* end = nullptr;
        c.tokens = static_cast<int>(std::strtol(p, &end, 10));
        while (end != nullptr && *end == ' ') {
          p = end;
          c.hits.push_back(static_cast<int>(std::strtol(p, &end, 10)));
        }
        candidates.push_back(std::move(c));
      }
    }
    RankCandidates(candidates);
    if (candidates.size() > static_cast<size_t>(std::clamp(limit, 1, kMaxSearchLimit))) {
      candidates.resize(static_cast<size_t>(std::clamp(limit, 1, kMaxSearchLimit)));
    }
    for (const Candidate& c : candidates) {
      auto s = Stmt::Make(
          reader.conn(),
          "SELECT c.\"fileId\", c.\"jobId\", c.\"chunkIndex\","
          " snippet(\"MemoryChunkFts\", 0, '**', '**', '…', ?5)"
          " FROM \"MemoryChunkFts\" JOIN \"MemoryChunk\" c ON c.\"id\" = \"MemoryChunkFts\".rowid"
          " WHERE \"MemoryChunkFts\" MATCH ?1 AND \"MemoryChunkFts\".rowid = ?2"
          " AND c.\"userId\" = ?3 AND c.\"sessionId\" = ?4");
      if (!s) return s.status();
      s->Bind(1, match).Bind(2, c.id).Bind(3, user_id).Bind(4, session_id).Bind(5, kSnippetTokens);
      auto row = s->Step();
      if (!row) return row.status();
      if (!*row) continue;  // deleted meanwhile
      MemoryHit hit;
      hit.file_id = s->Text(0);
      hit.job_id = s->Text(1);
      hit.chunk_index = static_cast<int>(s->Int64(2));
      hit.snippet = s->Text(3);
      hit.score = c.score;
      out.push_back(std::move(hit));
    }
    return out;
  }

  Result<void> Ping() override {
    Reader reader(*this);
    auto s = Stmt::Make(reader.conn(), "SELECT 1");
    if (!s) return s.status();
    auto row = s->Step();
    if (!row) return row.status();
    return {};
  }

 private:
  // The pool of idle reader connections: one taken (empty if none is idle),
  // and one given back (kept while fewer than kMaxIdleReaders are, else
  // closed; an empty one is ignored).
  std::unique_ptr<Connection> TakeIdleReader() {
    std::lock_guard lock(pool_mu_);
    if (idle_readers_.empty()) return nullptr;
    std::unique_ptr<Connection> c = std::move(idle_readers_.back());
    idle_readers_.pop_back();
    return c;
  }
  void GiveBackReader(std::unique_ptr<Connection> c) {
    if (!c) return;
    std::lock_guard lock(pool_mu_);
    if (idle_readers_.size() < kMaxIdleReaders) idle_readers_.push_back(std::move(c));
  }

  // A connection for reads: a pooled one for a file, the (locked) writer for
  // :memory:.
  class Reader {
   public:
    explicit Reader(SqliteMetadataStore& store) : store_(store) {
      if (store_.memory_) {
        lock_ = std::unique_lock(store_.write_mu_);
        return;
      }
      conn_ = store_.TakeIdleReader();
      if (!conn_) {
        auto c = Connection::Open(store_.path_);
        if (c) {
          conn_ = std::move(*c);
          // A reader never writes; this makes a stray write an error.
          (void)conn_->Exec("PRAGMA query_only=ON");
        }
      }
      if (!conn_) {
        // Could not open another connection (fd limit...): share the writer.
        lock_ = std::unique_lock(store_.write_mu_);
      }
    }
    ~Reader() { store_.GiveBackReader(std::move(conn_)); }
    Reader(const Reader&) = delete;
    Reader& operator=(const Reader&) = delete;
    Connection& conn() { return conn_ ? *conn_ : *store_.writer_; }

   private:
    SqliteMetadataStore& store_;
    std::unique_ptr<Connection> conn_;
    std::unique_lock<std::mutex> lock_;
  };

  // An idle pooled reader connection if there is one, without opening any:
  // empty otherwise (bool false). Given back on destruction.
  class IdleReader {
   public:
    explicit IdleReader(SqliteMetadataStore& store)
        : store_(store), conn_(store.TakeIdleReader()) {}
    ~IdleReader() { store_.GiveBackReader(std::move(conn_)); }
    IdleReader(const IdleReader&) = delete;
    IdleReader& operator=(const IdleReader&) = delete;
    explicit operator bool() const { return conn_ != nullptr; }
    Connection& conn() { return *conn_; }

   private:
    SqliteMetadataStore& store_;
    std::unique_ptr<Connection> conn_;
  };

  static Result<std::optional<JobRecord>> ReadOptionalJob(Stmt& s) {
    auto row = s.Step();
    if (!row) return row.status();
    if (!*row) return std::optional<JobRecord>();
    auto rec = ReadJob(s);
    if (!rec) return rec.status();
    return std::optional<JobRecord>(std::move(*rec));
  }

  static Result<void> CheckNewJob(const NewJob& job) {
    if (job.id.empty() || job.user_id.empty() || job.session_id.empty()) {
      return InvalidArgument("job id, user id and session id are required");
    }
    return {};
  }

  // Inserts one pending row on the writer (write_mu_ held), created at `now`.
  Result<void> InsertRow(const NewJob& job, int64_t now) {
    auto s = Stmt::Make(*writer_,
                        "INSERT INTO \"FileUploadJob\" (\"id\", \"userId\", \"sessionId\", \"status\","
                        " \"createdAt\", \"updatedAt\", \"originalName\", \"mimeType\", \"size\","
                        " \"sha256\", \"storagePath\", \"message\", \"progress\", \"attempts\")"
                        " VALUES (?1, ?2, ?3, 'pending', ?4, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 0, 0)");
    if (!s) return s.status();
    s->Bind(1, job.id).Bind(2, job.user_id).Bind(3, job.session_id).Bind(4, now);
    s->Bind(5, job.original_name).Bind(6, job.mime_type).Bind(7, job.size_bytes);
    s->Bind(8, job.sha256_hex).Bind(9, job.storage_path).Bind(10, job.message);
    auto r = s->Run();
    if (!r) {
      if (r.code() == Errc::kAlreadyExists) return AlreadyExists("job " + job.id + " already exists");
      return r.status();
    }
    return {};
  }

  // The status of `id` read on the writer (write_mu_ held), nullopt if none.
  Result<std::optional<JobStatus>> StatusLocked(const std::string& id) {
    auto s = Stmt::Make(*writer_, "SELECT \"status\" FROM \"FileUploadJob\" WHERE \"id\" = ?1");
    if (!s) return s.status();
    s->Bind(1, id);
    auto row = s->Step();
    if (!row) return row.status();
    if (!*row) return std::optional<JobStatus>();
    auto st = ParseJobStatus(s->Text(0));
    if (!st) return DataLoss("job " + id + " has unknown status");
    return std::optional<JobStatus>(*st);
  }

  // Why an update of in-flight rows left row `id` alone: kNotFound, or
  // kFailedPrecondition naming its final status.
  Status NotInFlightLocked(const std::string& id) {
    auto status = StatusLocked(id);
    if (!status) return status.status();
    if (!*status) return NotFound("no job " + id);
    return FailedPrecondition("job " + id + " is already " +
                              std::string(JobStatusName(**status)));
  }

  Result<void> ExistsOrNotFound(const std::string& id) {
    auto st = StatusLocked(id);
    if (!st) return st.status();
    if (!*st) return NotFound("no job " + id);
    return {};
  }

  const std::string path_;
  const bool memory_;
  std::mutex write_mu_;
  std::unique_ptr<Connection> writer_;  // guarded by write_mu_
  std::mutex pool_mu_;
  std::vector<std::unique_ptr<Connection>> idle_readers_;  // guarded by pool_mu_
};

Result<std::unique_ptr<Connection>> OpenFile(const std::string& path) {
  if (path != ":memory:") {
    // The database holds every user's memory: its directory is created 0700
    // and the file 0600 before SQLite opens it (the -wal and -shm files take
    // the database file's mode).
    auto parent = std::filesystem::path(path).parent_path();
    if (Status s = CreatePrivateDirs(parent.string()); !s.ok()) return s;
    if (Status s = CreatePrivateFile(path); !s.ok()) return s;
  }
  return Connection::Open(path);
}

}  // namespace

Result<std::unique_ptr<MetadataStore>> Open(const std::string& path, bool migrate) {
  auto conn = OpenFile(path);
  if (!conn) return conn.status();
  if (migrate) {
    auto v = ApplyMigrations(**conn);
    if (!v) return v.status();
  } else {
    auto st = (*conn)->Exec(
        "CREATE TABLE IF NOT EXISTS \"schema_migrations\" ("
        " \"version\" INTEGER NOT NULL PRIMARY KEY,"
        " \"name\" TEXT NOT NULL,"
        " \"appliedAt\" BIGINT NOT NULL)");
    if (!st) return st.status();
    auto v = CurrentVersion(**conn);
    if (!v) return v.status();
    if (*v < LatestVersion()) {
      return FailedPrecondition("database schema is at version " + std::to_string(*v) +
                                ", this build needs " + std::to_string(LatestVersion()) +
                                ": run `conveyor migrate`");
    }
  }
  return std::unique_ptr<MetadataStore>(
      new SqliteMetadataStore(path, path == ":memory:", std::move(*conn)));
}

Result<int> Migrate(const std::string& path) {
  auto conn = OpenFile(path);
  if (!conn) return conn.status();
  return ApplyMigrations(**conn);
}

std::string BuildFtsMatch(std::string_view query) {
  // Words are runs of ASCII letters/digits and non-ASCII bytes (UTF-8
  // sequences stay whole); everything else separates. Inside the double
  // quotes FTS5 applies its own tokenizer, so a word it finds no token in
  // simply matches nothing.
  std::vector<std::string> terms;
  size_t i = 0;
  while (i < query.size() && terms.size() < kMaxTerms) {
    auto is_word = [](unsigned char c) {
      return c >= 0x80 || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    };
    while (i < query.size() && !is_word(static_cast<unsigned char>(query[i]))) ++i;
    size_t start = i;
    while (i < query.size() && is_word(static_cast<unsigned char>(query[i]))) ++i;
    if (i == start) break;
    std::string_view word = query.substr(start, i - start);
    std::string term(word.substr(0, Utf8Prefix(word, kMaxTermBytes)));
    if (term.empty()) continue;
    if (std::find(terms.begin(), terms.end(), term) == terms.end()) terms.push_back(std::move(term));
  }
  if (terms.empty()) return {};
  std::string out = "text : (";
  for (size_t t = 0; t < terms.size(); ++t) {
    if (t > 0) out += " OR ";
    out += '"';
    out += terms[t];  // holds no '"': quotes are separators above
    out += '"';
  }
  out += ')';
  return out;
}

}  // namespace conveyor::storage::sqlite
