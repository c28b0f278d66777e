// File: worker/worker.h
//
// The worker: leases jobs from the BullMQ queue, runs processing::Run on the
// stored file, and records the outcome in the job row and in the queue.
//
//   Fetch (lease + lock) -> row processing -> extraction in a sandboxed child
//   (RunSandboxed) -> analysis (Analyzer) -> memory chunks + cross-upload references
//     ok                 -> memory chunks + row completed -> queue Complete
//     permanent error    -> row failed  -> queue Fail(no retry) (dead-letter copy)
//     transient error    -> row pending -> queue Fail(retry with backoff), or on
//                           the last attempt: row failed -> queue Fail(final)
//   The stored upload is deleted once the job is final.
//
// Each job goes through two pieces, usable on their own: JobRunner
// (job_runner.h) runs it to an Outcome without any queue call, and
// OutcomeApplier (outcome.h) records that outcome (row, upload, queue) and
// alone decides whether a transient error is retried or, on the last
// attempt, dead-lettered. A job's cost: one statement takes the row
// (MetadataStore::ClaimJob), the row's progress is written at two coarse
// stages, one transaction records memory and result (CompleteJob); in Redis,
// one round trip per progress stage (progress event + log line pipelined)
// and one that completes the job and leases the next.
//
// Threads: `concurrency` slot threads, each running one job at a time
// (JobRunner::Run blocks its slot); one housekeeping thread that renews the
// locks of running jobs every lock_ms/2, runs BullMQ's stalled check every
// stalled_interval_ms, and re-adds pending rows that have no queued job (the
// reconciler) every reconcile_interval_ms. They share one queue::Consumer
// (the factory is called once): the Redis one keeps one event-driven
// connection (hiredis async, on an Asio thread of its own) on which every
// fetch, completion, failure, progress report and lock renewal of every slot
// is pipelined, and one blocking connection for the wait on the queue's
// marker (BZPOPMIN), which all idle slots share. Redis connections per worker:
// two, whatever the concurrency.
//
// Delivery is at-least-once and processing is idempotent, keyed by job id:
// the file id is derived from the job id and memory chunks are replaced, so a
// job run twice leaves the same rows behind.
//
// Failures of Redis or the database are survived: calls fail with
// kUnavailable, the loop backs off (capped at kMaxBackoffMs) and retries.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "core/error.h"
#include "processing/analyzer.h"
#include "processing/processing.h"
#include "worker/references.h"
#include "worker/sandbox.h"

namespace conveyor::storage {
class MetadataStore;
class BlobStore;
}  // namespace conveyor::storage
namespace conveyor::queue {
class Queue;
class Consumer;
}  // namespace conveyor::queue

namespace conveyor::worker {

struct WorkerSettings {
  int concurrency = 2;                    // jobs processed at once
  int64_t lock_ms = 30000;                // job lock duration (renewed every lock_ms/2)
  int64_t stalled_interval_ms = 30000;    // period of the stalled check
  int64_t reconcile_interval_ms = 30000;  // period of the pending-row reconciler
  int64_t shutdown_grace_ms = 10000;      // running jobs may finish in this time on Stop()
  int64_t processing_delay_ms = 0;        // fault injection for tests: pause before each job
  int64_t job_timeout_ms = 0;             // whole-job wall clock; 0: no limit beyond the sandbox's
  // A job whose run meets an outage (kUnavailable: the database or Redis
  // unreachable) keeps its lease and runs again after a backoff, for up to
  // this long, before the outage is recorded as a failed attempt; so an
  // outage does not use up a job's attempts. 0: it always does.
  int64_t outage_wait_ms = 600000;
  processing::Limits limits;
  SandboxSettings sandbox;                // extraction runs in a `conveyor extract` child
  processing::AnalyzerSettings analyzer;  // local (default) or an OpenAI-compatible provider
  ReferenceSettings references;           // earlier files of the session sharing key terms
};

using ConsumerFactory = std::function<Result<std::unique_ptr<queue::Consumer>>()>;

class Worker {
 public:
  // `store`, `blobs` and `producer` are not owned and must outlive the worker.
  // `producer` is used by the reconciler to re-add jobs.
  Worker(WorkerSettings settings, storage::MetadataStore* store, storage::BlobStore* blobs,
         queue::Queue* producer, ConsumerFactory consumer_factory);
  ~Worker();  // Stop() + join
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Starts the slot and housekeeping threads. If the consumer cannot be
  // opened yet, the threads keep retrying, so Start() itself does not fail on
  // a Redis outage.
  void Start();

  // Graceful stop: no new fetches; running jobs get shutdown_grace_ms to
  // finish; jobs still running then are released back to the queue (so they
  // are picked up at once, not after a lock expiry). Returns when all threads
  // have ended. Idempotent, thread-safe.
  void Stop();

  // Jobs finished (completed or failed for good) by this worker so far.
  int64_t finished() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace conveyor::worker
