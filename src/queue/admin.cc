// Design
// ------
// Each admin operation is one of our Lua scripts (lua/list_jobs, pause_queue,
// clean_jobs, retry_failed, retry_dead_letter, purge_dead_letters), so it is
// atomic and writes what BullMQ 6.7's Queue writes for the same action
// (docs/queue-format.md). Operations over whole sets run in bounded batches
// (kBatch jobs per script call) so Redis never blocks for long; a batch pass
// stops at a cutoff time taken at the start, so jobs failing meanwhile are
// not swept up twice. Counts reuse the producer's get_counts path.
//
// One connection behind a mutex: admin calls are rare and short.
#include "queue/admin.h"

#include <chrono>
#include <cstdlib>
#include <mutex>
#include <utility>

#include "core/ids.h"
#include "queue/internal/job_json.h"
#include "queue/internal/redis_connection.h"
#include "queue/internal/scripts.h"

namespace conveyor::queue {
namespace {

using internal::GetScript;
using internal::RedisConnection;
using internal::RedisReply;

// Jobs per script call in whole-set passes (retry-failed, purge, DLQ listing).
constexpr int64_t kBatch = 1000;

int64_t ToInt64(const std::string& s) {
  char* end = nullptr;
  long long v = std::strtoll(s.c_str(), &end, 10);
  return end == s.c_str() ? 0 : static_cast<int64_t>(v);
}

// "<prefix>:<name>:<suffix>" key names of one BullMQ queue.
class Keys {
 public:
  Keys(const std::string& prefix, const std::string& name) : base_(prefix + ":" + name + ":") {}
  std::string operator()(const char* suffix) const { return base_ + suffix; }
  const std::string& job_prefix() const { return base_; }
  std::string Job(const std::string& id) const { return base_ + id; }

 private:
  std::string base_;
};

// An id that names a key of its own: not empty and without ':' (ids with ':'
// would address another key of the queue).
Status CheckId(const std::string& id) {
  if (id.empty()) return InvalidArgument("job id is empty");
  if (id.find(':') != std::string::npos) return InvalidArgument("job id contains ':'");
  return OkStatus();
}

Status CheckPage(int64_t start, int64_t count) {
  if (start < 0) return InvalidArgument("start must be >= 0");
  if (count < 1 || count > kMaxListCount) {
    return InvalidArgument("count must be in 1.." + std::to_string(kMaxListCount));
  }
  return OkStatus();
}

Result<long long> IntegerReply(Result<RedisReply> reply, const char* what) {
  if (!reply) return reply.status();
  if (reply->type != RedisReply::Type::kInteger) {
    return Internal(std::string(what) + ": expected an integer reply");
  }
  return reply->integer;
}

class RedisAdmin final : public QueueAdmin {
 public:
  RedisAdmin(RedisOptions options, std::unique_ptr<Queue> producer)
      : options_(std::move(options)),
        keys_(options_.prefix, options_.queue_name),
        dlq_(options_.prefix, options_.dead_letter_queue_name),
        producer_(std::move(producer)),
        conn_(options_) {}

  Result<JobCounts> Counts() override { return producer_->Counts(); }

  Result<int64_t> DeadLetterCount() override {
    auto n = IntegerReply(Command({"ZCARD", dlq_("failed")}), "ZCARD");
    if (!n) return n.status();
    return static_cast<int64_t>(*n);
  }

  Result<std::vector<FinishedJob>> ListFailed(int64_t start, int64_t count) override {
    return List(keys_, start, count);
  }

  Result<std::vector<FinishedJob>> ListDeadLetters(int64_t start, int64_t count) override {
    return List(dlq_, start, count);
  }

  Result<void> RetryDeadLetter(const std::string& id) override {
    if (auto s = CheckId(id); !s.ok()) return s;
    std::vector<std::string> keys = {
        dlq_("failed"),  dlq_("events"),    dlq_.Job(id),  keys_.Job(id),      keys_("failed"),
        keys_("wait"),   keys_("meta"),     keys_("active"), keys_("marker"),  keys_("prioritized"),
        keys_("pc"),     keys_("events"),   keys_("id")};
    std::vector<std::string> args = {id, std::to_string(NowMs()),
                                     internal::JobOptionsToJson(id, JobOptions{})};
    auto code = IntegerReply(Eval("retry_dead_letter", keys, args), "retry_dead_letter");
    if (!code) return code.status();
    if (*code == -1) return NotFound("dead-letter job " + id + ": no such job");
    if (*code == -3) {
      return FailedPrecondition("dead-letter job " + id +
                                ": the main queue holds this job in a state other than failed "
                                "(it was retried already); the copy is kept");
    }
    if (*code < 0) return Internal("retry_dead_letter: unexpected result " + std::to_string(*code));
    return {};
  }

  Result<int64_t> RetryAllDeadLetters() override {
    int64_t retried = 0;
    int64_t offset = 0;  // refused jobs stay at the front; skip past them
    for (;;) {
      auto page = Command({"ZRANGE", dlq_("failed"), std::to_string(offset),
                           std::to_string(offset + kBatch - 1)});
      if (!page) return page.status();
      if (!page->is_array()) return Internal("ZRANGE: expected an array");
      if (page->elements.empty()) return retried;
      for (const auto& e : page->elements) {
        auto r = RetryDeadLetter(e.str);
        if (r) {
          ++retried;
        } else if (r.code() == Errc::kFailedPrecondition || r.code() == Errc::kInvalidArgument) {
          ++offset;
        } else if (r.code() != Errc::kNotFound) {  // vanished meanwhile: fine
          return r.status();
        }
      }
    }
  }

  Result<int64_t> PurgeDeadLetters() override {
    int64_t purged = 0;
    for (;;) {
      auto n = IntegerReply(Eval("purge_dead_letters", {dlq_("failed"), dlq_("events")},
                                 {dlq_.job_prefix(), std::to_string(kBatch)}),
                            "purge_dead_letters");
      if (!n) return n.status();
      purged += *n;
      if (*n < kBatch) return purged;
    }
  }

  Result<int64_t> RetryFailed() override {
    const std::string cutoff = std::to_string(NowMs());
    std::vector<std::string> keys = {keys_("failed"),  keys_("wait"),        keys_("meta"),
                                     keys_("active"),  keys_("marker"),      keys_("prioritized"),
                                     keys_("pc"),      keys_("events"),      dlq_("failed"),
                                     dlq_("events")};
    std::vector<std::string> args = {keys_.job_prefix(), cutoff, std::to_string(kBatch),
                                     dlq_.job_prefix()};
    int64_t moved = 0;
    for (;;) {
      auto reply = Eval("retry_failed", keys, args);
      if (!reply) return reply.status();
      if (!reply->is_array() || reply->elements.size() != 2) {
        return Internal("retry_failed: malformed reply");
      }
      moved += reply->elements[1].integer;
      if (reply->elements[0].integer < kBatch) return moved;
    }
  }

  Result<std::vector<std::string>> Clean(int64_t grace_ms, FinishedState state,
                                         int64_t limit) override {
    if (grace_ms < 0) return InvalidArgument("grace must be >= 0");
    if (limit < 0) return InvalidArgument("limit must be >= 0 (0 = no limit)");
    const char* set = state == FinishedState::kCompleted ? "completed" : "failed";
    auto reply = Eval("clean_jobs", {keys_(set), keys_("events")},
                      {keys_.job_prefix(), std::to_string(NowMs() - grace_ms),
                       std::to_string(limit)});
    if (!reply) return reply.status();
    if (!reply->is_array()) return Internal("clean_jobs: malformed reply");
    std::vector<std::string> ids;
    ids.reserve(reply->elements.size());
    for (const auto& e : reply->elements) ids.push_back(e.str);
    return ids;
  }

  Result<void> Pause() override {
    auto r = PauseScript("paused", true);
    if (!r) return r.status();
    return {};
  }

  Result<void> Resume() override {
    bool emit = true;
    for (;;) {  // a large legacy `paused` list migrates in several calls
      auto remaining = PauseScript("resumed", emit);
      if (!remaining) return remaining.status();
      if (*remaining == 0) return {};
      emit = false;
    }
  }

  Result<bool> IsPaused() override {
    auto n = IntegerReply(Command({"HEXISTS", keys_("meta"), "paused"}), "HEXISTS");
    if (!n) return n.status();
    return *n == 1;
  }

 private:
  Result<RedisReply> Command(const std::vector<std::string>& argv) {
    std::lock_guard<std::mutex> lock(mu_);
    auto reply = conn_.Command(argv);
    if (reply && reply->is_error()) return Internal(argv[0] + ": " + reply->str);
    return reply;
  }

  Result<RedisReply> Eval(const char* script, const std::vector<std::string>& keys,
                          const std::vector<std::string>& args) {
    std::lock_guard<std::mutex> lock(mu_);
    return conn_.Eval(GetScript(script), keys, args);
  }

  Result<long long> PauseScript(const char* what, bool emit) {
    std::vector<std::string> keys = {keys_("meta"), keys_("marker"),      keys_("events"),
                                     keys_("paused"), keys_("wait"),      keys_("prioritized"),
                                     keys_("delayed")};
    return IntegerReply(Eval("pause_queue", keys, {what, emit ? "1" : "0"}), "pause_queue");
  }

  Result<std::vector<FinishedJob>> List(const Keys& q, int64_t start, int64_t count) {
    if (auto s = CheckPage(start, count); !s.ok()) return s;
    auto reply = Eval("list_jobs", {q("failed")},
                      {q.job_prefix(), std::to_string(start), std::to_string(start + count - 1)});
    if (!reply) return reply.status();
    if (!reply->is_array() || reply->elements.size() % 2 != 0) {
      return Internal("list_jobs: malformed reply");
    }
    std::vector<FinishedJob> jobs;
    for (size_t i = 0; i + 1 < reply->elements.size(); i += 2) {
      const auto& fields = reply->elements[i + 1];
      if (!fields.is_array() || fields.elements.size() != 6) {
        return Internal("list_jobs: malformed job fields");
      }
      auto field = [&](size_t k) -> const RedisReply& { return fields.elements[k]; };
      FinishedJob j;
      j.id = reply->elements[i].str;
      j.name = field(0).str;
      j.data_json = field(1).is_nil() ? "null" : field(1).str;
      j.failed_reason = field(2).str;
      j.attempts_made = static_cast<int>(
          ToInt64(field(3).is_nil() ? field(4).str : field(3).str));
      j.finished_on_ms = ToInt64(field(5).str);
      jobs.push_back(std::move(j));
    }
    return jobs;
  }

  RedisOptions options_;
  Keys keys_;
  Keys dlq_;
  std::unique_ptr<Queue> producer_;
  std::mutex mu_;
  RedisConnection conn_;
};

}  // namespace

Result<std::unique_ptr<QueueAdmin>> OpenRedisAdmin(const RedisOptions& options) {
  auto producer = OpenRedisQueue(options);  // probes the connection (and AUTH)
  if (!producer) return producer.status();
  return std::unique_ptr<QueueAdmin>(std::make_unique<RedisAdmin>(options, std::move(*producer)));
}

}  // namespace conveyor::queue
