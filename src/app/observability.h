// File: app/observability.h
//
// Wiring of what operators watch (README "Operations"):
//
//  - QueueMetrics: a collector on the process's metric registry
//    (core/metrics.h) that sets the queue's gauges (jobs per state, dead
//    letters, live workers) from one Lua call to Redis (queue/observe.h) and
//    the Redis and database round-trip gauges; its reading is reused for
//    kQueueMetricsMaxAgeMs, so a scrape storm costs at most one Redis call
//    and one database ping per second.
//  - MetricsServer: the worker's own HTTP endpoint (METRICS_PORT): GET
//    /metrics (Bearer METRICS_TOKEN when set) and GET /healthz. One thread,
//    one connection at a time: enough for a scraper and a health probe.
//  - Heartbeat: the worker's entry in the worker registry, renewed every
//    queue::kDefaultBeatIntervalMs with the busy slot count; removed on Stop.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "core/error.h"
#include "queue/observe.h"
#include "queue/queue.h"

namespace conveyor::storage {
class MetadataStore;
}

namespace conveyor::app {

inline constexpr int64_t kQueueMetricsMaxAgeMs = 1000;

// Registers the collector once per process (later calls do nothing).
// `store` may be null (no database gauge); it must outlive the process's
// last scrape (it is used until exit).
void InstallQueueMetrics(const queue::RedisOptions& options, storage::MetadataStore* store);

class MetricsServer {
 public:
  MetricsServer(std::string bind_address, int port, std::string token);
  ~MetricsServer();  // Stop()
  // Binds and starts serving; returns the bound port (port 0: a free one).
  Result<int> Start();
  void Stop();

 private:
  void Loop();
  void Serve(int fd);
  const std::string bind_address_;
  const int port_;
  const std::string token_;
  int listen_fd_ = -1;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

class Heartbeat {
 public:
  Heartbeat(const queue::RedisOptions& options, int concurrency);
  ~Heartbeat();  // Stop()
  void Start();
  // Ends the beats and removes the entry.
  void Stop();
  const std::string& id() const { return info_.id; }

 private:
  void Loop();
  queue::WorkerRegistry registry_;
  queue::WorkerInfo info_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace conveyor::app
