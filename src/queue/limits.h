// File: queue/limits.h
//
// Per-user upload limits held in Redis, so every API process on the same
// Redis enforces one budget per user: uploads per minute, bytes per hour and
// uploads in flight (accepted, not yet final). One Lua script
// (lua/check_limits.lua) per upload, one round trip, atomic.
//
// Design
// ------
// Uploads per minute and bytes per hour are token buckets (capacity = the
// limit, refilled pro rata, so a user may burst up to the limit and then
// goes on at the steady rate) in the hash "<prefix>:conveyor-limits:<user>",
// which expires an hour after its last use. Bytes are the request's
// Content-Length, taken when the upload is let in; a chunked body's size is
// unknown then, so it is let in while the bucket is not in debt and charged
// (ChargeBytes) once its size is known.
//
// In flight is a zset "<prefix>:conveyor-limits:<user>:inflight" of upload
// ids (= job ids), swept on every Reserve instead of being a counter that a
// crash could leak: an upload counts while its job hash exists without
// `finishedOn` (waiting, prioritized, active, retrying), or, before its job
// exists, for `reservation_ms` after it was let in. Each Reserve looks at
// the 4 members seen longest ago (final ones leave, live ones go to the
// back), so the count follows the jobs at a fixed cost, and a user at the
// limit gets a full sweep before a refusal. So the worker needs to do
// nothing; an API process that dies mid-upload holds a slot for at most
// reservation_ms; nothing unseen counts longer than max_in_flight_age_ms.
// An upload refused after it was let in (a bad form, a store error) gives
// its slot back with Release. In flight is tracked even when its limit is
// off: job priorities use it (uploads/priority.h).
//
// The keys share the queue's prefix, so with a hash-tagged prefix ("{bull}")
// they live in the queue's Redis Cluster slot, as the script also reads the
// job hashes.
//
// Threads: all methods block on Redis (a small connection pool) and are safe
// from any thread. Errors: kUnavailable when Redis cannot be reached within
// the limiter's own short timeouts (see OpenRedisUserLimiter); the caller
// decides what an unreachable Redis means (the API lets the upload in; see
// the README).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/error.h"
#include "queue/queue.h"

namespace conveyor::queue {

struct UserLimitSettings {
  int uploads_per_minute = 600;                 // 0: no limit
  int64_t bytes_per_hour = 10LL << 30;          // 0: no limit
  int uploads_in_flight = 1000;                 // 0: no limit
  int64_t reservation_ms = 10 * 60 * 1000;      // an upload without a job yet
  int64_t max_in_flight_age_ms = 24 * 3600 * 1000LL;
};

struct LimitDecision {
  bool allowed = true;
  std::string exceeded;       // "uploads_per_minute", "upload_bytes_per_hour", "uploads_in_flight"
  int64_t retry_after_s = 0;  // >= 1 when refused
  int64_t in_flight = 0;      // the user's uploads in flight before this one (an
                              // over-count by at most the unswept final ones)
};

class UserLimiter {
 public:
  virtual ~UserLimiter() = default;

  // Lets upload `upload_id` of `user` (of `bytes`, 0 if unknown) in, taking
  // one upload, the bytes and an in-flight slot, or refuses it taking
  // nothing.
  virtual Result<LimitDecision> Reserve(const std::string& user, const std::string& upload_id,
                                        int64_t bytes) = 0;

  // Gives back the in-flight slot of an upload that was refused after
  // Reserve let it in (the upload and byte tokens stay taken).
  virtual Result<void> Release(const std::string& user, const std::string& upload_id) = 0;

  // Takes `bytes` from the user's bytes bucket (may put it in debt).
  virtual Result<void> ChargeBytes(const std::string& user, int64_t bytes) = 0;
};

// A UserLimiter over its own connections to `options`' Redis, with the
// timeouts cut to at most 500 ms (connect and command): an upload waits at
// most that long for a Redis that does not answer, and a connection that
// failed is retried only after the reconnect backoff, failing fast in
// between. Never connects at open.
std::unique_ptr<UserLimiter> OpenRedisUserLimiter(const RedisOptions& options,
                                                  const UserLimitSettings& settings);

// The user id as it appears in the limit keys: itself when it holds only
// [A-Za-z0-9._@-] (and is at most 128 bytes), else "~" + its hex, so that no
// id can add a ':' level or a Cluster hash tag.
std::string LimitKeyUser(const std::string& user);

}  // namespace conveyor::queue
