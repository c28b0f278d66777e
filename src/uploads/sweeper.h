// File: uploads/sweeper.h
//
// StorageSweeper: removes what STORAGE_DIR holds for no job, so that once the
// jobs it held are final the directory is empty. The worker deletes a job's
// upload when the job becomes final (worker/outcome.h); the sweeper catches
// what a crash or a lost client leaves behind:
//
//   tmp/<uuid>.part  an upload cut off midway (client gone, API killed):
//                    removed once its last write is older than
//                    temp_max_age_ms. An upload still streaming in another
//                    API process sharing the directory writes to its file at
//                    least every 1 MiB or BODY_IDLE_TIMEOUT_MS, so a live
//                    upload is never that old (see the README for the bound).
//   <uuid>, no row   the API was killed between the blob's commit and its
//                    row's insert (or the insert failed and the removal did
//                    not happen): removed once older than orphan_min_age_ms,
//                    which covers the moment between the rename and the row
//                    of an upload being accepted right now, and a Node.js
//                    producer's file adopted by a worker (BlobStore::Adopt
//                    sets its time to the adoption) whose row comes next.
//   <uuid>, final    the worker was killed between the row's final write and
//                    the blob's deletion (the job's next attempt deletes it
//                    too, if the queue still has one): removed at once; a final
//                    row never goes back, so nothing will read that blob.
//   <uuid>, pending  kept: the job has still to run (the reconciler re-adds
//   or processing    a pending row that has no queued job).
//
// Only UUID-named files directly in the directory and *.part files in tmp/
// are ever looked at; a Node.js producer's files under other names are its
// own business until a job adopts them (BlobStore::Adopt renames them to the
// job's blob).
//
// Sweep() runs one pass; a StorageSweeper runs one at Start() and then every
// interval_ms on its own thread. The API and the worker each run one (both
// are safe at once: every removal is idempotent). A database error ends a
// pass early (the blob is kept) and the next pass tries again.
//
// Threads: Sweep blocks (directory reads, SQL); StorageSweeper's methods are
// thread-safe.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>

#include "core/clock.h"
#include "core/error.h"

namespace conveyor::storage {
class BlobStore;
class MetadataStore;
}  // namespace conveyor::storage

namespace conveyor::uploads {

struct SweepSettings {
  int64_t temp_max_age_ms = 3600000;   // STORAGE_TEMP_MAX_AGE_MS
  int64_t orphan_min_age_ms = 600000;  // STORAGE_ORPHAN_MIN_AGE_MS
  int64_t interval_ms = 300000;        // STORAGE_SWEEP_INTERVAL_MS (0: at start-up only)
};

// What one pass did.
struct SweepReport {
  int temps_removed = 0;     // tmp/*.part older than temp_max_age_ms
  int orphans_removed = 0;   // blobs without a row, older than orphan_min_age_ms
  int finals_removed = 0;    // blobs whose row is completed or failed
  int kept = 0;              // blobs of pending or processing rows, or too young
};

// One pass over `blobs` (see the file comment). kUnavailable when the
// directory cannot be listed or the database cannot be read; what was
// removed before the error stays removed.
Result<SweepReport> Sweep(storage::BlobStore& blobs, storage::MetadataStore& store,
                          const SweepSettings& settings, const Clock& clock = SystemClock());

class StorageSweeper {
 public:
  // `blobs` and `store` are not owned and must outlive the sweeper.
  StorageSweeper(SweepSettings settings, storage::BlobStore* blobs, storage::MetadataStore* store);
  ~StorageSweeper();  // Stop()
  StorageSweeper(const StorageSweeper&) = delete;
  StorageSweeper& operator=(const StorageSweeper&) = delete;

  // Runs a pass on the calling thread (start-up), then starts the periodic
  // thread (unless interval_ms is 0).
  void Start();
  // Ends the thread (a pass under way finishes first). Idempotent.
  void Stop();

 private:
  void RunPass();
  void Loop();

  const SweepSettings settings_;
  storage::BlobStore* const blobs_;
  storage::MetadataStore* const store_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace conveyor::uploads
