#include "http/internal/rate_limiter.h"

#include <algorithm>
#include <cmath>

namespace conveyor::http {

bool RateLimiter::Allow(const std::string& user, int64_t now_ms, int64_t* retry_after_s) {
  if (per_minute_ <= 0) return true;
  const double capacity = per_minute_;
  const double per_ms = capacity / 60000.0;
  std::lock_guard lock(mu_);
  if (buckets_.size() > kMaxTrackedUsers) {
    std::erase_if(buckets_, [&](const auto& kv) {
      return kv.second.tokens + (now_ms - kv.second.last_ms) * per_ms >= capacity;
    });
  }
  auto [it, inserted] = buckets_.try_emplace(user, Bucket{capacity, now_ms});
  Bucket& b = it->second;
  b.tokens = std::min(capacity, b.tokens + std::max<int64_t>(0, now_ms - b.last_ms) * per_ms);
  b.last_ms = now_ms;
  if (b.tokens >= 1.0) {
    b.tokens -= 1.0;
    return true;
  }
  double wait_ms = (1.0 - b.tokens) / per_ms;
  *retry_after_s = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(wait_ms / 1000.0)));
  return false;
}

}  // namespace conveyor::http
