#include "http/internal/status_cache.h"

#include <utility>

namespace conveyor::http {

StatusCache::StatusCache(Options options, const Clock& clock)
    : options_(options),
      enabled_(options.max_entries > 0 && options.max_bytes > 0 && options.ttl_ms > 0),
      clock_(clock) {}

StatusCache::Found StatusCache::Lookup(std::string_view job_id, std::string_view user_id,
                                       std::string* body) {
  if (!enabled_) return Found::kMiss;
  const int64_t now = clock_.MonotonicMs();
  std::lock_guard lock(mu_);
  auto it = index_.find(job_id);
  if (it == index_.end()) return Found::kMiss;
  List::iterator e = it->second;
  if (now >= e->expires_ms) {
    EraseLocked(e);
    return Found::kMiss;
  }
  lru_.splice(lru_.begin(), lru_, e);
  if (e->owner != user_id) return Found::kOtherOwner;
  body->assign(e->body);
  return Found::kHit;
}

void StatusCache::Insert(std::string_view job_id, std::string_view owner, std::string_view body) {
  if (!enabled_) return;
  const size_t bytes = EntryBytes(job_id, owner, body);
  const int64_t expires = clock_.MonotonicMs() + options_.ttl_ms;
  std::lock_guard lock(mu_);
  if (auto it = index_.find(job_id); it != index_.end()) EraseLocked(it->second);
  if (bytes > options_.max_bytes) return;
  while (!lru_.empty() &&
         (lru_.size() >= options_.max_entries || bytes_ + bytes > options_.max_bytes)) {
    EraseLocked(std::prev(lru_.end()));
  }
  lru_.push_front(Entry{std::string(job_id), std::string(owner), std::string(body), expires, bytes});
  index_.emplace(lru_.front().id, lru_.begin());
  bytes_ += bytes;
}

size_t StatusCache::size() const {
  std::lock_guard lock(mu_);
  return lru_.size();
}

size_t StatusCache::bytes() const {
  std::lock_guard lock(mu_);
  return bytes_;
}

void StatusCache::EraseLocked(List::iterator it) {
  bytes_ -= it->bytes;
  index_.erase(std::string_view(it->id));
  lru_.erase(it);
}

}  // namespace conveyor::http
