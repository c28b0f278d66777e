#include "http/internal/token_cache.h"

#include <utility>

#include "http/auth.h"

namespace conveyor::http {

TokenCache::TokenCache(std::string secret, size_t capacity, bool require_exp)
    : secret_(std::move(secret)), capacity_(capacity < 1 ? 1 : capacity), require_exp_(require_exp) {}

Result<std::string> TokenCache::Verify(std::string_view authorization, int64_t now_s,
                                       std::string* tier) {
  // An empty key makes libjwt skip signature verification: never cache then.
  if (secret_.empty()) return Unauthenticated("no token secret configured");
  auto token = BearerToken(authorization);
  if (!token) return token.status();
  {
    std::lock_guard lock(mu_);
    if (auto it = entries_.find(*token); it != entries_.end()) {
      if (static_cast<double>(now_s) < it->second.exp_s) {
        if (tier != nullptr) *tier = it->second.tier;
        return it->second.user_id;
      }
      entries_.erase(it);  // expired: verify again, which refuses it
    }
  }
  // Verified outside the lock: two threads may both verify a new token; the
  // second insert is a no-op.
  auto verified = VerifyToken(*token, secret_, now_s, require_exp_);
  if (!verified) return verified.status();
  std::lock_guard lock(mu_);
  if (entries_.size() >= capacity_) EvictLocked(now_s);
  entries_.try_emplace(std::string(*token),
                       Entry{verified->user_id, verified->exp_s, verified->tier});
  if (tier != nullptr) *tier = std::move(verified->tier);
  return std::move(verified->user_id);
}

size_t TokenCache::size() const {
  std::lock_guard lock(mu_);
  return entries_.size();
}

void TokenCache::EvictLocked(int64_t now_s) {
  std::erase_if(entries_, [now_s](const auto& kv) {
    return static_cast<double>(now_s) >= kv.second.exp_s;
  });
  if (entries_.size() >= capacity_) entries_.erase(entries_.begin());
}

}  // namespace conveyor::http
