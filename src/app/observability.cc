#include "app/observability.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>

#include "core/metrics.h"
#include "storage/metadata_store.h"
#include "worker/job_metrics.h"

namespace conveyor::app {
namespace {

int64_t SteadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

int64_t EpochMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class QueueMetrics {
 public:
  QueueMetrics(const queue::RedisOptions& options, storage::MetadataStore* store)
      : observer_(options), store_(store) {
    auto& r = metrics::DefaultRegistry();
    jobs_ = &r.Gauge("conveyor_queue_jobs", "Jobs in the queue by state (BullMQ's job counts).",
                     {"state"});
    dead_ = &r.Gauge("conveyor_queue_dead_letter_jobs", "Jobs in the dead-letter queue.").Get();
    live_ = &r.Gauge("conveyor_workers_live",
                     "Workers whose registry heartbeat is within its expiry.")
                 .Get();
    redis_rtt_ = &r.Gauge("conveyor_redis_round_trip_seconds",
                          "Round-trip time of the last queue snapshot call to Redis.")
                      .Get();
    db_rtt_ = &r.Gauge("conveyor_db_round_trip_seconds",
                       "Round-trip time of the last database ping.")
                   .Get();
    errors_ = &r.Counter("conveyor_queue_snapshot_errors_total",
                         "Queue snapshots or database pings that failed.")
                   .Get();
  }

  void Collect() {
    std::lock_guard lock(mu_);
    const int64_t now = SteadyMs();
    if (refreshed_ms_ != 0 && now - refreshed_ms_ < kQueueMetricsMaxAgeMs) return;
    refreshed_ms_ = now;
    if (auto s = observer_.Snapshot()) {
      const queue::JobCounts& c = s->counts;
      jobs_->Get({"wait"}).Set(c.wait);
      jobs_->Get({"active"}).Set(c.active);
      jobs_->Get({"delayed"}).Set(c.delayed);
      jobs_->Get({"prioritized"}).Set(c.prioritized);
      jobs_->Get({"completed"}).Set(c.completed);
      jobs_->Get({"failed"}).Set(c.failed);
      jobs_->Get({"paused"}).Set(c.paused);
      jobs_->Get({"waiting-children"}).Set(c.waiting_children);
      dead_->Set(s->dead_letters);
      live_->Set(s->live_workers);
      redis_rtt_->Set(s->round_trip_seconds);
    } else {
      errors_->Inc();
      spdlog::debug("metrics: queue snapshot: {}", s.status().ToString());
    }
    if (store_) {
      const int64_t start = metrics::SteadyNowNs();
      if (auto p = store_->Ping(); p) {
        db_rtt_->Set(metrics::SecondsSince(start));
      } else {
        errors_->Inc();
      }
    }
  }

 private:
  std::mutex mu_;
  int64_t refreshed_ms_ = 0;
  queue::QueueObserver observer_;
  storage::MetadataStore* store_;
  metrics::GaugeFamily* jobs_;
  metrics::GaugeValue* dead_;
  metrics::GaugeValue* live_;
  metrics::GaugeValue* redis_rtt_;
  metrics::GaugeValue* db_rtt_;
  metrics::CounterValue* errors_;
};

bool SendAll(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

std::string HttpAnswer(int status, const char* reason, const char* type, const std::string& body) {
  return "HTTP/1.1 " + std::to_string(status) + " " + reason +
         "\r\nServer: conveyor\r\nContent-Type: " + type +
         "\r\nConnection: close\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" +
         body;
}

// The value of header `name` (lowercase) in `head`, or "".
std::string Header(const std::string& head, const std::string& name) {
  size_t pos = 0;
  while ((pos = head.find("\r\n", pos)) != std::string::npos) {
    pos += 2;
    size_t colon = head.find(':', pos);
    size_t end = head.find("\r\n", pos);
    if (colon == std::string::npos || end == std::string::npos || colon > end) continue;
    std::string key = head.substr(pos, colon - pos);
    for (auto& ch : key) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    if (key != name) continue;
    size_t v = colon + 1;
    while (v < end && head[v] == ' ') ++v;
    return head.substr(v, end - v);
  }
  return "";
}

}  // namespace

void InstallQueueMetrics(const queue::RedisOptions& options, storage::MetadataStore* store) {
  static std::once_flag once;
  std::call_once(once, [&] {
    auto* m = new QueueMetrics(options, store);  // lives until exit, like the registry
    metrics::DefaultRegistry().AddCollector([m] { m->Collect(); });
  });
}

MetricsServer::MetricsServer(std::string bind_address, int port, std::string token)
    : bind_address_(std::move(bind_address)), port_(port), token_(std::move(token)) {}

MetricsServer::~MetricsServer() { Stop(); }

Result<int> MetricsServer::Start() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Unavailable(std::string("metrics socket: ") + std::strerror(errno));
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port_));
  if (inet_pton(AF_INET, bind_address_.c_str(), &addr.sin_addr) != 1) {
    ::close(fd);
    return InvalidArgument("metrics: BIND_ADDRESS must be an IPv4 address: " + bind_address_);
  }
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd, 16) != 0) {
    std::string why = std::strerror(errno);
    ::close(fd);
    return Unavailable("metrics: cannot listen on port " + std::to_string(port_) + ": " + why);
  }
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  listen_fd_ = fd;
  thread_ = std::thread([this] { Loop(); });
  return static_cast<int>(ntohs(addr.sin_port));
}

void MetricsServer::Stop() {
  if (stopping_.exchange(true)) return;
  if (thread_.joinable()) thread_.join();
  if (listen_fd_ >= 0) ::close(listen_fd_);
  listen_fd_ = -1;
}

void MetricsServer::Loop() {
  while (!stopping_.load()) {
    pollfd p{listen_fd_, POLLIN, 0};
    int r = ::poll(&p, 1, 200);  // wakes to notice Stop()
    if (r <= 0) continue;
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    timeval tv{2, 0};  // a slow client cannot hold the endpoint
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    Serve(fd);
    ::close(fd);
  }
}

void MetricsServer::Serve(int fd) {
  std::string head;
  char buf[2048];
  while (head.find("\r\n\r\n") == std::string::npos) {
    if (head.size() > 16384) return;
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return;
    head.append(buf, static_cast<size_t>(n));
  }
  const size_t sp1 = head.find(' ');
  const size_t sp2 = head.find(' ', sp1 + 1);
  if (sp1 == std::string::npos || sp2 == std::string::npos) return;
  const std::string method = head.substr(0, sp1);
  std::string target = head.substr(sp1 + 1, sp2 - sp1 - 1);
  target = target.substr(0, target.find('?'));
  if (method != "GET") {
    SendAll(fd, HttpAnswer(405, "Method Not Allowed", "text/plain", "method not allowed\n"));
  } else if (target == "/healthz") {
    SendAll(fd, HttpAnswer(200, "OK", "application/json", "{\"status\":\"ok\"}"));
  } else if (target == "/metrics") {
    if (!token_.empty() && Header(head, "authorization") != "Bearer " + token_) {
      SendAll(fd, HttpAnswer(401, "Unauthorized", "text/plain", "metrics token required\n"));
      return;
    }
    SendAll(fd, HttpAnswer(200, "OK", "text/plain; version=0.0.4; charset=utf-8",
                           metrics::DefaultRegistry().Render()));
  } else {
    SendAll(fd, HttpAnswer(404, "Not Found", "text/plain", "not found\n"));
  }
}

Heartbeat::Heartbeat(const queue::RedisOptions& options, int concurrency) : registry_(options) {
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  info_.host = host;
  info_.pid = getpid();
  info_.id = queue::NewWorkerId(info_.host, info_.pid);
  info_.version = CONVEYOR_VERSION;
  info_.concurrency = concurrency;
  info_.started_ms = EpochMs();
}

Heartbeat::~Heartbeat() { Stop(); }

void Heartbeat::Start() {
  thread_ = std::thread([this] { Loop(); });
}

void Heartbeat::Stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (auto r = registry_.Leave(info_.id); !r) {
    spdlog::warn("worker: leaving the worker registry: {}", r.status().ToString());
  }
}

void Heartbeat::Loop() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    lock.unlock();
    queue::WorkerInfo info = info_;
    info.active = worker::job_metrics::SlotsBusy();
    if (auto r = registry_.Beat(info); !r) {
      spdlog::debug("worker: heartbeat: {}", r.status().ToString());
    }
    lock.lock();
    cv_.wait_for(lock, std::chrono::milliseconds(queue::kDefaultBeatIntervalMs),
                 [&] { return stopping_; });
  }
}

}  // namespace conveyor::app
