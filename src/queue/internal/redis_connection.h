// File: queue/internal/redis_connection.h
//
// A small synchronous Redis client over hiredis, private to the queue module.
// One RedisConnection is one socket; it is NOT thread-safe (callers serialise
// access, e.g. with a mutex or a pool).
//
// Failure model: any I/O error, timeout or protocol error drops the socket
// (its state is unknown) and the call returns kUnavailable. The next call
// reconnects, but no sooner than a backoff that doubles from
// kReconnectBackoffMinMs to kReconnectBackoffMaxMs while Redis stays down
// (ReconnectBackoff, failover.h); calls inside the backoff window fail fast
// with kUnavailable. Commands are never resent automatically: a write may
// have been applied before the reply was lost, so retrying is the caller's
// decision.
//
// Where it connects: MasterResolver (failover.h). With sentinels, each
// connection checks ROLE, and an error reply that means "not a master now"
// (IsFailoverError) drops the socket and fails the call with kUnavailable
// like a lost connection; every drop sends the next attempt back to the
// sentinels. Without sentinels such replies are ordinary error replies.
//
// A Redis error reply is not a failure of the call: it comes back as a
// RedisReply of type kError.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "queue/internal/failover.h"
#include "queue/internal/scripts.h"
#include "queue/queue.h"

struct redisContext;
struct redisReply;

namespace conveyor::queue::internal {

// A parsed reply, owning its data (hiredis replies are freed at once).
struct RedisReply {
  enum class Type { kNil, kString, kStatus, kInteger, kArray, kError };
  Type type = Type::kNil;
  std::string str;      // kString, kStatus, kError
  long long integer = 0;  // kInteger
  std::vector<RedisReply> elements;  // kArray

  bool is_nil() const { return type == Type::kNil; }
  bool is_error() const { return type == Type::kError; }
  bool is_array() const { return type == Type::kArray; }
};

// A hiredis reply as a RedisReply (a deep copy).
RedisReply ConvertReply(const redisReply* reply);

class RedisConnection {
 public:
  explicit RedisConnection(RedisOptions options);
  ~RedisConnection();
  RedisConnection(const RedisConnection&) = delete;
  RedisConnection& operator=(const RedisConnection&) = delete;

  // Runs one command (binary-safe arguments) with the command timeout.
  Result<RedisReply> Command(const std::vector<std::string>& argv);

  // Runs a command that blocks in Redis for up to `block_ms` (BZPOPMIN…); the
  // socket timeout is stretched by that much for this call only.
  Result<RedisReply> BlockingCommand(const std::vector<std::string>& argv, int64_t block_ms);

  // EVALSHA of `script`; on NOSCRIPT (a restarted or flushed server) loads the
  // script and runs it once more. An error reply from the script becomes
  // kInternal; everything else is returned as is.
  Result<RedisReply> Eval(const Script& script, const std::vector<std::string>& keys,
                          const std::vector<std::string>& args);

  // One script call of a pipeline.
  struct EvalCall {
    const Script* script;
    std::vector<std::string> keys;
    std::vector<std::string> args;
  };

  // Sends every call in one write and reads the replies in order: one round
  // trip for all. A call whose script the server lost (NOSCRIPT) is run again
  // on its own after loading it. Error replies become kInternal, as in Eval.
  // A connection lost midway fails (kUnavailable) the calls whose replies
  // had not arrived; the others keep theirs.
  std::vector<Result<RedisReply>> EvalPipeline(const std::vector<EvalCall>& calls);

  // Connects now if not connected (respecting the backoff).
  Result<void> EnsureConnected();
  bool connected() const { return ctx_ != nullptr; }

 private:
  Result<RedisReply> Run(const std::vector<std::string>& argv, int64_t extra_timeout_ms);
  // Runs one setup command of a new connection; an error reply fails it.
  Result<RedisReply> Setup(const std::vector<std::string>& argv, const char* what);
  Status DropWithError(const std::string& what);
  // With sentinels: a failover error reply drops the connection (kUnavailable).
  Result<RedisReply> CheckFailover(RedisReply reply);
  // With sentinels: closes a connection to a master the sentinels replaced.
  void LeaveIfMoved();
  void Disconnect();
  std::string Where() const { return resolver_->Describe(endpoint_); }

  RedisOptions options_;
  std::shared_ptr<MasterResolver> resolver_;
  RedisAddress endpoint_;  // of the live connection, or the last one tried
  uint64_t generation_ = 0;  // the resolver's, seen when it connected (Moved)
  redisContext* ctx_ = nullptr;
  ReconnectBackoff backoff_;
};

}  // namespace conveyor::queue::internal
