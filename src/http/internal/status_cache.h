// File: http/internal/status_cache.h
//
// StatusCache: the status route's answers for jobs in a final state
// (completed or failed), so clients polling a finished job are answered
// without the database. Per process, bounded, and short-lived by design.
//
// What is kept: per job id, the owner (the row's user id) and the whole
// response body, exactly as the handler built it from the row (so a hit is
// byte for byte what a miss answers). Only final rows are stored by the
// caller; pending and processing rows change within seconds and always go
// to the database.
//
// Why a TTL and not invalidation: a final row changes rarely, but it can
// change behind this process's back: the worker's MetadataStore::MarkPending
// (a retry scheduled by another attempt of the same job) puts a row back to
// pending, an operator may edit or delete rows, and cleanup removes them; all
// of that happens in other processes. So an entry is used for at most
// `ttl_ms` after the row was read (STATUS_CACHE_TTL_MS, default 1 s): a
// change shows within that time, as if the client had polled a little
// earlier. Ownership needs no TTL: a job id is a random UUID that is never
// given to another user, so an entry answers another user's lookup with the
// same "not found" the database would give.
//
// Bounds: at most `max_entries` entries and `max_bytes` bytes, counting the
// key, owner, body and kEntryOverheadBytes per entry; the least recently used
// entry goes first. An entry larger than `max_bytes` is not kept. With
// max_entries, max_bytes or ttl_ms at 0 the cache keeps nothing.
//
// Thread-safe: one mutex; the critical section is a hash lookup and a copy
// of the body (a few hundred bytes).
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "core/clock.h"

namespace conveyor::http {

class StatusCache {
 public:
  struct Options {
    size_t max_entries = 10000;
    size_t max_bytes = 16 << 20;
    int64_t ttl_ms = 1000;
  };
  // Bookkeeping counted per entry on top of its strings (list and hash
  // nodes, string headers).
  static constexpr size_t kEntryOverheadBytes = 160;

  explicit StatusCache(Options options, const Clock& clock = SystemClock());

  enum class Found {
    kMiss,        // no live entry: ask the database
    kHit,         // the owner asked: *body holds the answer
    kOtherOwner,  // the job belongs to someone else: answer "not found"
  };
  Found Lookup(std::string_view job_id, std::string_view user_id, std::string* body);

  // Keeps `body` as the answer for `job_id` owned by `owner` for ttl_ms from
  // now (replacing an entry of the same id), evicting the least recently
  // used entries to stay within the bounds.
  void Insert(std::string_view job_id, std::string_view owner, std::string_view body);

  bool enabled() const { return enabled_; }
  size_t size() const;
  size_t bytes() const;

  static size_t EntryBytes(std::string_view job_id, std::string_view owner,
                           std::string_view body) {
    return job_id.size() + owner.size() + body.size() + kEntryOverheadBytes;
  }

 private:
  struct Entry {
    std::string id;
    std::string owner;
    std::string body;
    int64_t expires_ms;  // monotonic; used while now < expires_ms
    size_t bytes;
  };
  using List = std::list<Entry>;  // most recently used first

  // Requires mu_.
  void EraseLocked(List::iterator it);

  const Options options_;
  const bool enabled_;
  const Clock& clock_;
  mutable std::mutex mu_;
  List lru_;
  // Keys point into the entries' `id`, which std::list never moves.
  std::unordered_map<std::string_view, List::iterator> index_;
  size_t bytes_ = 0;
};

}  // namespace conveyor::http
