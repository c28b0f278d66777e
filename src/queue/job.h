// File: queue/job.h
//
// The job lifecycle, in BullMQ's own terms (see docs/queue-format.md and
// ../shared/reference/bullmq-wire-format.md for the Redis layout).
//
// States (each a Redis key under "<prefix>:<queue>:"):
//   wait         ready, FIFO list; workers take from the tail
//   prioritized  ready with priority > 0 (zset, score = priority * 2^32 + pc);
//                served after `wait`, lowest score first, except for
//                conveyor's aging turn (lua/move_to_active.lua)
//   delayed      waiting for a due time (zset, score = due_ms * 4096 + seq);
//                retries with backoff park here
//   active       leased by a worker holding "<id>:lock" (token, PX lock_ms)
//   completed    finished (zset, score = finishedOn); trimmed to removeOnComplete
//   failed       finished with an error (zset); trimmed to removeOnFail
//   + the dead-letter queue "<prefix>:file-upload-dlq", a BullMQ queue of its
//     own that receives a copy of every job whose last attempt failed.
//
// Timestamps in the job hash (all wall-clock epoch ms, written by the client):
//   timestamp    when the job was added
//   processedOn  when the latest attempt started
//   finishedOn   when it completed or failed for good
//   lock expiry  "<id>:lock" PTTL; renewed every lock_ms/2 by the worker; a job
//                whose lock lapsed is "stalled" and is put back at the front of
//                wait by the next stalled check (at most RedisOptions::max_stalled_count times,
//                after that it carries `defa` and the next fetch fails it).
// Counters: ats = attempts started, atm = attempts made (finished or retried),
// stc = times recovered as stalled.
//
// Delivery is at-least-once: a job may run again after a crash, so processing
// is idempotent, keyed by job id.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace conveyor::queue {

// Default job options (the seed's defaultJobOptions).
inline constexpr int kMaxAttempts = 3;                // opts.attempts
inline constexpr int64_t kBackoffBaseMs = 5000;       // exponential backoff start
inline constexpr int kRemoveOnComplete = 1000;        // completed jobs kept
inline constexpr int kRemoveOnFail = 1000;            // failed jobs kept
inline constexpr int kMaxStalledCount = 1;            // BullMQ's maxStalledCount; workers: a setting
inline constexpr int kMaxLenEvents = 10000;           // events stream ~MAXLEN
inline constexpr const char* kJobName = "file-upload";
inline constexpr const char* kDeadLetterQueueName = "file-upload-dlq";

enum class BackoffType { kFixed, kExponential };

struct JobOptions {
  int attempts = kMaxAttempts;
  BackoffType backoff_type = BackoffType::kExponential;
  int64_t backoff_delay_ms = kBackoffBaseMs;
  // Retention: -1 keeps everything, 0 removes at once, n keeps the newest n.
  int remove_on_complete = kRemoveOnComplete;
  int remove_on_fail = kRemoveOnFail;
  // Delay before the job becomes ready (0 = ready now).
  int64_t delay_ms = 0;
  // BullMQ priority: 0 = none (the `wait` list, served before any
  // prioritized job), else 1..kMaxPriority in the `prioritized` zset, 1 first.
  int priority = 0;
  // conveyor's aging (not BullMQ's; never in opts JSON): a prioritized job
  // waiting longer than this joins the aging turn of move_to_active.lua,
  // which serves the longest overdue job on every second fetch from
  // `prioritized`. 0 = never.
  int64_t aging_ms = 0;
};

// Highest BullMQ priority value (2^21 - 1; Node's Queue.add refuses more).
inline constexpr int kMaxPriority = 2097151;

// The wait before retry number `attempts_made` (1 = first retry), BullMQ's
// arithmetic: fixed -> delay; exponential -> round(2^(n-1) * delay).
int64_t BackoffDelayMs(BackoffType type, int64_t delay_ms, int attempts_made);

// True when a failed attempt should be retried: the error is transient and
// attempts_made + 1 < attempts (BullMQ's rule, attempts_made read at fetch).
bool ShouldRetry(int attempts_made_before, int attempts, bool transient);

// A job as a worker holds it after a fetch.
struct ActiveJob {
  std::string id;
  std::string name;
  std::string data_json;   // verbatim `data`
  std::string opts_json;   // verbatim `opts` (lenient JSON; see the format doc)
  std::string token;       // lock token this worker holds
  int64_t timestamp_ms = 0;
  int attempts_made = 0;     // atm at fetch
  int attempts_started = 0;  // ats after this fetch
  int stalled_count = 0;     // stc
  // `defa`: set when the job stalled too often; the worker must fail it at once.
  std::optional<std::string> deferred_failure;
  // Parsed from opts_json with defaults for what is absent.
  JobOptions options;
};

}  // namespace conveyor::queue
