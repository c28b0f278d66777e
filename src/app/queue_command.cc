#include "app/queue_command.h"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <ctime>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "queue/admin.h"
#include "queue/observe.h"

namespace conveyor::app {
namespace {

using nlohmann::json;

constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;  // Redis unreachable or refused the action
constexpr int kExitUsage = 2;
constexpr int64_t kDefaultListLimit = 20;  // jobs shown by `failed` / `dlq list`
constexpr size_t kReasonWidth = 60;        // failedReason column, in bytes

// Parses a non-negative integer option value; nullopt if malformed.
std::optional<int64_t> ParseCount(const std::string& s) {
  if (s.empty() || s.size() > 15 || s.find_first_not_of("0123456789") != std::string::npos) {
    return std::nullopt;
  }
  return std::stoll(s);
}

std::string IsoTime(int64_t ms) {
  if (ms <= 0) return "-";
  std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// One line, at most `width` bytes (an ellipsis marks a cut).
std::string Cell(std::string s, size_t width) {
  for (char& c : s) {
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  }
  if (s.size() > width) s = s.substr(0, width - 3) + "...";
  return s;
}

// Prints rows as columns separated by two spaces; the last column unpadded.
void PrintTable(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths;
  for (const auto& row : rows) {
    if (widths.size() < row.size()) widths.resize(row.size(), 0);
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(widths[i] - row[i].size() + 2, ' ');
    }
    std::printf("%s\n", line.c_str());
  }
}

void PrintJson(const json& j) { std::printf("%s\n", j.dump(2).c_str()); }

class QueueCommandImpl final : public QueueCommand {
 public:
  explicit QueueCommandImpl(CLI::App& cli) {
    queue_ = cli.add_subcommand("queue", "admin: counts, failed / dead-letter jobs, retry, clean, "
                                         "pause, resume");
    queue_->allow_extras();  // unknown arguments are reported by Run (exit 2)
    counts_ = Leaf(queue_, "counts", "jobs per state, dead-letter jobs, paused flag");
    failed_ = Leaf(queue_, "failed", "newest jobs in the failed set");
    failed_->add_option("--limit", limit_, "how many jobs to show (default 20)");
    dlq_ = queue_->add_subcommand("dlq", "the dead-letter queue");
    dlq_->allow_extras();
    dlq_list_ = Leaf(dlq_, "list", "newest dead-letter jobs");
    dlq_list_->add_option("--limit", limit_, "how many jobs to show (default 20)");
    dlq_retry_ = Leaf(dlq_, "retry", "re-run a dead-letter job (or all) in the main queue");
    dlq_retry_->add_option("id", id_, "job id");
    dlq_retry_->add_flag("--all", all_, "every dead-letter job");
    dlq_purge_ = Leaf(dlq_, "purge", "delete every dead-letter job");
    retry_failed_ = Leaf(queue_, "retry-failed", "move every failed job back to wait");
    clean_ = Leaf(queue_, "clean", "remove jobs finished more than --grace seconds ago");
    clean_->add_option("--grace", grace_, "age in seconds a job must have reached");
    clean_->add_option("--state", state_, "completed or failed");
    clean_->add_option("--limit", limit_, "at most this many jobs (default: no limit)");
    pause_ = Leaf(queue_, "pause", "stop every worker from taking new jobs");
    resume_ = Leaf(queue_, "resume", "let workers take jobs again");
    workers_ = Leaf(queue_, "workers", "live workers (registry heartbeats)");
  }

  bool parsed() const override { return queue_->parsed(); }

  int Run(const Config& config) override {
    CLI::App* leaf = SelectedLeaf();
    for (CLI::App* app : {queue_, dlq_, leaf}) {
      if (app != nullptr && !app->remaining().empty()) {
        return Usage("unexpected argument '" + app->remaining().front() + "'");
      }
    }
    if (leaf == nullptr) return Usage(MissingSubcommandHelp());
    queue::RedisOptions o;
    o.host = config.redis_host;
    o.port = config.redis_port;
    o.password = config.redis_password;
    for (const auto& [host, port] : config.redis_sentinels) o.sentinels.push_back({host, port});
    o.sentinel_master = config.redis_sentinel_master;
    o.sentinel_password = config.redis_sentinel_password;
    o.prefix = config.queue_prefix;
    o.queue_name = config.queue_name;
    queue_label_ = o.prefix + ":" + o.queue_name;

    // Usage is checked before connecting, so a typo never waits on Redis.
    std::optional<int64_t> limit;
    if (!limit_.empty()) {
      limit = ParseCount(limit_);
      if (!limit) return Usage("--limit must be a non-negative integer");
    }
    if (leaf == clean_) {
      if (grace_.empty()) return Usage("clean needs --grace SECONDS");
      if (!ParseCount(grace_)) return Usage("--grace must be a non-negative number of seconds");
      if (state_ != "completed" && state_ != "failed") {
        return Usage("clean needs --state completed or --state failed");
      }
    }
    if (leaf == dlq_retry_ && (id_.empty() == !all_)) {
      return Usage("dlq retry needs a job ID or --all (not both)");
    }
    if ((leaf == failed_ || leaf == dlq_list_) &&
        (limit.value_or(1) < 1 || limit.value_or(1) > queue::kMaxListCount)) {
      return Usage("--limit must be in 1.." + std::to_string(queue::kMaxListCount));
    }

    if (leaf == workers_) return Workers(o);
    auto admin = queue::OpenRedisAdmin(o);
    if (!admin) return Failed(admin.status());
    queue::QueueAdmin& a = **admin;
    if (leaf == counts_) return Counts(a);
    if (leaf == failed_) return List(a.ListFailed(0, limit.value_or(kDefaultListLimit)));
    if (leaf == dlq_list_) return List(a.ListDeadLetters(0, limit.value_or(kDefaultListLimit)));
    if (leaf == dlq_retry_) return DlqRetry(a);
    if (leaf == dlq_purge_) {
      return Count(a.PurgeDeadLetters(), "purged", "dead-letter jobs deleted");
    }
    if (leaf == retry_failed_) {
      return Count(a.RetryFailed(), "retried", "failed jobs moved back to wait");
    }
    if (leaf == clean_) return Clean(a, *ParseCount(grace_) * 1000, limit.value_or(0));
    if (leaf == pause_ || leaf == resume_) return PauseResume(a, leaf == pause_);
    return Usage(MissingSubcommandHelp());
  }

 private:
  CLI::App* Leaf(CLI::App* parent, const char* name, const char* help) {
    CLI::App* app = parent->add_subcommand(name, help);
    app->add_flag("--json", json_, "print JSON instead of a table");
    app->allow_extras();
    return app;
  }

  CLI::App* SelectedLeaf() const {
    for (CLI::App* app : {counts_, failed_, dlq_list_, dlq_retry_, dlq_purge_, retry_failed_,
                          clean_, pause_, resume_, workers_}) {
      if (app->parsed()) return app;
    }
    return nullptr;
  }

  std::string MissingSubcommandHelp() const {
    return dlq_->parsed() ? "dlq needs a subcommand: list, retry, purge"
                          : "queue needs a subcommand: counts, failed, dlq, retry-failed, clean, "
                            "pause, resume, workers";
  }

  static int Usage(const std::string& message) {
    std::fprintf(stderr, "conveyor queue: %s (see `conveyor queue --help`)\n", message.c_str());
    return kExitUsage;
  }

  static int Failed(const Status& s) {
    std::fprintf(stderr, "conveyor queue: %s\n", s.ToString().c_str());
    return kExitFailed;
  }

  int Counts(queue::QueueAdmin& a) {
    auto c = a.Counts();
    if (!c) return Failed(c.status());
    auto dead = a.DeadLetterCount();
    if (!dead) return Failed(dead.status());
    auto paused = a.IsPaused();
    if (!paused) return Failed(paused.status());
    // BullMQ's getJobCounts names, plus the dead-letter queue and the flag.
    std::vector<std::pair<std::string, int64_t>> rows = {
        {"waiting", c->wait},         {"active", c->active},
        {"delayed", c->delayed},      {"prioritized", c->prioritized},
        {"completed", c->completed},  {"failed", c->failed},
        {"paused", c->paused},        {"waiting-children", c->waiting_children},
        {"dead-letter", *dead}};
    if (json_) {
      json j = json::object();
      for (const auto& [k, v] : rows) j[k] = v;
      j["isPaused"] = *paused;
      j["queue"] = queue_label_;
      PrintJson(j);
      return kExitOk;
    }
    std::vector<std::vector<std::string>> table = {{"STATE", "JOBS"}};
    for (const auto& [k, v] : rows) table.push_back({k, std::to_string(v)});
    PrintTable(table);
    std::printf("queue %s is %s\n", queue_label_.c_str(), *paused ? "PAUSED" : "running");
    return kExitOk;
  }

  int Workers(const queue::RedisOptions& o) {
    queue::WorkerRegistry registry(o);
    auto list = registry.List();
    if (!list) return Failed(list.status());
    if (json_) {
      json arr = json::array();
      for (const auto& w : *list) {
        arr.push_back({{"id", w.id},
                       {"host", w.host},
                       {"pid", w.pid},
                       {"version", w.version},
                       {"concurrency", w.concurrency},
                       {"active", w.active},
                       {"started", w.started_ms},
                       {"lastBeat", w.last_beat_ms}});
      }
      PrintJson(arr);
      return kExitOk;
    }
    if (list->empty()) {
      std::printf("no live workers\n");
      return kExitOk;
    }
    std::vector<std::vector<std::string>> table = {
        {"ID", "HOST", "PID", "VERSION", "ACTIVE", "STARTED", "LAST BEAT"}};
    for (const auto& w : *list) {
      table.push_back({w.id, w.host, std::to_string(w.pid), w.version,
                       std::to_string(w.active) + "/" + std::to_string(w.concurrency),
                       IsoTime(w.started_ms), IsoTime(w.last_beat_ms)});
    }
    PrintTable(table);
    return kExitOk;
  }

  int List(const Result<std::vector<queue::FinishedJob>>& jobs) {
    if (!jobs) return Failed(jobs.status());
    if (json_) {
      json arr = json::array();
      for (const auto& j : *jobs) {
        json data = json::parse(j.data_json, nullptr, /*allow_exceptions=*/false);
        arr.push_back({{"id", j.id},
                       {"name", j.name},
                       {"failedReason", j.failed_reason},
                       {"attemptsMade", j.attempts_made},
                       {"finishedOn", j.finished_on_ms},
                       {"data", data.is_discarded() ? json(j.data_json) : data}});
      }
      PrintJson(arr);
      return kExitOk;
    }
    if (jobs->empty()) {
      std::printf("no jobs\n");
      return kExitOk;
    }
    std::vector<std::vector<std::string>> table = {{"ID", "ATTEMPTS", "FINISHED", "REASON"}};
    for (const auto& j : *jobs) {
      table.push_back({j.id, std::to_string(j.attempts_made), IsoTime(j.finished_on_ms),
                       Cell(j.failed_reason, kReasonWidth)});
    }
    PrintTable(table);
    return kExitOk;
  }

  int DlqRetry(queue::QueueAdmin& a) {
    if (all_) return Count(a.RetryAllDeadLetters(), "retried", "dead-letter jobs sent back to wait");
    auto r = a.RetryDeadLetter(id_);
    if (!r) return Failed(r.status());
    if (json_) {
      PrintJson({{"retried", 1}, {"id", id_}});
    } else {
      std::printf("dead-letter job %s sent back to wait in %s\n", id_.c_str(),
                  queue_label_.c_str());
    }
    return kExitOk;
  }

  int Count(const Result<int64_t>& n, const char* key, const char* sentence) {
    if (!n) return Failed(n.status());
    if (json_) {
      PrintJson({{key, *n}});
    } else {
      std::printf("%lld %s\n", static_cast<long long>(*n), sentence);
    }
    return kExitOk;
  }

  int Clean(queue::QueueAdmin& a, int64_t grace_ms, int64_t limit) {
    auto state = state_ == "completed" ? queue::FinishedState::kCompleted
                                       : queue::FinishedState::kFailed;
    auto ids = a.Clean(grace_ms, state, limit);
    if (!ids) return Failed(ids.status());
    if (json_) {
      PrintJson({{"removed", ids->size()}, {"state", state_}, {"ids", *ids}});
    } else {
      std::printf("%zu %s jobs removed\n", ids->size(), state_.c_str());
    }
    return kExitOk;
  }

  int PauseResume(queue::QueueAdmin& a, bool pause) {
    auto r = pause ? a.Pause() : a.Resume();
    if (!r) return Failed(r.status());
    if (json_) {
      PrintJson({{"queue", queue_label_}, {"paused", pause}});
    } else {
      std::printf("queue %s %s\n", queue_label_.c_str(), pause ? "paused" : "resumed");
    }
    return kExitOk;
  }

  CLI::App* queue_ = nullptr;
  CLI::App* counts_ = nullptr;
  CLI::App* failed_ = nullptr;
  CLI::App* dlq_ = nullptr;
  CLI::App* dlq_list_ = nullptr;
  CLI::App* dlq_retry_ = nullptr;
  CLI::App* dlq_purge_ = nullptr;
  CLI::App* retry_failed_ = nullptr;
  CLI::App* clean_ = nullptr;
  CLI::App* pause_ = nullptr;
  CLI::App* resume_ = nullptr;
  CLI::App* workers_ = nullptr;
  // Parsed values (strings, so malformed numbers are ours to report: exit 2).
  bool json_ = false;
  bool all_ = false;
  std::string limit_;
  std::string grace_;
  std::string state_;
  std::string id_;
  std::string queue_label_;
};

}  // namespace

std::unique_ptr<QueueCommand> AddQueueCommand(CLI::App& cli) {
  return std::make_unique<QueueCommandImpl>(cli);
}

}  // namespace conveyor::app
