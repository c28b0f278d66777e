// Per-user upload limits over Redis (see queue/limits.h): builds the
// KEYS/ARGV of lua/check_limits.lua and reads its reply.
#include "queue/limits.h"

#include <algorithm>
#include <chrono>
#include <mutex>
#include <utility>
#include <vector>

#include "core/ids.h"
#include "queue/internal/redis_connection.h"
#include "queue/internal/scripts.h"

namespace conveyor::queue {
namespace {

using internal::GetScript;
using internal::RedisConnection;
using internal::RedisReply;

class RedisUserLimiter final : public UserLimiter {
 public:
  RedisUserLimiter(RedisOptions options, UserLimitSettings settings)
      : options_(std::move(options)),
        settings_(settings),
        prefix_(options_.prefix + ":conveyor-limits:"),
        job_prefix_(options_.prefix + ":" + options_.queue_name + ":") {}

  Result<LimitDecision> Reserve(const std::string& user, const std::string& upload_id,
                                int64_t bytes) override {
    auto reply = Run(user, "reserve", upload_id, bytes);
    if (!reply) return reply.status();
    const RedisReply& r = *reply;
    if (!r.is_array() || r.elements.size() != 4) return Internal("check_limits: malformed reply");
    LimitDecision d;
    d.allowed = r.elements[0].integer == 1;
    d.exceeded = r.elements[1].str;
    d.retry_after_s = r.elements[2].integer;
    d.in_flight = r.elements[3].integer;
    return d;
  }

  Result<void> Release(const std::string& user, const std::string& upload_id) override {
    auto reply = Run(user, "release", upload_id, 0);
    if (!reply) return reply.status();
    return {};
  }

  Result<void> ChargeBytes(const std::string& user, int64_t bytes) override {
    auto reply = Run(user, "charge", "", bytes);
    if (!reply) return reply.status();
    return {};
  }

 private:
  static constexpr size_t kMaxIdleConnections = 4;

  Result<RedisReply> Run(const std::string& user, const char* mode, const std::string& upload_id,
                         int64_t bytes) {
    const std::string base = prefix_ + LimitKeyUser(user);
    std::vector<std::string> keys = {base, base + ":inflight"};
    std::vector<std::string> args = {mode,
                                     std::to_string(NowMs()),
                                     upload_id,
                                     std::to_string(std::max<int64_t>(bytes, 0)),
                                     std::to_string(settings_.uploads_per_minute),
                                     std::to_string(settings_.bytes_per_hour),
                                     std::to_string(settings_.uploads_in_flight),
                                     std::to_string(settings_.reservation_ms),
                                     job_prefix_,
                                     std::to_string(settings_.max_in_flight_age_ms)};
    std::unique_ptr<RedisConnection> conn;
    {
      std::lock_guard lock(mu_);
      if (!idle_.empty()) {
        conn = std::move(idle_.back());
        idle_.pop_back();
      }
    }
    if (!conn) conn = std::make_unique<RedisConnection>(options_);
    Result<RedisReply> reply = conn->Eval(GetScript("check_limits"), keys, args);
    std::lock_guard lock(mu_);
    if (idle_.size() < kMaxIdleConnections) idle_.push_back(std::move(conn));
    return reply;
  }

  const RedisOptions options_;
  const UserLimitSettings settings_;
  const std::string prefix_;
  const std::string job_prefix_;
  std::mutex mu_;
  std::vector<std::unique_ptr<RedisConnection>> idle_;
};

}  // namespace

std::string LimitKeyUser(const std::string& user) {
  bool plain = !user.empty() && user.size() <= 128;
  for (char c : user) {
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '@' || c == '-';
    if (!ok) plain = false;
  }
  if (plain) return user;
  static const char kHex[] = "0123456789abcdef";
  std::string out = "~";
  for (unsigned char c : user) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

std::unique_ptr<UserLimiter> OpenRedisUserLimiter(const RedisOptions& options,
                                                  const UserLimitSettings& settings) {
  RedisOptions o = options;
  o.connect_timeout_ms = std::min(o.connect_timeout_ms, 500);
  o.command_timeout_ms = std::min(o.command_timeout_ms, 500);
  o.connect_at_open = false;
  return std::make_unique<RedisUserLimiter>(std::move(o), settings);
}

}  // namespace conveyor::queue
