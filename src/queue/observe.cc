#include "queue/observe.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <mutex>
#include <utility>

#include "core/ids.h"
#include "queue/internal/redis_connection.h"
#include "queue/internal/scripts.h"

namespace conveyor::queue {
namespace {

using internal::GetScript;
using internal::RedisConnection;
using internal::RedisReply;

int64_t ToInt64(const std::string& s) {
  char* end = nullptr;
  long long v = std::strtoll(s.c_str(), &end, 10);
  return end == s.c_str() ? 0 : static_cast<int64_t>(v);
}

std::string Base(const RedisOptions& o) { return o.prefix + ":" + o.queue_name + ":"; }
std::string WorkersKey(const RedisOptions& o) { return Base(o) + "conveyor:workers"; }
std::string WorkerKey(const RedisOptions& o, const std::string& id) {
  return WorkersKey(o) + ":" + id;
}

}  // namespace

class QueueObserver::Impl {
 public:
  Impl(RedisOptions options, int64_t ttl_ms)
      : options_(std::move(options)), ttl_ms_(ttl_ms), conn_(options_) {
    const std::string b = Base(options_);
    keys_ = {b + "wait",      b + "active", b + "delayed", b + "prioritized",
             b + "completed", b + "failed", b + "paused",  b + "waiting-children",
             options_.prefix + ":" + options_.dead_letter_queue_name + ":failed",
             WorkersKey(options_)};
  }

  Result<QueueSnapshot> Snapshot() {
    std::lock_guard lock(mu_);
    const auto start = std::chrono::steady_clock::now();
    auto reply = conn_.Eval(GetScript("queue_snapshot"), keys_,
                            {std::to_string(NowMs() - ttl_ms_)});
    if (!reply) return reply.status();
    if (!reply->is_array() || reply->elements.size() != 10) {
      return Internal("queue_snapshot: unexpected reply");
    }
    auto n = [&](size_t i) { return static_cast<int64_t>(reply->elements[i].integer); };
    QueueSnapshot s;
    s.counts = {n(0), n(1), n(2), n(3), n(4), n(5), n(6), n(7)};
    s.dead_letters = n(8);
    s.live_workers = n(9);
    s.round_trip_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return s;
  }

 private:
  const RedisOptions options_;
  const int64_t ttl_ms_;
  std::mutex mu_;
  RedisConnection conn_;
  std::vector<std::string> keys_;
};

QueueObserver::QueueObserver(RedisOptions options, int64_t ttl_ms)
    : impl_(std::make_unique<Impl>(std::move(options), ttl_ms)) {}
QueueObserver::~QueueObserver() = default;
Result<QueueSnapshot> QueueObserver::Snapshot() { return impl_->Snapshot(); }

class WorkerRegistry::Impl {
 public:
  Impl(RedisOptions options, int64_t ttl_ms)
      : options_(std::move(options)), ttl_ms_(ttl_ms), conn_(options_) {}

  Result<int64_t> Beat(const WorkerInfo& w) {
    if (w.id.empty() || w.id.find(':') != std::string::npos) {
      return InvalidArgument("worker id must be non-empty and without ':'");
    }
    const int64_t now = NowMs();
    std::vector<std::string> args = {w.id, std::to_string(now), std::to_string(ttl_ms_),
                                     "host", w.host, "pid", std::to_string(w.pid),
                                     "version", w.version,
                                     "concurrency", std::to_string(w.concurrency),
                                     "active", std::to_string(w.active),
                                     "started", std::to_string(w.started_ms),
                                     "last_beat", std::to_string(now)};
    std::lock_guard lock(mu_);
    auto r = conn_.Eval(GetScript("worker_beat"), {WorkersKey(options_), WorkerKey(options_, w.id)},
                        args);
    if (!r) return r.status();
    if (r->type != RedisReply::Type::kInteger) return Internal("worker_beat: unexpected reply");
    return static_cast<int64_t>(r->integer);
  }

  Result<void> Leave(const std::string& id) {
    std::lock_guard lock(mu_);
    auto a = conn_.Command({"ZREM", WorkersKey(options_), id});
    if (!a) return a.status();
    auto b = conn_.Command({"DEL", WorkerKey(options_, id)});
    if (!b) return b.status();
    return {};
  }

  Result<std::vector<WorkerInfo>> List() {
    std::lock_guard lock(mu_);
    auto ids = conn_.Command(
        {"ZRANGEBYSCORE", WorkersKey(options_), std::to_string(NowMs() - ttl_ms_), "+inf"});
    if (!ids) return ids.status();
    std::vector<WorkerInfo> out;
    if (!ids->is_array()) return out;
    for (const RedisReply& id : ids->elements) {
      auto h = conn_.Command({"HGETALL", WorkerKey(options_, id.str)});
      if (!h) return h.status();
      if (!h->is_array() || h->elements.empty()) continue;  // expired meanwhile
      WorkerInfo w;
      w.id = id.str;
      for (size_t i = 0; i + 1 < h->elements.size(); i += 2) {
        const std::string& k = h->elements[i].str;
        const std::string& v = h->elements[i + 1].str;
        if (k == "host") w.host = v;
        else if (k == "pid") w.pid = ToInt64(v);
        else if (k == "version") w.version = v;
        else if (k == "concurrency") w.concurrency = ToInt64(v);
        else if (k == "active") w.active = ToInt64(v);
        else if (k == "started") w.started_ms = ToInt64(v);
        else if (k == "last_beat") w.last_beat_ms = ToInt64(v);
      }
      out.push_back(std::move(w));
    }
    std::sort(out.begin(), out.end(), [](const WorkerInfo& a, const WorkerInfo& b) {
      return a.started_ms != b.started_ms ? a.started_ms < b.started_ms : a.id < b.id;
    });
    return out;
  }

 private:
  const RedisOptions options_;
  const int64_t ttl_ms_;
  std::mutex mu_;
  RedisConnection conn_;
};

WorkerRegistry::WorkerRegistry(RedisOptions options, int64_t ttl_ms)
    : impl_(std::make_unique<Impl>(std::move(options), ttl_ms)) {}
WorkerRegistry::~WorkerRegistry() = default;
Result<int64_t> WorkerRegistry::Beat(const WorkerInfo& info) { return impl_->Beat(info); }
Result<void> WorkerRegistry::Leave(const std::string& id) { return impl_->Leave(id); }
Result<std::vector<WorkerInfo>> WorkerRegistry::List() { return impl_->List(); }

std::string NewWorkerId(const std::string& host, int64_t pid) {
  std::string clean;
  for (char c : host) clean += (c == ':' ? '_' : c);
  return clean + "-" + std::to_string(pid) + "-" + NewUuid().substr(0, 8);
}

}  // namespace conveyor::queue
