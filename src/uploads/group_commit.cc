#include "uploads/group_commit.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <exception>
#include <future>
#include <iterator>
#include <utility>

#include "queue/queue.h"
#include "storage/blob_store.h"
#include "storage/metadata_store.h"

namespace conveyor::uploads {
namespace {

bool Retryable(Errc e) { return e == Errc::kUnavailable || e == Errc::kDeadlineExceeded; }

// A completion that throws must not take the committer thread down.
void Answer(const GroupCommitter::Done& done, Result<AcceptOutcome> r) {
  try {
    done(std::move(r));
  } catch (const std::exception& e) {
    spdlog::error("upload commit: completion threw: {}", e.what());
  } catch (...) {
    spdlog::error("upload commit: completion threw");
  }
}

}  // namespace

GroupCommitter::GroupCommitter(storage::MetadataStore& store, queue::Queue& queue,
                               storage::BlobStore& blobs, GroupCommitOptions options)
    : store_(store), queue_(queue), blobs_(blobs), options_(options) {
  thread_ = std::thread([this] { Run(); });
}

GroupCommitter::~GroupCommitter() { Stop(); }

void GroupCommitter::Submit(storage::NewJob row, Done done, QueueOrder order) {
  {
    std::lock_guard lock(mu_);
    if (!stopping_) {
      pending_.push_back({std::move(row), std::move(done), order});
      // Under the lock: the committer cannot miss it between its check and
      // its wait. Without waiters (it is busy committing) this costs nothing.
      cv_.notify_one();
      return;
    }
  }
  RemoveBlob(row);
  Answer(done, Unavailable("the server is shutting down"));
}

Result<AcceptOutcome> GroupCommitter::Commit(storage::NewJob row) {
  std::promise<Result<AcceptOutcome>> promise;
  auto outcome = promise.get_future();
  Submit(std::move(row), [&promise](Result<AcceptOutcome> r) { promise.set_value(std::move(r)); });
  return outcome.get();
}

void GroupCommitter::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

GroupCommitter::Stats GroupCommitter::stats() const {
  Stats s;
  s.batches = batches_.load();
  s.rows = rows_.load();
  s.split_batches = split_batches_.load();
  s.queue_round_trips = queue_round_trips_.load();
  return s;
}

size_t GroupCommitter::queued() const {
  std::lock_guard lock(mu_);
  return pending_.size();
}

void GroupCommitter::Run() {
  std::vector<Pending> batch;
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stopping_ || !pending_.empty(); });
    if (pending_.empty()) return;  // stopping, and everything was answered
    const size_t n = std::min(pending_.size(), std::max<size_t>(options_.max_batch_rows, 1));
    batch.assign(std::make_move_iterator(pending_.begin()),
                 std::make_move_iterator(pending_.begin() + static_cast<ptrdiff_t>(n)));
    pending_.erase(pending_.begin(), pending_.begin() + static_cast<ptrdiff_t>(n));
    lock.unlock();
    CommitBatch(batch);
    batch.clear();
    lock.lock();
  }
}

void GroupCommitter::CommitBatch(std::vector<Pending>& batch) {
  const size_t n = batch.size();
  rows_.fetch_add(n, std::memory_order_relaxed);
  if (options_.sync_blob_names) {
    if (Result<void> synced = blobs_.SyncNames(); !synced) {
      // The blobs' names might not survive a power loss: record none of them.
      spdlog::error("upload commit: syncing the blob directory failed: {}",
                    synced.status().ToString());
      for (Pending& p : batch) {
        RemoveBlob(p.row);
        Answer(p.done, synced.status());
      }
      return;
    }
  }
  batches_.fetch_add(1, std::memory_order_relaxed);
  // Each row's insert result: the batch's when its transaction committed.
  std::vector<Status> inserted(n);
  if (n == 1) {
    inserted[0] = store_.InsertJob(batch[0].row).status();
  } else {
    std::vector<storage::NewJob> rows;
    rows.reserve(n);
    for (Pending& p : batch) rows.push_back(std::move(p.row));
    Result<void> all = store_.InsertJobs(rows);
    for (size_t i = 0; i < n; ++i) batch[i].row = std::move(rows[i]);
    if (!all) {
      // Nothing of the batch went in. One by one, each row gets its own
      // answer: a duplicate id fails only itself.
      split_batches_.fetch_add(1, std::memory_order_relaxed);
      spdlog::warn("upload commit: batch of {} rows refused ({}); inserting them one by one", n,
                   all.status().ToString());
      for (size_t i = 0; i < n; ++i) inserted[i] = store_.InsertJob(batch[i].row).status();
    }
  }
  // Rows the database refused: nothing refers to their blobs. Except that
  // a duplicate id names a blob (blobs go by the job id) that belongs to the
  // row which has that id already: that one stays.
  for (size_t i = 0; i < n; ++i) {
    if (inserted[i].ok()) continue;
    if (inserted[i].code() != Errc::kAlreadyExists) RemoveBlob(batch[i].row);
    Answer(batch[i].done, inserted[i]);
  }
  std::vector<bool> enqueued = AddJobs(batch, inserted);
  for (size_t i = 0; i < n; ++i) {
    if (!inserted[i].ok()) continue;
    AcceptOutcome out;
    out.job_id = std::move(batch[i].row.id);
    out.storage_path = std::move(batch[i].row.storage_path);
    out.enqueued = enqueued[i];
    Answer(batch[i].done, std::move(out));
  }
}

std::vector<bool> GroupCommitter::AddJobs(const std::vector<Pending>& batch,
                                          const std::vector<Status>& inserted) {
  std::vector<bool> enqueued(batch.size(), false);
  std::vector<size_t> todo;  // rows committed whose job is not added yet
  for (size_t i = 0; i < batch.size(); ++i) {
    if (inserted[i].ok()) todo.push_back(i);
  }
  const int attempts = std::max(1, options_.queue_add_attempts);
  for (int attempt = 1; attempt <= attempts && !todo.empty(); ++attempt) {
    std::vector<queue::JobToAdd> jobs;
    jobs.reserve(todo.size());
    for (size_t i : todo) jobs.push_back(JobFor(batch[i].row, batch[i].order));
    queue_round_trips_.fetch_add(1, std::memory_order_relaxed);
    std::vector<Result<bool>> added = queue_.AddMany(jobs);
    std::vector<size_t> again;
    Status last;
    for (size_t k = 0; k < todo.size(); ++k) {
      const size_t i = todo[k];
      if (added[k]) {
        enqueued[i] = true;  // added now, or was already there
      } else if (Retryable(added[k].code())) {
        again.push_back(i);
        last = added[k].status();
      } else {
        // Not worth retrying now; the row is committed, the reconciler re-adds it.
        spdlog::error("upload {}: queue add failed: {}", batch[i].row.id,
                      added[k].status().ToString());
      }
    }
    if (!again.empty()) {
      spdlog::warn("upload commit: queue add attempt {} failed for {} of {} jobs: {}", attempt,
                   again.size(), todo.size(), last.ToString());
      if (attempt < attempts) {
        std::this_thread::sleep_for(std::chrono::milliseconds(options_.queue_retry_delay_ms));
      }
    }
    todo = std::move(again);
  }
  for (size_t i : todo) {
    spdlog::warn("upload {}: recorded but not queued; the reconciler will add it",
                 batch[i].row.id);
  }
  return enqueued;
}

void GroupCommitter::RemoveBlob(const storage::NewJob& row) {
  if (row.storage_path.empty()) return;
  if (auto removed = blobs_.Remove(row.id); !removed) {
    spdlog::warn("upload {}: removing blob after failed insert: {}", row.id,
                 removed.status().ToString());
  }
}

}  // namespace conveyor::uploads
