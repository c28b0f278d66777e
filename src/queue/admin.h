// File: queue/admin.h
//
// Operating the queue by hand: counts, failed and dead-letter jobs, retries,
// cleaning, pause and resume. This is what `conveyor queue …` runs, and what
// BullMQ's Queue class (and Bull Board) offers on the same keys: every
// operation writes exactly what bullmq@6.7 writes (docs/queue-format.md), so
// a Node Queue sees a pause made here and the other way round.
//
// The dead-letter queue (RedisOptions::dead_letter_queue_name) holds a copy of
// every finally failed job in its `failed` set; see queue.h (Consumer::Fail).
//
// Threads: every method blocks on Redis and is safe to call from any thread
// (calls are serialised on one connection). Not for socket-serving threads.
//
// Errors: kUnavailable when Redis cannot be reached (the call was not applied,
// or its reply was lost: re-read before retrying a non-idempotent action),
// kInvalidArgument for a malformed id or option, kNotFound / kFailedPrecondition
// as listed per method, kInternal for a script reply that breaks the protocol.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "queue/queue.h"

namespace conveyor::queue {

// A finished job as listings show it.
struct FinishedJob {
  std::string id;
  std::string name;
  std::string failed_reason;  // plain text; empty for a completed job
  int attempts_made = 0;      // atm (or the legacy attemptsMade)
  int64_t finished_on_ms = 0; // epoch ms; 0 if the hash lacks it
  std::string data_json;      // verbatim `data`; "null" if the hash is gone
};

// The finished states Clean() can empty.
enum class FinishedState { kCompleted, kFailed };

// Upper bound of one listing page, so a listing never blocks Redis for long.
inline constexpr int64_t kMaxListCount = 10000;

class QueueAdmin {
 public:
  virtual ~QueueAdmin() = default;

  // Counts per state of the main queue (Queue.getJobCounts).
  virtual Result<JobCounts> Counts() = 0;

  // Number of jobs in the dead-letter queue.
  virtual Result<int64_t> DeadLetterCount() = 0;

  // A page of the main queue's failed set, newest first (Queue.getFailed):
  // `count` jobs from position `start` (0 = newest). kInvalidArgument for a
  // negative start or a count outside 1..kMaxListCount.
  virtual Result<std::vector<FinishedJob>> ListFailed(int64_t start, int64_t count) = 0;

  // The same for the dead-letter queue; attempts_made is the attempts the job
  // had made in the main queue when it failed for good.
  virtual Result<std::vector<FinishedJob>> ListDeadLetters(int64_t start, int64_t count) = 0;

  // Re-runs dead-letter job `id` in the main queue with fresh attempts and
  // deletes the DLQ copy, in one atomic step. If the main queue still holds the
  // job in `failed`, it is reprocessed there (job.retry() with attempts reset:
  // `waiting prev=failed`); if the main job was trimmed away, it is added
  // again with the same id, name and data and conveyor's default JobOptions.
  // kNotFound if there is no such DLQ job; kFailedPrecondition if the main
  // queue holds the job in another state (waiting, active, completed…): the
  // copy is kept then. Paused queues take the job but do not run it.
  virtual Result<void> RetryDeadLetter(const std::string& id) = 0;

  // RetryDeadLetter for every DLQ job (oldest first); returns how many went
  // back to the main queue. Jobs refused with kFailedPrecondition stay in the
  // DLQ and are not counted; any other error stops the pass and is returned.
  virtual Result<int64_t> RetryAllDeadLetters() = 0;

  // Deletes every DLQ job; returns how many.
  virtual Result<int64_t> PurgeDeadLetters() = 0;

  // Moves every job in the main failed set back to wait with its attempts
  // reset (Queue.retryJobs({state:"failed"}) plus job.retry()'s resets), and
  // deletes those jobs' DLQ copies; returns how many.
  virtual Result<int64_t> RetryFailed() = 0;

  // Queue.clean(grace, limit, state): removes, with all their keys, up to
  // `limit` jobs (0 = no limit) of `state` that finished at least `grace_ms`
  // ago, oldest first; emits `cleaned`. Returns the removed ids.
  // kInvalidArgument for a negative grace or limit.
  virtual Result<std::vector<std::string>> Clean(int64_t grace_ms, FinishedState state,
                                                 int64_t limit) = 0;

  // Queue.pause(): sets meta `paused` and deletes the wake-up marker, so no
  // worker (conveyor's or Node's) fetches until Resume; emits `paused`. Jobs
  // being processed finish normally. Idempotent.
  virtual Result<void> Pause() = 0;

  // Queue.resume(): clears the flag, moves any legacy `paused` list into wait,
  // restores the marker; emits `resumed`. Idempotent.
  virtual Result<void> Resume() = 0;

  // Queue.isPaused(): whether meta `paused` is set.
  virtual Result<bool> IsPaused() = 0;
};

// A QueueAdmin over its own Redis connection. Connects once now: kUnavailable
// if Redis cannot be reached (or AUTH fails). Later calls reconnect by
// themselves.
Result<std::unique_ptr<QueueAdmin>> OpenRedisAdmin(const RedisOptions& options);

}  // namespace conveyor::queue
