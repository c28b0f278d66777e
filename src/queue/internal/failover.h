// File: queue/internal/failover.h
//
// Where a Redis connection goes, and what it does when that place fails: the
// one policy shared by the blocking connection (redis_connection.h) and the
// event-driven one (async_redis.h), private to the queue module.
//
// Without sentinels (RedisOptions::sentinels empty) the master is
// RedisOptions::host:port, always, and nothing here changes how a connection
// behaves: it only paces reconnects.
//
// With sentinels, the master is whatever the sentinels say it is now. A
// MasterResolver asks them in turn (`SENTINEL get-master-addr-by-name`, the
// sentinel that answered moves to the front, as the Sentinel client guide
// asks), caches the answer and shares it with every connection of the
// process that uses the same sentinels and master name. While it is in use,
// a thread of its own asks them again every kSentinelPollMs, so that a
// failover that breaks no connection (SENTINEL FAILOVER, or any failover
// while the demoted master keeps its clients until the sentinels turn it
// into a replica, seconds later) is noticed too. A connection then:
//   - checks with ROLE, right after AUTH, that the node it reached is a
//     master (a demoted master, or a replica the sentinels have not yet
//     promoted, is not) and gives up on it otherwise;
//   - treats an error reply that means "this node cannot take writes now"
//     (IsFailoverError: READONLY, LOADING, MASTERDOWN, UNBLOCKED) like a lost
//     connection: the call fails with kUnavailable and the socket is closed;
//   - on every lost connection, timeout or such reply, calls Invalidate, so
//     that its next attempt (after ReconnectBackoff's wait) asks the
//     sentinels again, and reloads the scripts on the new master;
//   - before each command, checks Moved(): when the sentinels have named
//     another master since it connected, it closes its connection (calls
//     waiting on it fail with kUnavailable) and the command goes to the new
//     master.
// Calls are never resent here: a lost reply may hide an applied write.
//
// Threads: MasterResolver is thread-safe; Master() may block for up to
// sentinel_timeout_ms per sentinel it asks. ReconnectBackoff is not (each
// connection owns one).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "core/error.h"
#include "queue/queue.h"

namespace conveyor::queue::internal {

inline constexpr int64_t kReconnectBackoffMinMs = 50;
inline constexpr int64_t kReconnectBackoffMaxMs = 2000;
// How often a resolver in use asks the sentinels whether the master moved.
inline constexpr int64_t kSentinelPollMs = 1000;

struct RedisReply;

// The pace of reconnect attempts while Redis stays unreachable: the first
// attempt is immediate, each failed one pushes the next one out by a wait
// that doubles from kReconnectBackoffMinMs to kReconnectBackoffMaxMs.
class ReconnectBackoff {
 public:
  using Clock = std::chrono::steady_clock;

  // True when an attempt may start now; starting one arms the next wait
  // (undone by Succeeded). False inside the wait after a failed attempt.
  bool TryStart(Clock::time_point now);
  // The attempt worked: the next failure waits kReconnectBackoffMinMs again.
  void Succeeded() { backoff_ms_ = 0; }

 private:
  int64_t backoff_ms_ = 0;  // 0: no failure since the last success
  Clock::time_point next_attempt_{};
};

// True when `error` (an error reply) says the node cannot serve the queue's
// writes now because of its role or a failover under way: READONLY (a
// replica, or a master just demoted), LOADING (loading its dataset after a
// restart or a full sync), MASTERDOWN (a replica that lost its master),
// UNBLOCKED (a blocking command cut short by a role change).
bool IsFailoverError(std::string_view error);

// Where the queue's Redis master is, by address or through Sentinel.
class MasterResolver {
 public:
  // The resolver for `options`. With sentinels, one object is shared by
  // every caller with the same sentinel list, master name and sentinel
  // password, so that one connection's discovery serves the others.
  static std::shared_ptr<MasterResolver> For(const RedisOptions& options);

  explicit MasterResolver(const RedisOptions& options);
  // Stops the polling thread.
  ~MasterResolver();
  MasterResolver(const MasterResolver&) = delete;
  MasterResolver& operator=(const MasterResolver&) = delete;

  // True with sentinels: connections then check ROLE and fail over.
  bool follows_sentinels() const { return follows_; }

  // The master to connect to. Without sentinels host:port, always. With
  // sentinels the cached answer, or, when there is none (first use, or
  // Invalidate since), the first sentinel's answer that names one: each
  // sentinel is asked in turn with sentinel_timeout_ms for the connect and
  // for the reply. kUnavailable when none answers with an address.
  Result<RedisAddress> Master();

  // `master` failed (a lost connection, a timeout, a failover error reply,
  // or ROLE says it is no master): unless the cache already names another
  // address, the next Master() asks the sentinels again.
  void Invalidate(const RedisAddress& master);

  // The number of times the master changed; a connection keeps the value
  // it saw when it connected, for Moved.
  uint64_t generation() const { return generation_.load(std::memory_order_acquire); }

  // True when the sentinels named a master other than `at` since `*seen`
  // (a generation); updates `*seen`. One atomic load when nothing changed.
  bool Moved(const RedisAddress& at, uint64_t* seen);

  // OK when `role` (the reply to ROLE) says master; else kUnavailable
  // naming `at` and the role it reported.
  static Status CheckRole(const RedisReply& role, const RedisAddress& at);

  // For messages: "redis host:port" or "redis master <name> at host:port".
  std::string Describe(const RedisAddress& at) const;

 private:
  Result<RedisAddress> AskSentinel(const RedisAddress& sentinel) const;
  // The sentinels' answer, each asked in turn (the one that answers moves
  // to the front). Called with mu_ held.
  Result<RedisAddress> AskSentinels();
  // Records `master` as the current answer (mu_ held).
  void Learn(const RedisAddress& master);
  void Poll();

  std::atomic<uint64_t> generation_{0};
  std::thread poller_;                   // started by the first Master()
  std::condition_variable stop_cv_;
  bool stopping_ = false;                // guarded by mu_

  const RedisAddress fixed_;             // without sentinels
  const bool follows_;
  const std::string master_name_;
  const std::string sentinel_password_;
  const int timeout_ms_;

  std::mutex mu_;                        // one sentinel round at a time
  std::vector<RedisAddress> sentinels_;  // the last one that answered first
  bool known_ = false;                   // master_ is the current answer
  RedisAddress master_;
};

}  // namespace conveyor::queue::internal
