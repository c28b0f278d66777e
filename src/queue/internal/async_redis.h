// File: queue/internal/async_redis.h
//
// One event-driven Redis connection (a hiredis redisAsyncContext) shared by
// any number of threads, private to the queue module. It owns a Boost.Asio
// io_context and the one thread that runs it; hiredis is only ever touched on
// that thread. hiredis 0.14 has no Asio adapter, so this file brings its own:
// the context's addRead/delRead/addWrite/delWrite/cleanup hooks become
// one-shot async_waits on an asio::posix::stream_descriptor over the
// context's socket, re-armed while hiredis still wants the event.
//
// Pipelining: a call is handed to the I/O thread and appended to hiredis's
// output buffer at once; hiredis writes the buffer when the socket is next
// writable, so calls from several threads that arrive close together leave
// in one write, and their replies come back in one read. A call never waits
// for another call's reply.
//
// Costs per call: the calling thread writes the call in Redis's wire format
// (EvalCommand, one buffer), so the I/O thread only copies it out; replies
// are built by hiredis's reader straight into RedisReply trees (custom
// object functions), which the caller gets by move.
//
// Failure model (as RedisConnection's, redis_connection.h): the connection is
// made on first use and after each loss, no sooner than a backoff that
// doubles from kReconnectBackoffMinMs to kReconnectBackoffMaxMs while Redis
// stays down; calls in the backoff window fail fast with kUnavailable. It
// goes where MasterResolver (failover.h) says: with sentinels, each
// (re)connection asks them when the last one failed, checks ROLE, and a
// failover error reply (READONLY…) ends the connection and fails the calls
// still waiting with kUnavailable. Each (re)connection sends AUTH, ROLE
// (with sentinels), CLIENT SETNAME and SCRIPT LOAD of every script before
// the first call, in the same write. A call whose reply does not come
// within command_timeout_ms (connect_timeout_ms more while connecting) drops
// the connection; every call still waiting then fails with kUnavailable.
// Calls are never resent: a lost reply may hide an applied write. A script
// the server lost (NOSCRIPT: restart, SCRIPT FLUSH) is run once more with
// EVAL, which also loads it.
//
// Threads: every public method is thread-safe. The blocking ones wait for the
// I/O thread and must not be called from a completion callback.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "core/error.h"
#include "queue/internal/eval_command.h"
#include "queue/internal/redis_connection.h"
#include "queue/queue.h"

namespace conveyor::queue::internal {

class AsyncRedis {
 public:
  using Replies = std::vector<Result<RedisReply>>;
  using Done = std::function<void(Replies)>;

  // Starts the I/O thread; connects on first use.
  explicit AsyncRedis(RedisOptions options);
  // Fails every call still waiting (kUnavailable) and joins the I/O thread.
  ~AsyncRedis();
  AsyncRedis(const AsyncRedis&) = delete;
  AsyncRedis& operator=(const AsyncRedis&) = delete;

  // Sends every call (EVALSHA each) at once; `done` runs on the I/O thread
  // with one result per call, in order, once the last reply is in. Error
  // replies become kInternal, as in RedisConnection::Eval.
  void EvalAsync(std::vector<EvalCommand> calls, Done done);

  // EvalAsync, waiting for the replies.
  Replies EvalPipeline(std::vector<EvalCommand> calls);
  Result<RedisReply> Eval(EvalCommand call);

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace conveyor::queue::internal
