// File: worker/outcome.h
//
// What running one job came to (JobRunner::Run, job_runner.h) and the one
// place that records it (OutcomeApplier::Apply). The runner makes no queue
// call; the applier writes the row, then settles the job's stored upload,
// then tells the queue. Row before queue: a client that sees a job finished
// in BullMQ also sees it finished in the row; if the queue call then fails
// (lock lost, Redis down) the job may run again, which is safe because
// processing is idempotent.
//
//   outcome            row                  upload (blob <job id>)  queue
//   Completed          memory + completed   deleted                 Complete (or CompleteAndFetch)
//   Retry              pending              kept                    Fail(retry): delayed with backoff
//     on the last      failed               deleted                 Fail(final): failed + dead-letter copy
//     attempt
//   Fail               failed               deleted                 Fail(final): failed + dead-letter copy
//     row not written  (pending: db down)   kept                    - (lock lapses; the stalled check
//                                                                   puts the job back)
//     without a row    -                    -                       Fail(final)
//   AlreadyFinished    (final already)      deleted                 Complete with the row's result, or
//                                                                   Fail(final) with the row's error
//   Abandoned          -                    -                       - (Stop() released the job)
//
// Whether a Retry is retried is decided here and only here: while attempts
// remain (queue::ShouldRetry on the attempts the job had when fetched) and
// the job carries no deferred failure; otherwise it fails for good. A
// Completed whose row cannot be written becomes a Retry, except when the
// store answers kAborted (another run of the job committed its memory at the
// same time) and the row is completed: then it ends as AlreadyFinished with
// that run's result. Only the job's own
// blob is ever deleted (by job id, never a path from the job data).
//
// Threads: Apply is blocking and thread-safe (the worker's slots pass the
// one Consumer they share; its calls are pipelined on one connection).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>

#include "core/error.h"
#include "queue/job.h"
#include "storage/job_record.h"
#include "storage/metadata_store.h"

namespace conveyor::storage {
class BlobStore;
}  // namespace conveyor::storage
namespace conveyor::queue {
class Consumer;
}  // namespace conveyor::queue

namespace conveyor::worker {

// The job succeeded; its memory chunks and result are still to be recorded.
struct Completed {
  storage::JobCompletion completion;  // completion.result_json goes to the queue too
};

// A transient error (IsTransient, or a job out of JOB_TIMEOUT_MS): another
// attempt may succeed.
struct Retry {
  Status why;  // its message is the client's error if this was the last attempt
};

// A permanent error: no attempt will do better.
struct Fail {
  Status why;           // its message is the client's error ("" = "Invalid file format")
  bool has_row = true;  // false: a producer's job refused before a row was written
};

// The row was final before this attempt (an earlier run finished the job but
// the queue was not told): only the queue is told, nothing runs again.
struct AlreadyFinished {
  bool completed = false;
  std::string result_json;  // completed: the row's result
  std::string error;        // failed: the row's error
};

// The worker stopped mid-job and has released it: nothing is recorded.
struct Abandoned {};

using Outcome = std::variant<Completed, Retry, Fail, AlreadyFinished, Abandoned>;

// "completed", "retry", "fail", "already_finished", "abandoned" (logs, tests).
const char* OutcomeName(const Outcome& outcome);

class OutcomeApplier {
 public:
  // `store` and `blobs` are not owned and must outlive the applier.
  OutcomeApplier(storage::MetadataStore* store, storage::BlobStore* blobs);

  // Where the slot's next job comes from: leased in the same round trip as a
  // completion (Consumer::CompleteAndFetch).
  struct NextLease {
    std::string token;
    int64_t lock_ms = 0;
  };

  struct Applied {
    bool finished = false;                 // the job completed or failed for good
    std::optional<queue::ActiveJob> next;  // leased with the completion (only with a NextLease)
    // Nothing was recorded: the run met an outage (see `wait_outage`) and
    // the caller, which still holds the job's lease, runs it again later.
    bool outage = false;
  };

  // Records `outcome` of `job` (see the table above). With `next`, a
  // completion in the queue also leases the next job. Errors of the row and
  // queue calls are logged, never returned: the job's fate is then decided
  // by its lock (stalled recovery) or by the next attempt. With
  // `wait_outage`, a Retry whose cause is an outage (kUnavailable: the
  // database, Redis or the analysis provider unreachable) is not recorded
  // and comes back as Applied::outage, so that an outage does not use up
  // the job's attempts.
  Applied Apply(queue::Consumer& consumer, const queue::ActiveJob& job, Outcome outcome,
                const NextLease* next = nullptr, bool wait_outage = false) const;

 private:
  Applied TellCompleted(queue::Consumer& consumer, const queue::ActiveJob& job,
                        const std::string& result_json, const NextLease* next) const;
  void TellFailed(queue::Consumer& consumer, const queue::ActiveJob& job,
                  const std::string& message, const std::string& stack) const;
  void RemoveBlob(const queue::ActiveJob& job) const;

  storage::MetadataStore* const store_;
  storage::BlobStore* const blobs_;
};

}  // namespace conveyor::worker
