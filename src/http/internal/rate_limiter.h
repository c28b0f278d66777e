// File: http/internal/rate_limiter.h
//
// Per-user token bucket for uploads: capacity `per_minute` tokens, refilled
// continuously at per_minute/60 s, so a user may burst up to a minute's worth
// and then proceeds at the steady rate. In memory, per process (several API
// processes each allow the rate). Thread-safe.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

namespace conveyor::http {

class RateLimiter {
 public:
  explicit RateLimiter(int per_minute) : per_minute_(per_minute) {}

  // Takes one token for `user` at `now_ms` (a monotonic clock). When none is
  // left returns false and sets `*retry_after_s` (>= 1) to the wait until the
  // next token. Always true when per_minute <= 0.
  bool Allow(const std::string& user, int64_t now_ms, int64_t* retry_after_s);

 private:
  struct Bucket {
    double tokens;
    int64_t last_ms;
  };
  // Above this many users, full (idle) buckets are dropped to bound memory.
  static constexpr size_t kMaxTrackedUsers = 100000;

  int per_minute_;
  std::mutex mu_;
  std::unordered_map<std::string, Bucket> buckets_;
};

}  // namespace conveyor::http
