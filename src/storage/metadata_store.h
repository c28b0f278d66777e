// File: storage/metadata_store.h
//
// MetadataStore: the job rows and memory chunks. The row is the source of
// truth for a job's status as clients see it; the queue mirrors it.
//
// Implementations: SQLite (sqlite/, WAL mode) and PostgreSQL (postgres/, over
// libpq with a connection pool), with the same behaviour method for method. Open one with OpenMetadataStore(url), which also applies
// pending migrations when `migrate` is true.
//
// Threads: every method is blocking (disk or network I/O) and safe to call
// from any thread concurrently. Never call them on a socket-serving thread;
// the API hops to its blocking pool first. The one exception is
// TryGetJobStatusForUser, which gives up instead of waiting.
//
// Errors: kUnavailable for a database that cannot be reached or is busy past
// its timeout (retryable), kAlreadyExists from InsertJob for a duplicate id,
// kInvalidArgument for bad arguments, kDataLoss for rows that cannot be read.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/error.h"
#include "storage/job_record.h"

namespace conveyor::storage {

// Matching chunks a search ranks at most (the newest ones).
inline constexpr int kSearchCandidates = 1000;

// What a successful job leaves behind: its memory (chunks and index terms)
// and its result (CompleteJob).
struct JobCompletion {
  FileMemory memory;
  std::string result_json;
};

// What the status route shows of a job (GetJobForUser's row, narrowed).
struct JobStatusRow {
  JobStatus status = JobStatus::kPending;
  int progress = 0;
  std::optional<std::string> result_json;
  std::optional<std::string> error;
};

// TryGetJobStatusForUser's answer: nullopt when the read would have to wait.
using TriedStatusRead = std::optional<Result<std::optional<JobStatusRow>>>;

class MetadataStore {
 public:
  virtual ~MetadataStore() = default;

  // Inserts a row with status pending. kAlreadyExists if the id is taken.
  virtual Result<void> InsertJob(const NewJob& job) = 0;

  // Inserts every row (status pending) in one transaction: all or none. On
  // an error nothing is inserted and the error is returned with InsertJob's
  // codes (kAlreadyExists when any id is taken, twice in the list
  // included); a caller that must tell the rows apart inserts them one by
  // one then. The uploads' group commit (uploads/group_commit.h) calls it
  // with the rows of uploads that finished together. An empty list is a
  // no-op; PostgreSQL takes at most 7281 rows per call (kInvalidArgument
  // beyond: one statement carries at most 65535 parameters).
  virtual Result<void> InsertJobs(const std::vector<NewJob>& jobs) = 0;

  // The row, or nullopt if there is none.
  virtual Result<std::optional<JobRecord>> GetJob(const std::string& id) = 0;

  // The row if it exists and belongs to `user_id`; nullopt otherwise (so a
  // caller cannot tell another user's job from a missing one).
  virtual Result<std::optional<JobRecord>> GetJobForUser(const std::string& id,
                                                         const std::string& user_id) = 0;

  // GetJobForUser's status fields, read on the calling thread only if that
  // needs no waiting: no network round trip, no lock held by a writer, no
  // connection to open. Then the answer is the same as GetJobForUser's;
  // otherwise nullopt, and the caller calls GetJobForUser from a thread that
  // may block. Meant for a socket-serving thread (the status route). SQLite
  // answers from an idle reader connection with no busy timeout (WAL: a
  // reader never waits for the writer; a primary-key read touches a few
  // cached pages); PostgreSQL, an in-memory SQLite database (its reads share
  // the writer's lock) and this default always give up.
  virtual TriedStatusRead TryGetJobStatusForUser(const std::string& id,
                                                 const std::string& user_id) {
    return std::nullopt;
  }

  // status := processing, progress := 0, attempts := `attempts`. A row that is
  // already completed or failed is left alone and kFailedPrecondition returned.
  // kNotFound when there is no row.
  virtual Result<void> MarkProcessing(const std::string& id, int attempts) = 0;

  // Takes job `id` for an attempt in one step: a pending or processing row
  // becomes processing as MarkProcessing(id, attempts) makes it; a completed
  // or failed row is left alone. Returns the row as it is afterwards (status
  // processing when it was taken; completed or failed when it was final
  // already), nullopt when there is no row. SQLite and PostgreSQL do it in
  // one statement (UPDATE ... RETURNING); the default is GetJob then
  // MarkProcessing.
  virtual Result<std::optional<JobRecord>> ClaimJob(const std::string& id, int attempts) {
    auto row = GetJob(id);
    if (!row || !row->has_value()) return row;
    JobRecord& r = **row;
    if (r.status == JobStatus::kCompleted || r.status == JobStatus::kFailed) return row;
    auto marked = MarkProcessing(id, attempts);
    // Finished (or gone) in between: the row as it is now.
    if (marked.code() == Errc::kFailedPrecondition || marked.code() == Errc::kNotFound) {
      return GetJob(id);
    }
    if (!marked) return marked.status();
    r.status = JobStatus::kProcessing;
    r.progress = 0;
    r.attempts = attempts;
    r.error.reset();
    return row;
  }

  // progress := percent (0..100) while processing; no-op for other states.
  virtual Result<void> SetProgress(const std::string& id, int percent) = 0;

  // status := completed with file id and result JSON, progress := 100.
  virtual Result<void> MarkCompleted(const std::string& id, const std::string& file_id,
                                     const std::string& result_json) = 0;

  // status := failed with the message. A completed row keeps its result:
  // kFailedPrecondition (a late failure report must not undo a success).
  virtual Result<void> MarkFailed(const std::string& id, const std::string& error) = 0;

  // status := pending again (a job put back for another attempt), from
  // pending or processing only. A final row stays as it is:
  // kFailedPrecondition (a run that failed after another run of the same job
  // finished it must not reopen the row).
  virtual Result<void> MarkPending(const std::string& id) = 0;

  // Rows still pending whose created_at is older than `older_than_ms` (epoch
  // ms), oldest first, at most `limit`: the reconciler re-adds their jobs.
  virtual Result<std::vector<JobRecord>> ListPending(int64_t older_than_ms, int limit) = 0;

  // Replaces what `memory.file_id` left in memory, chunks and index terms, in
  // one transaction (idempotent: a retried job writes the same rows again
  // without duplicates). What an earlier attempt of the same job stored under
  // another file id is dropped too. kNotFound when there is no job row
  // `memory.job_id`; kInvalidArgument for a repeated chunk index (refused
  // before anything is written); kAborted when another transaction wrote
  // chunks of the same file meanwhile (two runs of one job committing at
  // once; PostgreSQL only, SQLite's writers take turns). Terms are
  // deduplicated; empty ones and those over 64 bytes are skipped.
  virtual Result<void> StoreFileMemory(const FileMemory& memory) = 0;

  // StoreFileMemory without index terms.
  Result<void> StoreMemory(const std::string& user_id, const std::string& session_id,
                           const std::string& job_id, const std::string& file_id,
                           const std::vector<MemoryChunk>& chunks) {
    return StoreFileMemory(FileMemory{user_id, session_id, job_id, file_id, chunks, {}});
  }

  // Files of the caller's session holding some of `query.terms` among their
  // index terms (not `query.exclude_file_id`): those holding more terms
  // first, then the newest. Bounded whatever the session's size: per term
  // only the `per_term_limit` newest files holding it are read (clamped to
  // 1..kMaxRelatedPerTerm), through an index; then, per file returned
  // (`limit`, clamped to 0..kMaxRelatedFiles), a snippet from that file's
  // first chunks only (never a query over the session's whole text).
  virtual Result<std::vector<RelatedFile>> FindRelatedFiles(const RelatedQuery& query) = 0;

  // StoreFileMemory(c.memory) and MarkCompleted(c.memory.job_id,
  // c.memory.file_id, c.result_json) in one transaction: the memory and the result appear
  // together, and a failure leaves neither (SQLite and PostgreSQL). Errors as
  // theirs. The default runs the two one after the other, without that
  // guarantee.
  virtual Result<void> CompleteJob(const JobCompletion& c) {
    CONVEYOR_RETURN_IF_ERROR(StoreFileMemory(c.memory));
    return MarkCompleted(c.memory.job_id, c.memory.file_id, c.result_json);
  }

  // Full-text search over the caller's own chunks of one session, best first.
  // `query` is free text (never interpreted as query syntax): its words are
  // OR'ed, rows matching more (and rarer) words rank first; a query with no
  // word yields no hits. Snippets mark matched words as **word**. `limit` is
  // clamped to 1..100. Its cost is bounded whatever the session's size: the
  // ranking looks at the newest kSearchCandidates matching chunks only.
  virtual Result<std::vector<MemoryHit>> SearchMemory(const std::string& user_id,
                                                      const std::string& session_id,
                                                      const std::string& query, int limit) = 0;

  // Cheap round trip for /readyz.
  virtual Result<void> Ping() = 0;
};

// Opens the store named by `url`: "sqlite:///abs/path.db" (or "sqlite://:memory:"
// for tests, private to the returned store), or a libpq URI
// "postgres://user:pass@host:port/db" ("postgresql://" too). With `migrate`,
// pending schema migrations are applied first (PostgreSQL: under an advisory
// lock, so concurrent starters are safe); without it, a schema older than this
// build is kFailedPrecondition ("run conveyor migrate"). kInvalidArgument for
// an unknown scheme, kUnavailable if it cannot be opened or reached.
//
// Timestamps are epoch milliseconds. Migrations live in
// src/storage/migrations/<dialect>/NNNN_name.sql, compiled into the binary and
// recorded in table schema_migrations.
Result<std::unique_ptr<MetadataStore>> OpenMetadataStore(const std::string& url, bool migrate);

// The kAborted of StoreFileMemory/CompleteJob when the chunks of
// `memory.file_id` were written by another transaction meanwhile.
Status StoredMeanwhile(const FileMemory& memory);

// Applies pending migrations and returns the schema version now in force.
Result<int> Migrate(const std::string& url);

}  // namespace conveyor::storage
