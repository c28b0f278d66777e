#include "queue/internal/failover.h"

#include <hiredis/hiredis.h>
#include <spdlog/spdlog.h>
#include <sys/time.h>

#include <algorithm>
#include <charconv>
#include <map>
#include <tuple>
#include <utility>

#include "queue/internal/redis_connection.h"

namespace conveyor::queue::internal {
namespace {

timeval ToTimeval(int64_t ms) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(ms / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms % 1000) * 1000);
  return tv;
}

std::string Text(const RedisAddress& a) { return a.host + ":" + std::to_string(a.port); }

// A hiredis context freed on every path.
struct ContextCloser {
  void operator()(redisContext* c) const { redisFree(c); }
};
using Context = std::unique_ptr<redisContext, ContextCloser>;

Result<RedisReply> Ask(redisContext* c, const std::vector<std::string>& argv) {
  std::vector<const char*> args;
  std::vector<size_t> lens;
  for (const std::string& a : argv) {
    args.push_back(a.data());
    lens.push_back(a.size());
  }
  auto* r = static_cast<redisReply*>(
      redisCommandArgv(c, static_cast<int>(args.size()), args.data(), lens.data()));
  if (!r) return Unavailable(argv[0] + " failed: " + (c->errstr[0] ? c->errstr : "no reply"));
  RedisReply reply = ConvertReply(r);
  freeReplyObject(r);
  return reply;
}

}  // namespace

bool ReconnectBackoff::TryStart(Clock::time_point now) {
  if (backoff_ms_ > 0 && now < next_attempt_) return false;
  // Whatever happens next, a failure pushes the next attempt further out.
  backoff_ms_ = backoff_ms_ == 0 ? kReconnectBackoffMinMs
                                 : std::min(backoff_ms_ * 2, kReconnectBackoffMaxMs);
  next_attempt_ = now + std::chrono::milliseconds(backoff_ms_);
  return true;
}

bool IsFailoverError(std::string_view error) {
  // Servers before 7 wrap a script's failed call: "ERR Error running
  // script ...: -READONLY ...". 7 and later pass the call's own code on.
  for (std::string_view code : {"READONLY", "LOADING", "MASTERDOWN", "UNBLOCKED"}) {
    if (error.substr(0, code.size()) == code) return true;
    if (error.rfind("ERR", 0) == 0 && error.find("-" + std::string(code) + " ") != error.npos) {
      return true;
    }
  }
  return false;
}

std::shared_ptr<MasterResolver> MasterResolver::For(const RedisOptions& options) {
  if (options.sentinels.empty()) return std::make_shared<MasterResolver>(options);
  // Shared per sentinel set, for the life of the process (a handful at most).
  using Key = std::tuple<std::vector<std::pair<std::string, int>>, std::string, std::string>;
  static std::mutex mu;
  static auto* shared = new std::map<Key, std::shared_ptr<MasterResolver>>;
  Key key;
  for (const RedisAddress& s : options.sentinels) std::get<0>(key).emplace_back(s.host, s.port);
  std::get<1>(key) = options.sentinel_master;
  std::get<2>(key) = options.sentinel_password;
  std::lock_guard lock(mu);
  auto& r = (*shared)[key];
  if (!r) r = std::make_shared<MasterResolver>(options);
  return r;
}

MasterResolver::MasterResolver(const RedisOptions& options)
    : fixed_{options.host, options.port},
      follows_(!options.sentinels.empty()),
      master_name_(options.sentinel_master),
      sentinel_password_(options.sentinel_password),
      timeout_ms_(std::max(options.sentinel_timeout_ms, 1)),
      sentinels_(options.sentinels) {}

MasterResolver::~MasterResolver() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  if (poller_.joinable()) poller_.join();
}

Result<RedisAddress> MasterResolver::Master() {
  if (!follows_) return fixed_;
  std::lock_guard lock(mu_);
  if (!poller_.joinable() && !stopping_) poller_ = std::thread([this] { Poll(); });
  if (known_) return master_;
  auto master = AskSentinels();
  if (!master) return master.status();
  Learn(*master);
  return master_;
}

Result<RedisAddress> MasterResolver::AskSentinels() {
  std::string errors;
  for (size_t i = 0; i < sentinels_.size(); ++i) {
    auto master = AskSentinel(sentinels_[i]);
    if (!master) {
      errors += (errors.empty() ? "" : "; ") + master.status().message();
      continue;
    }
    // The sentinel that answered is asked first from now on.
    std::rotate(sentinels_.begin(), sentinels_.begin() + static_cast<ptrdiff_t>(i),
                sentinels_.begin() + static_cast<ptrdiff_t>(i) + 1);
    return master;
  }
  return Unavailable("redis master " + master_name_ + ": no sentinel named it (" + errors + ")");
}

void MasterResolver::Learn(const RedisAddress& master) {
  if (!(master == master_)) {
    spdlog::info("redis: sentinel {} names {} as master {}", Text(sentinels_[0]), Text(master),
                 master_name_);
    master_ = master;
    generation_.fetch_add(1, std::memory_order_acq_rel);
  }
  known_ = true;
}

void MasterResolver::Poll() {
  std::unique_lock lock(mu_);
  for (;;) {
    if (stop_cv_.wait_for(lock, std::chrono::milliseconds(kSentinelPollMs),
                          [&] { return stopping_; })) {
      return;
    }
    // Under mu_: a connection that needs the master meanwhile waits for
    // this answer rather than asking on its own.
    auto master = AskSentinels();
    if (master) Learn(*master);
  }
}

bool MasterResolver::Moved(const RedisAddress& at, uint64_t* seen) {
  const uint64_t now = generation();
  if (now == *seen) return false;
  *seen = now;
  std::lock_guard lock(mu_);
  return known_ && !(master_ == at);
}

void MasterResolver::Invalidate(const RedisAddress& master) {
  if (!follows_) return;
  std::lock_guard lock(mu_);
  if (known_ && master_ == master) known_ = false;
}

Result<RedisAddress> MasterResolver::AskSentinel(const RedisAddress& sentinel) const {
  const std::string where = "sentinel " + Text(sentinel);
  Context c(redisConnectWithTimeout(sentinel.host.c_str(), sentinel.port, ToTimeval(timeout_ms_)));
  if (!c) return Unavailable(where + ": out of memory");
  if (c->err) return Unavailable(where + ": " + c->errstr);
  if (redisSetTimeout(c.get(), ToTimeval(timeout_ms_)) != REDIS_OK) {
    return Unavailable(where + ": setting the timeout failed");
  }
  if (!sentinel_password_.empty()) {
    auto auth = Ask(c.get(), {"AUTH", sentinel_password_});
    if (!auth) return Unavailable(where + ": " + auth.status().message());
    if (auth->is_error()) return Unavailable(where + " refused AUTH: " + auth->str);
  }
  auto r = Ask(c.get(), {"SENTINEL", "get-master-addr-by-name", master_name_});
  if (!r) return Unavailable(where + ": " + r.status().message());
  if (r->is_error()) return Unavailable(where + ": " + r->str);
  if (!r->is_array() || r->elements.size() != 2) {
    return Unavailable(where + " does not know master " + master_name_);
  }
  const std::string& port_text = r->elements[1].str;
  int port = 0;
  auto [p, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || p != port_text.data() + port_text.size() || port <= 0 ||
      port > 65535) {
    return Unavailable(where + " answered a malformed port '" + port_text + "'");
  }
  return RedisAddress{r->elements[0].str, port};
}

Status MasterResolver::CheckRole(const RedisReply& role, const RedisAddress& at) {
  if (role.is_array() && !role.elements.empty() && role.elements[0].str == "master") {
    return OkStatus();
  }
  std::string said = role.is_error()                            ? role.str
                     : role.is_array() && !role.elements.empty() ? role.elements[0].str
                                                                : "?";
  return Unavailable("redis " + Text(at) + " is not a master (ROLE: " + said + ")");
}

std::string MasterResolver::Describe(const RedisAddress& at) const {
  if (!follows_) return "redis " + Text(at);
  return "redis master " + master_name_ + " at " + Text(at);
}

}  // namespace conveyor::queue::internal
