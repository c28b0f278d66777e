// File: uploads/group_commit.h
//
// Group commit of accepted uploads: uploads that finish together share one
// database transaction for their rows and one Redis round trip for their
// jobs, instead of a transaction and a round trip each.
//
// Design. Callers (the server's pool tasks, once an upload's blob is sealed)
// Submit() its row with a completion and go on with other work; they never
// wait. One committer thread takes every row queued so far (at most
// max_batch_rows) and:
//
//   0. with sync_blob_names (UPLOAD_FSYNC), fsyncs the blob directory once
//      (BlobStore::SyncNames), so every blob of the batch is durable under
//      its name before its row exists: one directory fsync per batch instead
//      of one per upload (each blob's own fsync was done by Seal);
//   1. inserts them with MetadataStore::InsertJobs: one transaction;
//   2. if that transaction fails (one duplicate id, one row the database
//      refuses, an outage), inserts the same rows one by one, so each row
//      gets its own result and a row that fails alone fails only itself;
//   3. adds the jobs of the rows that were committed with Queue::AddMany:
//      one pipelined round trip (retried for the jobs that failed with
//      kUnavailable/kDeadlineExceeded, up to queue_add_attempts, sleeping
//      queue_retry_delay_ms between tries);
//   4. calls each upload's completion, on the committer thread.
//
// So a job is added only after its row is committed (row before job, as in
// Accept), and while one batch commits the next one gathers: the busier the
// server, the larger the batches, with no timer and no added wait when idle.
// A job that could not be added leaves its row pending, and the worker's
// reconciler adds it later (idempotent: the job id is the row id); the
// upload is accepted all the same (`enqueued == false`). A row that could not
// be inserted has its blob removed and its completion gets the error, as
// Accept does.
//
// Threads: Submit and Commit are thread-safe. Completions run on the
// committer thread and must be quick (post to an executor; never block on
// the committer).
//
//   GroupCommitter committer(store, queue, blobs);
//   committer.Submit(std::move(row), [](Result<AcceptOutcome> r) { ... });
//   Result<AcceptOutcome> r = committer.Commit(std::move(row));  // blocking form
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "core/error.h"
#include "storage/job_record.h"
#include "uploads/uploads.h"

namespace conveyor::storage {
class BlobStore;
class MetadataStore;
}  // namespace conveyor::storage
namespace conveyor::queue {
class Queue;
}

namespace conveyor::uploads {

struct GroupCommitOptions {
  // Sync the blob directory before each batch's rows (see step 0); set when
  // the blobs were sealed with fsync.
  bool sync_blob_names = false;
  // Rows per transaction (and jobs per pipelined round trip) at most
  // (UPLOAD_COMMIT_MAX_ROWS); more waiting rows go in the next batch.
  size_t max_batch_rows = 128;
  // Tries per job on kUnavailable/kDeadlineExceeded, and the wait between.
  int queue_add_attempts = 3;
  int64_t queue_retry_delay_ms = 20;
};

class GroupCommitter {
 public:
  // The upload's outcome: its row and job (enqueued or left to the
  // reconciler), or the insert's error (the blob is removed then):
  // kAlreadyExists, kInvalidArgument, kUnavailable (also after Stop()).
  using Done = std::function<void(Result<AcceptOutcome>)>;

  // Starts the committer thread. The references must outlive the committer.
  GroupCommitter(storage::MetadataStore& store, queue::Queue& queue, storage::BlobStore& blobs,
                 GroupCommitOptions options = {});
  ~GroupCommitter();  // Stop()
  GroupCommitter(const GroupCommitter&) = delete;
  GroupCommitter& operator=(const GroupCommitter&) = delete;

  // Queues a sealed upload's row (uploads::Seal) for the next batch; `done`
  // is called once, later, on the committer thread. `order` is the job's
  // place in the queue (priority and aging; none by default).
  void Submit(storage::NewJob row, Done done, QueueOrder order = {});

  // Submit and wait for the outcome.
  Result<AcceptOutcome> Commit(storage::NewJob row);

  // Commits and answers every row queued so far, then stops the thread.
  // Later Submits are answered at once with kUnavailable. Idempotent.
  void Stop();

  struct Stats {
    uint64_t batches = 0;        // InsertJobs transactions tried (and lone InsertJobs)
    uint64_t rows = 0;           // rows taken from the queue
    uint64_t split_batches = 0;  // batches retried one row at a time
    uint64_t queue_round_trips = 0;  // Queue::AddMany calls
  };
  Stats stats() const;

  // Rows waiting for a batch (not yet taken by the committer thread).
  size_t queued() const;

 private:
  struct Pending {
    storage::NewJob row;
    Done done;
    QueueOrder order;
  };

  void Run();
  void CommitBatch(std::vector<Pending>& batch);
  // For each committed row, whether its job was added.
  std::vector<bool> AddJobs(const std::vector<Pending>& batch, const std::vector<Status>& inserted);
  void RemoveBlob(const storage::NewJob& row);

  storage::MetadataStore& store_;
  queue::Queue& queue_;
  storage::BlobStore& blobs_;
  const GroupCommitOptions options_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Pending> pending_;  // guarded by mu_
  bool stopping_ = false;        // guarded by mu_

  std::atomic<uint64_t> batches_{0}, rows_{0}, split_batches_{0}, queue_round_trips_{0};
  std::thread thread_;  // last: started once everything above exists
};

}  // namespace conveyor::uploads
