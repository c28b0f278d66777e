// File: queue/observe.h
//
// Watching the queue from outside the job path: what a metrics scrape reads
// (QueueObserver::Snapshot: job counts per state, the dead-letter queue's
// size and the live workers, in one Lua call, so one round trip) and the
// worker registry (WorkerRegistry: each worker's heartbeat, and the list of
// live ones for `conveyor queue workers`).
//
// Registry keys (same prefix and queue as the jobs, outside BullMQ's names):
//   <prefix>:<queue>:conveyor:workers        zset: worker id -> last beat (ms)
//   <prefix>:<queue>:conveyor:workers:<id>   hash: host, pid, version,
//       concurrency, active, started (ms), last_beat (ms); PEXPIRE ttl_ms
// A beat rewrites the hash, renews its expiry and drops from the zset the
// ids whose last beat is older than ttl_ms; so a worker that dies (no
// graceful Leave) vanishes from listings and counts within ttl_ms.
//
// Threads: each object owns one Redis connection behind a mutex; every
// method blocks on Redis and is thread-safe. Errors: kUnavailable when Redis
// cannot be reached, kInternal for a reply that breaks the protocol.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "queue/queue.h"

namespace conveyor::queue {

struct QueueSnapshot {
  JobCounts counts;
  int64_t dead_letters = 0;  // the dead-letter queue's failed set
  int64_t live_workers = 0;  // registry entries with a beat within ttl_ms
  double round_trip_seconds = 0;  // of the call that read this
};

struct WorkerInfo {
  std::string id;
  std::string host;
  int64_t pid = 0;
  std::string version;
  int64_t concurrency = 0;
  int64_t active = 0;         // jobs running at the last beat
  int64_t started_ms = 0;     // epoch ms
  int64_t last_beat_ms = 0;   // epoch ms
};

// A worker's heartbeat lives this long by default (three missed beats of
// kDefaultBeatIntervalMs).
inline constexpr int64_t kDefaultBeatIntervalMs = 5000;
inline constexpr int64_t kDefaultWorkerTtlMs = 15000;

class QueueObserver {
 public:
  // Registry entries count as live while their beat is within ttl_ms.
  explicit QueueObserver(RedisOptions options, int64_t ttl_ms = kDefaultWorkerTtlMs);
  ~QueueObserver();
  Result<QueueSnapshot> Snapshot();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

class WorkerRegistry {
 public:
  explicit WorkerRegistry(RedisOptions options, int64_t ttl_ms = kDefaultWorkerTtlMs);
  ~WorkerRegistry();
  // Writes `info` (id must be non-empty, without ':'; last_beat_ms is set to
  // now) and renews its expiry. Returns the live workers after the beat.
  Result<int64_t> Beat(const WorkerInfo& info);
  // Removes the entry at once (graceful stop).
  Result<void> Leave(const std::string& id);
  // The live workers, oldest start first.
  Result<std::vector<WorkerInfo>> List();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

// "<host>-<pid>-<8 hex digits>" (no ':'), unique per process start.
std::string NewWorkerId(const std::string& host, int64_t pid);

}  // namespace conveyor::queue
