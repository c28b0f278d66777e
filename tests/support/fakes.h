// File: tests/support/fakes.h
//
// In-memory fakes of the storage and queue interfaces and of the clock for
// unit tests, with switches that inject failures:
//   FakeMetadataStore  rows in a map; `fail_insert`/`fail_ping`/`fail_claim`/
//                      `fail_complete` return the given code
//   FakeQueue          jobs in a map; `fail_add` returns the given code
//   FakeConsumer       a worker's side of the queue: pushed jobs are fetched in
//                      order, each call is counted, and what the worker did to
//                      a job (completed, retried, failed, dead-lettered,
//                      progress, log) is kept for the test to read;
//                      `fail_finish` makes Complete/Fail return the given code
//   FakeClock          a Clock that moves only when told to
//   DirBlobStore       a real BlobStore over a directory (tmp/<uuid>.part,
//                      committed <dir>/<uuid>), simple and independent of the
//                      production implementation, so tests can list the tree.
// All are thread-safe.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/error.h"
#include "counting.h"
#include "queue/queue.h"
#include "storage/blob_store.h"
#include "storage/metadata_store.h"

namespace conveyor::testing {

class FakeMetadataStore : public storage::MetadataStore {
 public:
  Result<void> InsertJob(const storage::NewJob& job) override;
  Result<void> InsertJobs(const std::vector<storage::NewJob>& jobs) override;
  Result<std::optional<storage::JobRecord>> GetJob(const std::string& id) override;
  Result<std::optional<storage::JobRecord>> GetJobForUser(const std::string& id,
                                                          const std::string& user_id) override;
  Result<void> MarkProcessing(const std::string& id, int attempts) override;
  // The base class's GetJob + MarkProcessing, unless `fail_claim` is set.
  Result<std::optional<storage::JobRecord>> ClaimJob(const std::string& id, int attempts) override;
  Result<void> SetProgress(const std::string& id, int percent) override;
  Result<void> MarkCompleted(const std::string& id, const std::string& file_id,
                             const std::string& result_json) override;
  Result<void> MarkFailed(const std::string& id, const std::string& error) override;
  Result<void> MarkPending(const std::string& id) override;
  Result<std::vector<storage::JobRecord>> ListPending(int64_t older_than_ms, int limit) override;
  Result<void> StoreFileMemory(const storage::FileMemory& memory) override;
  Result<std::vector<storage::RelatedFile>> FindRelatedFiles(
      const storage::RelatedQuery& query) override;
  // The base class's StoreFileMemory + MarkCompleted, unless `fail_complete`
  // is set.
  Result<void> CompleteJob(const storage::JobCompletion& c) override;
  Result<std::vector<storage::MemoryHit>> SearchMemory(const std::string& user_id,
                                                       const std::string& session_id,
                                                       const std::string& query,
                                                       int limit) override;
  Result<void> Ping() override;

  size_t size() const;
  std::vector<storage::JobRecord> All() const;

  std::atomic<Errc> fail_insert{Errc::kOk};  // non-OK: InsertJob fails with it
  std::atomic<Errc> fail_ping{Errc::kOk};
  std::atomic<Errc> fail_claim{Errc::kOk};     // ClaimJob
  std::atomic<Errc> fail_complete{Errc::kOk};  // CompleteJob (nothing is written)

 private:
  struct Chunk {
    std::string user_id, session_id, job_id, file_id;
    storage::MemoryChunk chunk;
  };
  mutable std::mutex mu_;
  std::map<std::string, storage::JobRecord> rows_;
  std::vector<Chunk> chunks_;
  std::vector<storage::FileMemory> files_;  // terms of each file, newest last (no chunks)
};

class FakeQueue : public queue::Queue {
 public:
  struct Added {
    std::string name;
    std::string data_json;
  };
  Result<bool> Add(const std::string& id, const std::string& name, const std::string& data_json,
                   const queue::JobOptions& opts) override;
  Result<bool> Exists(const std::string& id) override;
  Result<queue::JobCounts> Counts() override;
  Result<void> Ping() override;

  size_t size() const;
  std::optional<Added> Get(const std::string& id) const;

  std::atomic<Errc> fail_add{Errc::kOk};
  std::atomic<Errc> fail_ping{Errc::kOk};
  std::atomic<int> add_calls{0};

 private:
  mutable std::mutex mu_;
  std::map<std::string, Added> jobs_;
};

class FakeConsumer : public queue::Consumer {
 public:
  enum class State { kWait, kActive, kCompleted, kDelayed, kFailed };
  struct Job {
    queue::ActiveJob job;  // as the next Fetch hands it out (attempts, token)
    State state = State::kWait;
    std::string return_json;              // Complete
    std::string failed_reason;            // the latest Fail
    std::vector<std::string> stacktrace;  // every non-empty Fail stack
    bool dead_lettered = false;           // failed for good (BullMQ copies it to the DLQ)
    std::vector<std::string> progress;    // progress JSON, in order
    std::vector<std::string> logs;        // log lines, in order
  };

  // Adds `job` to the end of wait (its id, data, options and counters as
  // given; Fetch sets the token and counts the attempt started).
  void Push(queue::ActiveJob job);
  // A delayed (retried) job back to wait, as its backoff running out would.
  void Promote(const std::string& id);
  std::optional<Job> Get(const std::string& id) const;

  // True at once when a job waits; never blocks.
  Result<bool> WaitForWork(int64_t timeout_ms) override;
  Result<std::optional<queue::ActiveJob>> Fetch(const std::string& token, int64_t lock_ms) override;
  Result<std::vector<queue::ActiveJob*>> ExtendLocks(const std::vector<queue::ActiveJob*>& jobs,
                                               int64_t lock_ms) override;
  Result<void> Complete(const queue::ActiveJob& job, const std::string& return_json) override;
  CompleteAndFetchResult CompleteAndFetch(const queue::ActiveJob& job,
                                          const std::string& return_json,
                                          const std::string& next_token,
                                          int64_t lock_ms) override;
  // Retried (delayed) only when asked to and, as BullMQ rules, while attempts
  // remain and the job carries no deferred failure; else failed for good.
  Result<void> Fail(const queue::ActiveJob& job, const std::string& reason,
                    const std::string& stack, bool retry) override;
  Result<void> UpdateProgress(const std::string& id, const std::string& progress_json) override;
  Result<void> AddLog(const std::string& id, const std::string& line) override;
  Result<void> ReportProgress(const std::string& id, const std::string& progress_json,
                              const std::string& log_line) override;
  Result<std::vector<std::string>> RecoverStalled(int64_t stalled_interval_ms) override;
  Result<void> Release(const queue::ActiveJob& job) override;

  CallCounts counts;  // every call by method name (one call: one round trip)
  // Non-OK: Complete, CompleteAndFetch's completion and Fail fail with it
  // and change nothing (kFailedPrecondition: the lock was lost).
  std::atomic<Errc> fail_finish{Errc::kOk};

 private:
  // The held job `job` (active, same token), or an error (mu_ held).
  Result<Job*> HeldLocked(const queue::ActiveJob& job);
  std::optional<queue::ActiveJob> FetchLocked(const std::string& token);

  mutable std::mutex mu_;
  std::map<std::string, Job> jobs_;
  std::vector<std::string> wait_;  // ids, front first
};

class FakeClock : public Clock {
 public:
  int64_t MonotonicMs() const override { return monotonic_ms_.load(); }
  int64_t EpochMs() const override { return epoch_ms_.load(); }
  void Advance(int64_t ms) {
    monotonic_ms_ += ms;
    epoch_ms_ += ms;
  }

 private:
  std::atomic<int64_t> monotonic_ms_{1'000'000};
  std::atomic<int64_t> epoch_ms_{1'767'225'600'000};  // 2026-01-01T00:00:00Z
};

class DirBlobStore : public storage::BlobStore {
 public:
  explicit DirBlobStore(std::string dir);  // creates dir and dir/tmp
  Result<std::unique_ptr<storage::BlobWriter>> Create(const std::string& id) override;
  std::string Location(const std::string& id) const override;
  Result<void> Remove(const std::string& id) override;
  Result<storage::OpenedBlob> OpenBlob(const std::string& id) override;
  int RemoveStaleTemps(int64_t older_than_ms) override;

  const std::string& dir() const { return dir_; }
  // Every regular file under `root` (recursively), as absolute paths.
  static std::vector<std::string> ListFiles(const std::string& root);

 private:
  std::string dir_;
};

}  // namespace conveyor::testing
