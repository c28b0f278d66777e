// Design
// ------
// conveyor's queue is a BullMQ queue: every key, hash field, event and state
// transition is the one bullmq@6 uses (docs/queue-format.md, and the full
// reference in ../shared/reference/bullmq-wire-format.md). Each transition is
// one of our own Lua scripts (lua/*.lua, embedded at build time), run with
// EVALSHA so it is atomic; this file only builds the KEYS/ARGV lists, maps
// script return codes to Status, and turns replies into ActiveJob values.
//
// Clocks: as in BullMQ, every timestamp and score comes from this host's wall
// clock and is passed to the scripts; scripts never call TIME.
//
// Connections: the producer keeps a small pool (one connection per concurrent
// caller, idle ones kept for reuse) plus one connection of its own for
// AddMany, which pipelines a batch of adds (the uploads' group commit).
//
// The consumer is shared by every slot of a worker and has two connections.
// All its commands (fetch, lock renewal, completion and failure, progress,
// stalled check) go over one event-driven connection (internal::AsyncRedis:
// hiredis async on its own Asio thread), so the calls of all slots are
// pipelined on one socket and none waits for another's reply. BZPOPMIN on the
// marker has a connection of its own, as in BullMQ (its blockingConnection):
// Redis answers a connection's commands in order, so a BZPOPMIN there would
// hold every renewal and completion behind it for up to the wait timeout.
// That one blocking connection serves all the consumer's waiters at once:
// one thread blocks in Redis, the others wait for its answer (WaitForWork).
//
// Where: every connection asks internal::MasterResolver (failover.h) where
// the master is: REDIS_HOST, or, with Sentinel, the master the sentinels
// name, followed through failovers by both kinds of connection alike.
//
// Retries: read-only and idempotent producer calls (Add is idempotent by id)
// are retried once on kUnavailable, which hides a single stale socket after a
// Redis restart. Consumer transitions are not: a lost reply may hide an
// applied move, and the caller must decide.
#include <openssl/evp.h>
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <utility>

#include <spdlog/spdlog.h>

#include "core/ids.h"
#include "queue/internal/async_redis.h"
#include "queue/internal/job_json.h"
#include "queue/internal/redis_connection.h"
#include "queue/internal/scripts.h"
#include "queue/queue.h"

namespace conveyor::queue {
namespace {

using internal::GetScript;
using internal::RedisConnection;
using internal::RedisReply;

// The key names of one BullMQ queue ("<prefix>:<name>:<suffix>").
class Keys {
 public:
  Keys(const std::string& prefix, const std::string& name) : base_(prefix + ":" + name + ":") {}
  std::string operator()(const char* suffix) const { return base_ + suffix; }
  const std::string& job_prefix() const { return base_; }  // job key = job_prefix() + id
  std::string Job(const std::string& id) const { return base_ + id; }

 private:
  std::string base_;
};

// Ids BullMQ would refuse or that would collide with a queue key.
Status ValidateJobId(const std::string& id) {
  static const char* const kReserved[] = {
      "id",     "wait",        "paused",  "active",        "prioritized", "pc",
      "delayed", "completed",  "failed",  "waiting-children", "stalled", "stalled-check",
      "marker", "events",      "meta",    "limiter",       "repeat",      "priority",
      "delay",  "metrics",     "aging"};
  if (id.empty()) return InvalidArgument("job id is empty");
  if (id == "0" || id.rfind("0:", 0) == 0) return InvalidArgument("job id 0 is reserved");
  if (id.find(':') != std::string::npos) return InvalidArgument("job id contains ':'");
  if (id.find_first_not_of("0123456789") == std::string::npos) {
    return InvalidArgument("job id looks like an integer (BullMQ reserves those)");
  }
  for (const char* r : kReserved) {
    if (id == r) return InvalidArgument("job id '" + id + "' is a queue key name");
  }
  return OkStatus();
}

// Maps the negative codes shared by the scripts (wire format §4.12).
Status ScriptCodeToStatus(long long code, const std::string& id, const char* op) {
  std::string where = std::string(op) + " job " + id + ": ";
  switch (code) {
    case -1:
      return NotFound(where + "no such job");
    case -2:
      return FailedPrecondition(where + "lock missing (expired; the job may be recovered as stalled)");
    case -3:
      return FailedPrecondition(where + "job is not active");
    case -6:
      return FailedPrecondition(where + "lock is held by another worker");
    default:
      return Internal(where + "unexpected script result " + std::to_string(code));
  }
}

Result<long long> IntegerReply(Result<RedisReply> reply, const char* what) {
  if (!reply) return reply.status();
  if (reply->type != RedisReply::Type::kInteger) {
    return Internal(std::string(what) + ": expected an integer reply");
  }
  return reply->integer;
}

// ---------------------------------------------------------------------------
// Producer

class RedisQueue final : public Queue {
 public:
  explicit RedisQueue(RedisOptions options)
      : options_(std::move(options)), keys_(options_.prefix, options_.queue_name) {}

  Result<bool> Add(const std::string& id, const std::string& name, const std::string& data_json,
                   const JobOptions& opts) override {
    if (auto s = ValidateJobId(id); !s.ok()) return s;
    RedisConnection::EvalCall call = AddCall(id, name, data_json, opts);
    auto added = WithRetry([&](RedisConnection& c) {
      return IntegerReply(c.Eval(*call.script, call.keys, call.args), "add_job");
    });
    if (!added) return added.status();
    return *added == 1;
  }

  // On its own connection (adder_), so a batch never waits for the pool and
  // its replies come back in order on one socket. Retried once on
  // kUnavailable, as Add is: a stale socket after a Redis restart fails the
  // whole pipeline once, the reconnect then succeeds.
  std::vector<Result<bool>> AddMany(const std::vector<JobToAdd>& jobs) override {
    std::vector<Result<bool>> out;
    out.reserve(jobs.size());
    std::vector<RedisConnection::EvalCall> calls;
    std::vector<size_t> sent;  // index in `jobs` of each call
    for (size_t i = 0; i < jobs.size(); ++i) {
      const JobToAdd& j = jobs[i];
      Status valid = ValidateJobId(j.id);
      out.push_back(valid.ok() ? Result<bool>(false) : Result<bool>(valid));
      if (!valid.ok()) continue;
      calls.push_back(AddCall(j.id, j.name, j.data_json, j.opts));
      sent.push_back(i);
    }
    if (calls.empty()) return out;
    std::lock_guard<std::mutex> lock(adder_mu_);
    std::vector<Result<RedisReply>> replies = adder_.EvalPipeline(calls);
    // The calls a lost connection failed, once more on a new one.
    std::vector<RedisConnection::EvalCall> again;
    std::vector<size_t> again_at;
    for (size_t k = 0; k < replies.size(); ++k) {
      if (replies[k] || replies[k].code() != Errc::kUnavailable) continue;
      again.push_back(std::move(calls[k]));
      again_at.push_back(k);
    }
    if (!again.empty()) {
      std::vector<Result<RedisReply>> retried = adder_.EvalPipeline(again);
      for (size_t r = 0; r < again_at.size(); ++r) replies[again_at[r]] = std::move(retried[r]);
    }
    for (size_t k = 0; k < sent.size(); ++k) {
      auto added = IntegerReply(std::move(replies[k]), "add_job");
      out[sent[k]] = added ? Result<bool>(*added == 1) : Result<bool>(added.status());
    }
    return out;
  }

  Result<bool> Exists(const std::string& id) override {
    auto n = WithRetry([&](RedisConnection& c) {
      return IntegerReply(c.Command({"EXISTS", keys_.Job(id)}), "EXISTS");
    });
    if (!n) return n.status();
    return *n == 1;
  }

  Result<JobCounts> Counts() override {
    std::vector<std::string> keys = {keys_("wait"),      keys_("active"), keys_("delayed"),
                                     keys_("prioritized"), keys_("completed"), keys_("failed"),
                                     keys_("paused"),    keys_("waiting-children")};
    auto reply = WithRetry([&](RedisConnection& c) {
      return c.Eval(GetScript("get_counts"), keys, {});
    });
    if (!reply) return reply.status();
    if (!reply->is_array() || reply->elements.size() != 8) {
      return Internal("get_counts: malformed reply");
    }
    auto at = [&](size_t i) { return static_cast<int64_t>(reply->elements[i].integer); };
    JobCounts c;
    c.wait = at(0);
    c.active = at(1);
    c.delayed = at(2);
    c.prioritized = at(3);
    c.completed = at(4);
    c.failed = at(5);
    c.paused = at(6);
    c.waiting_children = at(7);
    return c;
  }

  Result<void> Ping() override {
    auto reply = WithRetry([&](RedisConnection& c) { return c.Command({"PING"}); });
    if (!reply) return reply.status();
    if (reply->is_error()) return Unavailable("redis PING: " + reply->str);
    return {};
  }

 private:
  // The add_job script call for one job (wire format §4.1).
  RedisConnection::EvalCall AddCall(const std::string& id, const std::string& name,
                                    const std::string& data_json, const JobOptions& opts) const {
    const int64_t now = NowMs();
    const int priority = std::clamp(opts.priority, 0, kMaxPriority);
    const int64_t aging_due = priority > 0 && opts.aging_ms > 0 ? now + opts.aging_ms : 0;
    JobOptions written = opts;
    written.priority = priority;
    return {&GetScript("add_job"),
            {keys_("wait"), keys_("meta"), keys_("id"), keys_("delayed"), keys_("events"),
             keys_("marker"), keys_("active"), keys_("prioritized"), keys_("pc"),
             keys_("aging")},
            {keys_.job_prefix(), id, name, std::to_string(now), data_json,
             internal::JobOptionsToJson(id, written),
             std::to_string(std::max<int64_t>(opts.delay_ms, 0)), std::to_string(priority),
             std::to_string(aging_due)}};
  }

  // At most this many idle connections are kept; busier moments open more.
  static constexpr size_t kMaxIdleConnections = 4;

  std::unique_ptr<RedisConnection> Acquire() {
    std::lock_guard<std::mutex> lock(mu_);
    if (idle_.empty()) return std::make_unique<RedisConnection>(options_);
    auto c = std::move(idle_.back());
    idle_.pop_back();
    return c;
  }

  void Return(std::unique_ptr<RedisConnection> c) {
    std::lock_guard<std::mutex> lock(mu_);
    if (idle_.size() < kMaxIdleConnections) idle_.push_back(std::move(c));
  }

  // Runs `op` on a pooled connection; once more on kUnavailable (a stale
  // socket after a Redis restart fails once, the reconnect then succeeds).
  template <class Op>
  auto WithRetry(Op op) -> decltype(op(std::declval<RedisConnection&>())) {
    auto conn = Acquire();
    auto result = op(*conn);
    if (!result && result.code() == Errc::kUnavailable) result = op(*conn);
    Return(std::move(conn));
    return result;
  }

  RedisOptions options_;
  Keys keys_;
  std::mutex mu_;
  std::vector<std::unique_ptr<RedisConnection>> idle_;
  std::mutex adder_mu_;
  RedisConnection adder_{options_};  // AddMany's pipelines; guarded by adder_mu_
};

// ---------------------------------------------------------------------------
// Consumer

// The blocking connection carries the name Node's Worker gives its own:
// "<prefix>:<base64(queue name)>", so Queue.getWorkers() counts it.
RedisOptions WorkerConnectionOptions(RedisOptions o) {
  std::string b64(4 * ((o.queue_name.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(b64.data()),
                          reinterpret_cast<const unsigned char*>(o.queue_name.data()),
                          static_cast<int>(o.queue_name.size()));
  b64.resize(static_cast<size_t>(n));
  if (o.client_name.empty()) o.client_name = o.prefix + ":" + b64;
  return o;
}

class RedisConsumer final : public Consumer {
 public:
  explicit RedisConsumer(RedisOptions options)
      : options_(std::move(options)),
        keys_(options_.prefix, options_.queue_name),
        dlq_keys_(options_.prefix, options_.dead_letter_queue_name),
        blocking_(WorkerConnectionOptions(options_)),
        commands_(options_) {}

  // The first caller blocks in Redis; callers that come while it does wait
  // for its answer (or their own timeout) and share it: a wake-up wakes them
  // all, and each then fetches.
  Result<bool> WaitForWork(int64_t timeout_ms) override {
    std::unique_lock<std::mutex> lock(wait_mu_);
    if (waiting_) {
      const uint64_t generation = wait_generation_;
      wait_cv_.wait_for(lock, std::chrono::milliseconds(std::max<int64_t>(timeout_ms, 0)),
                        [&] { return wait_generation_ != generation; });
      if (wait_generation_ == generation) return false;
      return wait_result_;
    }
    waiting_ = true;
    lock.unlock();
    Result<bool> woke = BlockForWork(timeout_ms);
    lock.lock();
    waiting_ = false;
    ++wait_generation_;
    wait_result_ = woke;
    wait_cv_.notify_all();
    return woke;
  }

  Result<bool> BlockForWork(int64_t timeout_ms) {
    const int64_t deadline = NowMs() + std::max<int64_t>(timeout_ms, 0);
    for (;;) {
      int64_t now = NowMs();
      int64_t due = next_delayed_due_ms_.load();
      if (due > 0 && due <= now) {
        next_delayed_due_ms_ = 0;
        return true;
      }
      if (now >= deadline) return false;
      int64_t wait_ms = deadline - now;
      if (due > 0) wait_ms = std::min(wait_ms, due - now);
      // BZPOPMIN takes seconds; 0 would block forever, so never below 1 ms.
      char timeout[32];
      std::snprintf(timeout, sizeof timeout, "%.3f",
                    static_cast<double>(std::max<int64_t>(wait_ms, 1)) / 1000.0);
      auto reply = blocking_.BlockingCommand({"BZPOPMIN", keys_("marker"), timeout}, wait_ms);
      if (!reply) return reply.status();
      if (reply->is_error()) return Internal("BZPOPMIN: " + reply->str);
      if (reply->is_nil() || !reply->is_array() || reply->elements.size() < 3) continue;
      // [key, member, score]: "0" = ready now; "1" = earliest delayed job's due ms.
      double score = std::strtod(reply->elements[2].str.c_str(), nullptr);
      if (reply->elements[1].str != "1" || score <= static_cast<double>(NowMs())) return true;
      NoteDelayedDue(static_cast<int64_t>(std::ceil(score)));
    }
  }

  Result<std::optional<ActiveJob>> Fetch(const std::string& token, int64_t lock_ms) override {
    Result<RedisReply> reply = commands_.Eval(FetchCall(token, lock_ms));
    if (!reply) return reply.status();
    return ParseFetch(std::move(*reply), token);
  }

  CompleteAndFetchResult CompleteAndFetch(const ActiveJob& job, const std::string& return_json,
                                          const std::string& next_token,
                                          int64_t lock_ms) override {
    std::vector<internal::EvalCommand> calls;
    calls.reserve(2);
    calls.push_back(FinishCall(job, "returnvalue", return_json, "completed", "", false,
                               job.options.remove_on_complete));
    calls.push_back(FetchCall(next_token, lock_ms));
    std::vector<Result<RedisReply>> replies = commands_.EvalPipeline(std::move(calls));
    return {ParseFinish(replies[0], job, "completed"),
            replies[1] ? ParseFetch(std::move(*replies[1]), next_token)
                       : Result<std::optional<ActiveJob>>(replies[1].status())};
  }

  Result<std::vector<ActiveJob*>> ExtendLocks(const std::vector<ActiveJob*>& jobs,
                                              int64_t lock_ms) override {
    std::vector<ActiveJob*> lost;
    if (jobs.empty()) return lost;
    std::vector<std::string> args = {keys_.job_prefix(), std::to_string(lock_ms)};
    for (const ActiveJob* j : jobs) {
      args.push_back(j->id);
      args.push_back(j->token);
    }
    auto reply = Eval("extend_locks", {keys_("stalled")}, args);
    if (!reply) return reply.status();
    if (!reply->is_array()) return Internal("extend_locks: malformed reply");
    for (const auto& e : reply->elements) {
      // The 1-based position of a lost lease among `jobs`.
      if (e.type != RedisReply::Type::kInteger || e.integer < 1 ||
          e.integer > static_cast<int64_t>(jobs.size())) {
        return Internal("extend_locks: malformed reply");
      }
      lost.push_back(jobs[static_cast<size_t>(e.integer - 1)]);
    }
    return lost;
  }

  Result<void> Complete(const ActiveJob& job, const std::string& return_json) override {
    return Finish(job, "returnvalue", return_json, "completed", "", false,
                  job.options.remove_on_complete);
  }

  Result<void> Fail(const ActiveJob& job, const std::string& reason, const std::string& stack,
                    bool retry) override {
    // A deferred failure (stalled too often) is final whatever the caller says;
    // so is a transient error with no attempts left.
    bool will_retry = retry && !job.deferred_failure &&
                      ShouldRetry(job.attempts_made, job.options.attempts, /*transient=*/true);
    if (!will_retry) {
      return Finish(job, "failedReason", reason, "failed", stack, /*dead_letter=*/true,
                    job.options.remove_on_fail);
    }
    int64_t backoff_ms = BackoffDelayMs(job.options.backoff_type, job.options.backoff_delay_ms,
                                        job.attempts_made + 1);
    std::vector<std::string> keys = {keys_("wait"),    keys_("active"), keys_("prioritized"),
                                     keys_("events"),  keys_("stalled"), keys_("meta"),
                                     keys_("delayed"), keys_("marker"), keys_.Job(job.id),
                                     keys_("pc")};
    std::vector<std::string> args = {job.id, std::to_string(NowMs()), job.token,
                                     std::to_string(backoff_ms), reason, stack};
    auto code = IntegerReply(Eval("retry_job", keys, args), "retry_job");
    if (!code) return code.status();
    if (*code < 0) return ScriptCodeToStatus(*code, job.id, "retry");
    return {};
  }

  Result<void> UpdateProgress(const std::string& id, const std::string& progress_json) override {
    auto code = IntegerReply(Eval("update_progress", {keys_.Job(id), keys_("events"), keys_("meta")},
                                  {id, progress_json}),
                             "update_progress");
    if (!code) return code.status();
    if (*code < 0) return ScriptCodeToStatus(*code, id, "update progress of");
    return {};
  }

  Result<void> AddLog(const std::string& id, const std::string& line) override {
    auto code = IntegerReply(
        Eval("add_log", {keys_.Job(id), keys_.Job(id) + ":logs"}, {line}), "add_log");
    if (!code) return code.status();
    if (*code < 0) return ScriptCodeToStatus(*code, id, "add log to");
    return {};
  }

  Result<void> ReportProgress(const std::string& id, const std::string& progress_json,
                              const std::string& log_line) override {
    auto code = IntegerReply(Eval("report_progress",
                                  {keys_.Job(id), keys_("events"), keys_("meta"),
                                   keys_.Job(id) + ":logs"},
                                  {id, progress_json, log_line}),
                             "report_progress");
    if (!code) return code.status();
    if (*code < 0) return ScriptCodeToStatus(*code, id, "report progress of");
    return {};
  }

  void PostProgress(const std::string& id, const std::string& progress_json,
                    const std::string& log_line) override {
    auto logged = [id](internal::AsyncRedis::Replies replies) {
      auto code = IntegerReply(std::move(replies.at(0)), "report_progress");
      Status failed = !code       ? code.status()
                      : *code < 0 ? ScriptCodeToStatus(*code, id, "report progress of")
                                  : Status();
      if (!failed.ok()) spdlog::debug("queue: progress of {}: {}", id, failed.ToString());
    };
    static const internal::Script& script = GetScript("report_progress");
    std::vector<internal::EvalCommand> calls;
    calls.push_back(std::move(internal::EvalCommand(script)
                                  .Key(keys_.job_prefix(), id)
                                  .Key(keys_.job_prefix(), "events")
                                  .Key(keys_.job_prefix(), "meta")
                                  .Key(keys_.Job(id), ":logs")
                                  .Arg(id)
                                  .Arg(progress_json)
                                  .Arg(log_line)));
    commands_.EvalAsync(std::move(calls), std::move(logged));
  }

  Result<std::vector<std::string>> RecoverStalled(int64_t stalled_interval_ms) override {
    std::vector<std::string> keys = {keys_("stalled"), keys_("wait"),   keys_("active"),
                                     keys_("stalled-check"), keys_("meta"), keys_("marker"),
                                     keys_("events")};
    std::vector<std::string> args = {std::to_string(options_.max_stalled_count), keys_.job_prefix(),
                                     std::to_string(NowMs()),
                                     std::to_string(std::max<int64_t>(stalled_interval_ms, 1))};
    auto reply = Eval("move_stalled_jobs_to_wait", keys, args);
    if (!reply) return reply.status();
    if (!reply->is_array()) return Internal("move_stalled_jobs_to_wait: malformed reply");
    std::vector<std::string> ids;
    for (const auto& e : reply->elements) ids.push_back(e.str);
    return ids;
  }

  Result<void> Release(const ActiveJob& job) override {
    std::vector<std::string> keys = {keys_("wait"), keys_("active"), keys_("events"),
                                     keys_("stalled"), keys_("meta"), keys_("marker"),
                                     keys_.Job(job.id)};
    auto code = IntegerReply(Eval("release_job", keys, {job.id, job.token}), "release_job");
    if (!code) return code.status();
    if (*code < 0) return ScriptCodeToStatus(*code, job.id, "release");
    return {};
  }

 private:
  Result<RedisReply> Eval(const char* script, const std::vector<std::string>& keys,
                          const std::vector<std::string>& args) {
    return commands_.Eval(internal::EvalCommand(GetScript(script), keys, args));
  }

  // Keeps the earliest known due time of a delayed job, for WaitForWork.
  void NoteDelayedDue(int64_t due_ms) {
    int64_t cur = next_delayed_due_ms_.load();
    while ((cur == 0 || due_ms < cur) &&
           !next_delayed_due_ms_.compare_exchange_weak(cur, due_ms)) {
    }
  }

  // move_to_active (wire format §4.2), written straight into one buffer: the
  // hot path of every slot.
  internal::EvalCommand FetchCall(const std::string& token, int64_t lock_ms) {
    static const internal::Script& script = GetScript("move_to_active");
    const std::string& base = keys_.job_prefix();
    internal::EvalCommand call(script);
    for (const char* k : {"wait", "active", "prioritized", "events", "delayed", "meta", "pc",
                          "marker"}) {
      call.Key(base, k);
    }
    call.Arg(base).Arg(NowMs()).Arg(token).Arg(lock_ms);
    return call;
  }

  // The fetched job's fields are moved out of `r`.
  Result<std::optional<ActiveJob>> ParseFetch(RedisReply&& r, const std::string& token) {
    if (!r.is_array() || r.elements.size() < 2) return Internal("move_to_active: malformed reply");
    if (r.elements[0].integer != 1) {
      // Nothing ready; remember when the earliest delayed job is due.
      const std::string& score = r.elements[1].str;
      if (!score.empty()) {
        NoteDelayedDue(static_cast<int64_t>(std::ceil(std::strtod(score.c_str(), nullptr) / 4096)));
      }
      return std::optional<ActiveJob>();
    }
    if (r.elements.size() < 3 || !r.elements[2].is_array()) {
      return Internal("move_to_active: malformed job reply");
    }
    ActiveJob job;
    job.id = std::move(r.elements[1].str);
    job.token = token;
    auto& fields = r.elements[2].elements;
    for (size_t i = 0; i + 1 < fields.size(); i += 2) {
      internal::ReadJobField(fields[i].str, std::move(fields[i + 1].str), &job);
    }
    job.options = internal::ParseJobOptions(job.opts_json);
    return std::optional<ActiveJob>(std::move(job));
  }

  Result<void> Finish(const ActiveJob& job, const char* field, const std::string& value,
                      const char* target, const std::string& stack, bool dead_letter,
                      int keep) {
    auto reply = commands_.Eval(FinishCall(job, field, value, target, stack, dead_letter, keep));
    return ParseFinish(reply, job, target);
  }

  // move_to_finished (wire format §4.3), written straight into one buffer.
  internal::EvalCommand FinishCall(const ActiveJob& job, const char* field,
                                   const std::string& value, const char* target,
                                   const std::string& stack, bool dead_letter, int keep) {
    static const internal::Script& script = GetScript("move_to_finished");
    const std::string& base = keys_.job_prefix();
    const std::string& dlq = dlq_keys_.job_prefix();
    internal::EvalCommand call(script);
    for (const char* k : {"wait", "active", "prioritized", "events", "stalled", "meta", target}) {
      call.Key(base, k);
    }
    call.Key(base, job.id);
    for (const char* k : {"id", "failed", "events", "meta"}) call.Key(dlq, k);
    call.Arg(job.id).Arg(NowMs()).Arg(field).Arg(value).Arg(target).Arg(base).Arg(job.token);
    call.Arg(keep).Arg(job.options.attempts).Arg(stack).Arg(dead_letter ? dlq : "");
    return call;
  }

  Result<void> ParseFinish(const Result<RedisReply>& reply, const ActiveJob& job,
                           const char* target) {
    auto code = IntegerReply(reply, "move_to_finished");
    if (!code) return code.status();
    if (*code < 0) return ScriptCodeToStatus(*code, job.id, target);
    return {};
  }

  RedisOptions options_;
  Keys keys_;
  Keys dlq_keys_;
  // The marker wait (BZPOPMIN): one thread at a time blocks on it.
  std::mutex wait_mu_;
  std::condition_variable wait_cv_;
  bool waiting_ = false;           // a thread is in BlockForWork
  uint64_t wait_generation_ = 0;   // BlockForWork calls ended so far
  Result<bool> wait_result_{false};  // the answer of the latest one
  RedisConnection blocking_;       // used by the waiting thread only
  internal::AsyncRedis commands_;  // everything else, pipelined
  // Due time (epoch ms) of the earliest delayed job seen; 0 = none known.
  std::atomic<int64_t> next_delayed_due_ms_{0};
};

// Connects once so that a wrong host or password is reported at start-up.
Result<void> Probe(const RedisOptions& options) {
  if (!options.connect_at_open) return {};
  RedisConnection c(options);
  return c.EnsureConnected();
}

}  // namespace

Result<std::unique_ptr<Queue>> OpenRedisQueue(const RedisOptions& options) {
  if (auto s = Probe(options); !s) return s.status();
  return std::unique_ptr<Queue>(std::make_unique<RedisQueue>(options));
}

Result<std::unique_ptr<Consumer>> OpenRedisConsumer(const RedisOptions& options) {
  if (auto s = Probe(options); !s) return s.status();
  return std::unique_ptr<Consumer>(std::make_unique<RedisConsumer>(options));
}

}  // namespace conveyor::queue
