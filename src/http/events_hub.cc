// The push routes' source of job events: BullMQ's events stream read with
// XREAD BLOCK by one thread per process, fanned out by job id. See
// http/internal/events_hub.h for the design.
#include "http/internal/events_hub.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <nlohmann/json.hpp>

#include "queue/internal/redis_connection.h"
#include "storage/job_record.h"
#include "storage/metadata_store.h"

namespace conveyor::http {

using queue::internal::RedisConnection;
using queue::internal::RedisReply;

namespace {
constexpr int64_t kBackoffMinMs = 50;
constexpr int64_t kBackoffMaxMs = 2000;
// Entries read per XREAD; more simply take another call.
constexpr const char* kReadCount = "1000";

std::optional<PushEvent::Kind> FinalKind(storage::JobStatus s) {
  if (s == storage::JobStatus::kCompleted) return PushEvent::Kind::kCompleted;
  if (s == storage::JobStatus::kFailed) return PushEvent::Kind::kFailed;
  return std::nullopt;
}
}  // namespace

std::string_view PushEvent::type() const {
  switch (kind) {
    case Kind::kStatus:
      return "status";
    case Kind::kProgress:
      return "progress";
    case Kind::kCompleted:
      return "completed";
    case Kind::kFailed:
      return "failed";
  }
  return "status";
}

Result<std::optional<PushEvent>> ReadJobState(storage::MetadataStore& store,
                                              const std::string& job_id,
                                              const std::string& user_id) {
  auto job = store.GetJobForUser(job_id, user_id);
  if (!job) return job.status();
  if (!job->has_value()) return std::optional<PushEvent>();
  storage::JobRecord& j = **job;
  storage::JobStatusRow row{j.status, j.progress, std::move(j.result_json), std::move(j.error)};
  PushEvent e;
  e.kind = FinalKind(row.status).value_or(PushEvent::Kind::kStatus);
  e.job_id = job_id;
  e.data = JobStatusData(job_id, row);
  e.rank = e.final() ? PushEvent::kFinalRank
           : row.status == storage::JobStatus::kProcessing ? 1 + std::clamp(row.progress, 0, 100)
                                                          : 0;
  return std::optional<PushEvent>(std::move(e));
}

int ProgressPercent(std::string_view progress_json) {
  auto j = nlohmann::json::parse(progress_json, nullptr, false);
  const nlohmann::json* p = &j;
  if (j.is_object()) {
    auto it = j.find("percent");
    if (it == j.end()) return -1;
    p = &*it;
  }
  if (!p->is_number()) return -1;
  double v = p->get<double>();
  if (!std::isfinite(v)) return -1;
  return static_cast<int>(std::clamp(v, 0.0, 100.0));
}

std::optional<std::string> ProgressData(std::string_view job_id, std::string_view progress_json) {
  const int percent = ProgressPercent(progress_json);
  if (percent < 0) return std::nullopt;
  std::string out;
  out.reserve(job_id.size() + 64);
  out.append(R"({"jobId":")").append(job_id).append(R"(","status":"processing","progress":)");
  out.append(std::to_string(percent)).append("}");
  return out;
}

EventsHub::EventsHub(Options options, storage::MetadataStore* store, RunBlocking run_blocking)
    : options_(std::move(options)),
      stream_key_(options_.redis.prefix + ":" + options_.redis.queue_name + ":events"),
      store_(store),
      run_blocking_(std::move(run_blocking)) {}

EventsHub::~EventsHub() { Stop(); }

void EventsHub::Start() {
  if (reader_.joinable()) return;
  reader_ = std::thread([this] { ReaderLoop(); });
}

void EventsHub::Stop() {
  {
    std::lock_guard lock(stop_mu_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  if (reader_.joinable()) reader_.join();
}

bool EventsHub::SleepFor(int64_t ms) {
  std::unique_lock lock(stop_mu_);
  return !stop_cv_.wait_for(lock, std::chrono::milliseconds(ms), [this] { return stopping_; });
}

void EventsHub::Subscribe(const std::string& job_id, const std::string& owner,
                          const std::shared_ptr<PushSubscriber>& sub) {
  std::lock_guard lock(mu_);
  Watch& w = watches_[job_id];
  w.owner = owner;
  for (auto& [p, weak] : w.subs) {
    if (p == sub.get()) return;
  }
  w.subs.emplace_back(sub.get(), sub);
}

void EventsHub::Unsubscribe(const std::string& job_id, const PushSubscriber* sub) {
  std::lock_guard lock(mu_);
  auto it = watches_.find(job_id);
  if (it == watches_.end()) return;
  auto& subs = it->second.subs;
  subs.erase(std::remove_if(subs.begin(), subs.end(), [sub](auto& s) { return s.first == sub; }),
             subs.end());
  if (subs.empty()) watches_.erase(it);
}

std::string EventsHub::last_id() const {
  std::lock_guard lock(mu_);
  return last_id_;
}

size_t EventsHub::watched_jobs() const {
  std::lock_guard lock(mu_);
  return watches_.size();
}

std::vector<std::shared_ptr<PushSubscriber>> EventsHub::SubscribersOf(const std::string& job_id,
                                                                      std::string* owner) {
  std::vector<std::shared_ptr<PushSubscriber>> out;
  std::lock_guard lock(mu_);
  auto it = watches_.find(job_id);
  if (it == watches_.end()) return out;
  auto& subs = it->second.subs;
  for (auto s = subs.begin(); s != subs.end();) {
    if (auto live = s->second.lock()) {
      out.push_back(std::move(live));
      ++s;
    } else {
      s = subs.erase(s);
    }
  }
  if (owner) *owner = it->second.owner;
  if (subs.empty()) watches_.erase(it);
  return out;
}

void EventsHub::Fanout(const std::string& job_id, const std::shared_ptr<const PushEvent>& e) {
  // Delivered outside the lock: Deliver may take a subscriber's own locks.
  for (auto& s : SubscribersOf(job_id, nullptr)) s->Deliver(e);
}

void EventsHub::ReadAndDeliver(const std::string& job_id, const std::string& owner,
                               std::optional<PushEvent::Kind> expect, std::string entry_id) {
  run_blocking_([this, job_id, owner, expect, entry_id = std::move(entry_id)] {
    auto state = ReadJobState(*store_, job_id, owner);
    if (!state) {
      spdlog::warn("push: reading job {} after its {} event: {}", job_id,
                   expect ? "final" : "resync", state.status().ToString());
      return;
    }
    if (!state->has_value()) return;  // removed meanwhile: nothing to tell
    auto e = std::make_shared<PushEvent>(std::move(**state));
    e->id = entry_id;
    Fanout(job_id, e);
  });
}

void EventsHub::HandleEntry(const std::string& entry_id,
                            const std::vector<std::pair<std::string, std::string>>& fields) {
  std::string_view event, job_id, data;
  for (const auto& [k, v] : fields) {
    if (k == "event") event = v;
    else if (k == "jobId") job_id = v;
    else if (k == "data") data = v;
  }
  if (job_id.empty()) return;
  const bool progress = event == "progress";
  const bool final = event == "completed" || event == "failed";
  if (!progress && !final) return;
  std::string id(job_id);
  std::string owner;
  {
    std::lock_guard lock(mu_);
    auto it = watches_.find(id);
    if (it == watches_.end()) return;
    owner = it->second.owner;
  }
  if (progress) {
    auto d = ProgressData(id, data);
    if (!d) return;
    auto e = std::make_shared<PushEvent>();
    e->kind = PushEvent::Kind::kProgress;
    e->job_id = id;
    e->data = std::move(*d);
    e->id = entry_id;
    e->rank = 1 + ProgressPercent(data);
    Fanout(id, e);
    return;
  }
  ReadAndDeliver(id, owner,
                 event == "completed" ? PushEvent::Kind::kCompleted : PushEvent::Kind::kFailed,
                 entry_id);
}

void EventsHub::Resync() {
  std::vector<std::pair<std::string, std::string>> jobs;
  {
    std::lock_guard lock(mu_);
    jobs.reserve(watches_.size());
    for (const auto& [id, w] : watches_) jobs.emplace_back(id, w.owner);
  }
  if (!jobs.empty()) spdlog::info("push: re-reading {} watched jobs after a gap", jobs.size());
  for (auto& [id, owner] : jobs) ReadAndDeliver(id, owner, std::nullopt, "");
}

void EventsHub::ReaderLoop() {
  queue::RedisOptions ro = options_.redis;
  ro.connect_at_open = false;
  RedisConnection conn(ro);
  std::string from;  // empty: not positioned yet
  bool gap = false;  // a failure since the last good read
  int64_t backoff = kBackoffMinMs;
  auto failed = [&](const Status& s) {
    if (!gap) spdlog::warn("push: events stream {}: {}", stream_key_, s.ToString());
    gap = true;
    connected_ = false;
    bool go_on = SleepFor(backoff);
    backoff = std::min(backoff * 2, kBackoffMaxMs);
    return go_on;
  };
  for (;;) {
    {
      std::lock_guard lock(stop_mu_);
      if (stopping_) break;
    }
    if (from.empty()) {
      // Positioned at the stream's last entry: events from now on.
      auto last = conn.Command({"XREVRANGE", stream_key_, "+", "-", "COUNT", "1"});
      if (!last || last->is_error()) {
        if (!failed(last ? Internal(last->str) : last.status())) break;
        continue;
      }
      from = "0-0";
      if (last->is_array() && !last->elements.empty() && last->elements[0].is_array() &&
          !last->elements[0].elements.empty()) {
        from = last->elements[0].elements[0].str;
      }
      std::lock_guard lock(mu_);
      last_id_ = from;
    }
    auto r = conn.BlockingCommand({"XREAD", "COUNT", kReadCount, "BLOCK",
                                   std::to_string(options_.block_ms), "STREAMS", stream_key_, from},
                                  options_.block_ms);
    if (!r || r->is_error()) {
      if (!failed(r ? Internal(r->str) : r.status())) break;
      continue;
    }
    connected_ = true;
    backoff = kBackoffMinMs;
    if (gap) {
      gap = false;
      spdlog::info("push: events stream {} readable again", stream_key_);
      Resync();
    }
    if (!r->is_array()) continue;  // nil: the block timed out
    // [[key, [[id, [f, v, ...]], ...]]]
    for (const RedisReply& stream : r->elements) {
      if (!stream.is_array() || stream.elements.size() < 2) continue;
      for (const RedisReply& entry : stream.elements[1].elements) {
        if (!entry.is_array() || entry.elements.size() < 2) continue;
        const std::string& id = entry.elements[0].str;
        std::vector<std::pair<std::string, std::string>> fields;
        const auto& fv = entry.elements[1].elements;
        for (size_t i = 0; i + 1 < fv.size(); i += 2) fields.emplace_back(fv[i].str, fv[i + 1].str);
        HandleEntry(id, fields);
        from = id;
      }
    }
    std::lock_guard lock(mu_);
    last_id_ = from;
  }
  connected_ = false;
}

}  // namespace conveyor::http
