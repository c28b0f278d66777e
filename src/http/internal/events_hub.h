// File: http/internal/events_hub.h
//
// EventsHub: where the push routes (SSE, WebSocket; sse.cc, websocket.cc)
// learn that a job moved. One hub per API process.
//
// Source. BullMQ's events stream of the queue, `<prefix>:<queue>:events`,
// which every worker (conveyor's or Node's) writes through its Lua scripts:
// `progress` (field `data`: the progress JSON), `completed`, `failed`. The
// hub reads it with XREAD BLOCK on its own Redis connection in its own
// thread, starting at the stream's last entry when the process starts (so
// only what happens from then on is read) and then from the last id it saw.
// Every API process reads the whole stream, so a client is told of its job
// whichever process accepted the upload and whichever worker finished it.
//
// Fan-out. Subscribers register per job id (one owner per job: the routes
// check ownership before they subscribe). An event of a job nobody here
// watches costs one hash lookup. `progress` is delivered from the reader
// thread; `completed` and `failed` make the hub read the job's row once (on
// the blocking pool, through `run_blocking`) and deliver the status route's
// `data` built from it, so what a push client gets equals what polling
// shows. The row is final before the event exists: workers record the row
// first and tell the queue after.
//
// Failures. A lost connection is retried with backoff (the connection's own
// 50 ms .. 2 s, and the reader sleeps as long); once it reads again, the
// current state of every subscribed job is read and delivered (a `status`,
// or the final event), so a final event that fell into the gap is not
// missed. Delivery is at least once: a subscriber may see a final state
// twice (it ends at the first).
//
// Threads: Subscribe/Unsubscribe from any thread; PushSubscriber::Deliver is
// called from the reader thread or the pool, never under the hub's lock.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/error.h"
#include "queue/queue.h"

namespace conveyor::storage {
class MetadataStore;
struct JobStatusRow;
}  // namespace conveyor::storage

namespace conveyor::http {

// One message for push clients.
struct PushEvent {
  enum class Kind { kStatus, kProgress, kCompleted, kFailed };
  Kind kind = Kind::kStatus;
  std::string job_id;
  std::string data;  // JSON object: the status route's `data` for this job
  std::string id;    // the events stream's entry id ("" for a state read)
  // The state's place in a job's life, for ordering and Last-Event-ID:
  // 0 pending, 1 + percent while processing (1..101), kFinalRank when final.
  int rank = 0;
  static constexpr int kFinalRank = 1000;

  bool final() const { return kind == Kind::kCompleted || kind == Kind::kFailed; }
  std::string_view type() const;  // "status", "progress", "completed", "failed"
};

class PushSubscriber {
 public:
  virtual ~PushSubscriber() = default;
  // From any thread; must not block (queue and return).
  virtual void Deliver(std::shared_ptr<const PushEvent> event) = 0;
};

// The status route's `data` object for `row` of job `id` (routes.cc).
std::string JobStatusData(std::string_view id, const storage::JobStatusRow& row);

// The job's current state for `user_id` as an event (kStatus, or kCompleted
// / kFailed when final); nullopt when the job is unknown or someone else's.
// Blocks (a store read).
Result<std::optional<PushEvent>> ReadJobState(storage::MetadataStore& store,
                                              const std::string& job_id,
                                              const std::string& user_id);

// The `data` of a progress event: the worker's progress JSON (a number, or
// an object with `percent`) as the status route shows a processing job;
// nullopt for anything else.
int ProgressPercent(std::string_view progress_json);  // -1: not a progress value
std::optional<std::string> ProgressData(std::string_view job_id, std::string_view progress_json);

class EventsHub {
 public:
  struct Options {
    queue::RedisOptions redis;  // host, port, password, prefix, queue_name
    int64_t block_ms = 1000;    // XREAD BLOCK; also how long Stop() may wait
  };
  using RunBlocking = std::function<void(std::function<void()>)>;

  EventsHub(Options options, storage::MetadataStore* store, RunBlocking run_blocking);
  ~EventsHub();  // Stop()
  EventsHub(const EventsHub&) = delete;
  EventsHub& operator=(const EventsHub&) = delete;

  void Start();  // starts the reader thread
  void Stop();   // idempotent; joins the reader

  // Delivers events of `job_id` (owned by `owner`) to `sub` until
  // Unsubscribe or until `sub` is destroyed.
  void Subscribe(const std::string& job_id, const std::string& owner,
                 const std::shared_ptr<PushSubscriber>& sub);
  void Unsubscribe(const std::string& job_id, const PushSubscriber* sub);

  // Stream id of the last entry read ("" before the first read).
  std::string last_id() const;
  size_t watched_jobs() const;
  // True while the reader has a working connection.
  bool connected() const { return connected_.load(); }

  // Handles one entry of the stream (the reader calls it; public for tests).
  void HandleEntry(const std::string& entry_id,
                   const std::vector<std::pair<std::string, std::string>>& fields);

 private:
  struct Watch {
    std::string owner;
    std::vector<std::pair<const PushSubscriber*, std::weak_ptr<PushSubscriber>>> subs;
  };

  void ReaderLoop();
  // Subscribers of `job_id` (live ones; dead ones are dropped) and its owner.
  std::vector<std::shared_ptr<PushSubscriber>> SubscribersOf(const std::string& job_id,
                                                             std::string* owner);
  void Fanout(const std::string& job_id, const std::shared_ptr<const PushEvent>& e);
  // Reads the job's state on the pool and delivers it to its subscribers.
  void ReadAndDeliver(const std::string& job_id, const std::string& owner,
                      std::optional<PushEvent::Kind> expect, std::string entry_id);
  void Resync();
  bool SleepFor(int64_t ms);  // false when stopping

  const Options options_;
  const std::string stream_key_;
  storage::MetadataStore* store_;
  RunBlocking run_blocking_;

  mutable std::mutex mu_;
  std::unordered_map<std::string, Watch> watches_;
  std::string last_id_;

  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;
  std::atomic<bool> connected_{false};
  std::thread reader_;
};

}  // namespace conveyor::http
