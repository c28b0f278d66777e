// File: queue/queue.h
//
// The queue as the rest of conveyor sees it. Delivery guarantee: at-least-once.
// A job added here is in Redis (and so in its AOF) when Add returns; a worker
// that dies mid-job loses its lock and the job is recovered as stalled.
//
// The Redis layout is BullMQ's (current npm major), so Node's `bullmq` Queue,
// Worker, QueueEvents and Bull Board work on the same queue unchanged.
// Key layouts and Lua scripts live in redis_queue.cc and lua/, never here;
// docs/queue-format.md describes them.
//
// Threads: all methods block on Redis and are safe to call from any thread
// concurrently (implementations keep a connection pool or pipeline the calls
// on one connection). Never call them on a socket-serving thread.
//
// Errors: kUnavailable when Redis cannot be reached (after the connection's
// timeout) or, with Sentinel, while no master answers or a call met a node
// that is no master (internal/failover.h), kInvalidArgument for ids BullMQ refuses, kFailedPrecondition when
// a lock was lost (the job belongs to someone else now), kInternal for a
// script reply that breaks the protocol.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/error.h"
#include "queue/job.h"

namespace conveyor::queue {

// A Redis server or sentinel.
struct RedisAddress {
  std::string host;
  int port = 0;
  bool operator==(const RedisAddress&) const = default;
};

struct RedisOptions {
  std::string host = "localhost";
  int port = 6379;
  std::string password;           // empty: no AUTH (of the master, with sentinels)
  // Redis Sentinel. When `sentinels` is not empty, host and port are not
  // used: every connection asks these sentinels for the master named
  // `sentinel_master`, checks with ROLE that it is one, and follows a
  // failover by asking again whenever its connection breaks, times out or
  // meets a replica's READONLY (internal/failover.h).
  std::vector<RedisAddress> sentinels;
  std::string sentinel_master;
  std::string sentinel_password;  // AUTH of the sentinels; empty: none
  int sentinel_timeout_ms = 1000;  // connect, and reply, per sentinel asked
  int connect_timeout_ms = 2000;  // per connection attempt
  int command_timeout_ms = 5000;  // per non-blocking command
  std::string prefix = "bull";    // BullMQ key prefix
  std::string queue_name = "file-upload";
  // Queue (same prefix) that receives a copy of every finally failed job, in
  // its `failed` set, without retention. For Redis Cluster put a hash tag in
  // `prefix` ("{bull}") so both queues share a slot.
  std::string dead_letter_queue_name = kDeadLetterQueueName;
  // Connect once in Open* so that a wrong host or password is reported at
  // start-up. Long-running processes turn this off: they must start (and
  // keep serving) while Redis is down, and connect on first use instead.
  bool connect_at_open = true;
  // CLIENT SETNAME of the connection ("" = none). Consumers name their
  // blocking connection "<prefix>:<base64(queue_name)>" as Node's Worker does,
  // which is how Queue.getWorkers() and Bull Board's Workers panel find them.
  std::string client_name;
  // Times the stalled check (Consumer::RecoverStalled) puts back a job whose
  // lock lapsed before it fails it; BullMQ's maxStalledCount (default 1).
  int max_stalled_count = kMaxStalledCount;
};

// Counts per BullMQ state (Queue.getJobCounts).
struct JobCounts {
  int64_t wait = 0, active = 0, delayed = 0, prioritized = 0, completed = 0, failed = 0,
          paused = 0, waiting_children = 0;
};

// One job for Queue::AddMany: the arguments of Queue::Add.
struct JobToAdd {
  std::string id;
  std::string name;
  std::string data_json;
  JobOptions opts;
};

// Producer side.
class Queue {
 public:
  virtual ~Queue() = default;

  // Adds job `id` named `name` with `data_json` (valid JSON). Returns true if
  // added, false if a job with that id already exists (a no-op, as in BullMQ).
  virtual Result<bool> Add(const std::string& id, const std::string& name,
                           const std::string& data_json, const JobOptions& opts) = 0;

  // Adds every job as Add would, in one round trip to Redis (pipelined: all
  // the commands are written, then all the replies read). One result per
  // job, in order. A connection lost midway fails every job whose reply did
  // not arrive (kUnavailable); adding them again is safe (Add is idempotent
  // by id). The default runs Add for each job.
  virtual std::vector<Result<bool>> AddMany(const std::vector<JobToAdd>& jobs) {
    std::vector<Result<bool>> out;
    out.reserve(jobs.size());
    for (const JobToAdd& j : jobs) out.push_back(Add(j.id, j.name, j.data_json, j.opts));
    return out;
  }

  // True if Redis holds a job hash for `id` (in any state).
  virtual Result<bool> Exists(const std::string& id) = 0;

  virtual Result<JobCounts> Counts() = 0;

  // Round trip for /readyz.
  virtual Result<void> Ping() = 0;
};

// What a worker does to a job it holds. Every call that moves the job out of
// `active` checks the lock token: kFailedPrecondition if the lock is gone or
// owned by another token (the job was recovered as stalled elsewhere).
class Consumer {
 public:
  virtual ~Consumer() = default;

  // Blocks up to `timeout_ms` for the wake-up marker (BZPOPMIN on the marker
  // zset). Returns true when a job may be ready now, including when a delayed
  // job (learnt from the marker or from an empty Fetch) falls due; false on
  // timeout (fetching anyway then is cheap and covers a lost marker).
  // Spurious wake-ups are fine. Concurrent callers share one wait: those that
  // come while another blocks wait for its answer, so a wake-up wakes all.
  virtual Result<bool> WaitForWork(int64_t timeout_ms) = 0;

  // Promotes due delayed jobs, then leases the next ready job with `token`
  // for `lock_ms` (BullMQ's moveToActive). nullopt when none is ready or the
  // queue is paused (meta `paused`). A job whose deferred_failure is set must
  // be failed at once without processing it.
  virtual Result<std::optional<ActiveJob>> Fetch(const std::string& token, int64_t lock_ms) = 0;

  // Renews the lock of each held job; returns those of `jobs` whose lock is
  // gone or owned by another token (a worker may hold two leases of one job
  // id when one of them lapsed: only the lapsed one is returned).
  virtual Result<std::vector<ActiveJob*>> ExtendLocks(const std::vector<ActiveJob*>& jobs,
                                                      int64_t lock_ms) = 0;

  // Completes the job with `return_json` (valid JSON), applying the job's
  // removeOnComplete retention.
  virtual Result<void> Complete(const ActiveJob& job, const std::string& return_json) = 0;

  // Complete(job) and Fetch(next_token, lock_ms) in one round trip to Redis
  // (the two scripts are pipelined; each is atomic on its own). What a busy
  // worker calls after each job: it halves the queue's round trips per job.
  struct CompleteAndFetchResult {
    Result<void> completed;
    Result<std::optional<ActiveJob>> next;
  };
  virtual CompleteAndFetchResult CompleteAndFetch(const ActiveJob& job,
                                                  const std::string& return_json,
                                                  const std::string& next_token,
                                                  int64_t lock_ms) = 0;

  // Records a failed attempt. `reason` is plain text (failedReason); `stack`
  // is appended to the job's stacktrace array ("" appends nothing). When
  // `retry` and ShouldRetry(job.attempts_made, job.options.attempts) and the
  // job carries no deferred_failure, the job goes to delayed after
  // BackoffDelayMs(.., attempts_made + 1), or straight back to wait for a 0
  // delay (no `failed` event). Otherwise it fails for good: it enters
  // `failed` (removeOnFail applies), emits `failed` (+ `retries-exhausted`
  // when attempts ran out) and, in the same atomic step, is copied to the
  // dead-letter queue's `failed` set.
  virtual Result<void> Fail(const ActiveJob& job, const std::string& reason,
                            const std::string& stack, bool retry) = 0;

  // Progress as JSON (a number 0..100 or an object); writes the hash field and
  // the `progress` event. No lock check (as in BullMQ); kNotFound if the job
  // hash is gone.
  virtual Result<void> UpdateProgress(const std::string& id, const std::string& progress_json) = 0;

  // Appends a line to the job's log list. kNotFound if the job is gone.
  virtual Result<void> AddLog(const std::string& id, const std::string& line) = 0;

  // UpdateProgress(id, progress_json) and AddLog(id, log_line) in one round
  // trip to Redis and one script (report_progress.lua, atomic): what a
  // worker calls at each stage of a job. kNotFound, and nothing written, if
  // the job is gone. This default makes the two calls one after the other.
  virtual Result<void> ReportProgress(const std::string& id, const std::string& progress_json,
                                      const std::string& log_line) {
    auto progress = UpdateProgress(id, progress_json);
    auto log = AddLog(id, log_line);
    return progress ? log : progress;
  }

  // ReportProgress without waiting for its answer: the worker's slots post
  // each stage and go on. Calls made afterwards on this consumer reach Redis
  // after it (one pipelined connection), so a job's completion always
  // follows its progress. A failure is logged only (spdlog debug), as a
  // progress report never decides a job's fate. This default waits.
  virtual void PostProgress(const std::string& id, const std::string& progress_json,
                            const std::string& log_line) {
    (void)ReportProgress(id, progress_json, log_line);
  }

  // BullMQ's stalled check (throttled by `<Q>:stalled-check` for
  // `stalled_interval_ms`; a throttled call returns nothing). Two passes: a
  // call recovers the jobs marked by the previous one whose lock has lapsed
  // (stc+1, back at the front of wait, `defa` past kMaxStalledCount), then
  // marks every active job. Returns the ids put back in wait.
  virtual Result<std::vector<std::string>> RecoverStalled(int64_t stalled_interval_ms) = 0;

  // Gives a held job back at once (graceful shutdown): releases the lock and
  // puts it at the front of wait, as a stalled recovery would.
  virtual Result<void> Release(const ActiveJob& job) = 0;
};

// A Queue over Redis with a small internal connection pool. Connects once
// (AUTH, script load) to report a bad address or password at start-up:
// kUnavailable if that fails. Later calls reconnect by themselves.
Result<std::unique_ptr<Queue>> OpenRedisQueue(const RedisOptions& options);

// A Consumer over its own two Redis connections, meant to be shared by every
// slot of a worker: one event-driven connection (hiredis async on an Asio
// thread of its own) pipelines every command of every caller, the other
// carries the BZPOPMIN of WaitForWork. Reconnects with backoff (50 ms doubling to 2 s) when Redis goes away; calls
// made while it is down return kUnavailable and are not resent (a lost reply
// may hide an applied move; retry at the worker level). kUnavailable from
// Open if Redis cannot be reached now.
Result<std::unique_ptr<Consumer>> OpenRedisConsumer(const RedisOptions& options);

}  // namespace conveyor::queue
