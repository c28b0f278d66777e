// Design
// ------
// The worker has one queue::Consumer, shared by its slot threads and its
// housekeeping thread. The Redis consumer (queue.h, redis_queue.cc) is event
// driven: every call of every thread goes over one hiredis async connection
// run by an Asio thread, so a slot's fetch, another slot's completion, a
// progress report and the lock renewal of all running jobs are pipelined on
// one socket instead of each thread holding a connection of its own. Only
// the wait for work (BZPOPMIN on the marker) has a second connection, one for
// the whole worker: idle slots share that one wait.
//
// Each slot thread loops: Fetch a job (BullMQ's moveToActive, which also
// promotes due delayed jobs); if none is ready, wait on the queue's wake-up
// marker for at most kIdleWaitMs so that Stop() is noticed promptly. A
// fetched job is registered in `running_` (JobStarted) so that the
// housekeeping thread can renew its lock; the slot then runs it, records the
// outcome and unregisters it (JobEnded). The job's own work (JobRunner::Run)
// blocks only its slot thread. Leases are told apart by token, not job id:
// when a lease lapses (renewals failed for a lock's length) the stalled check
// hands the job to another slot, possibly of this worker, while the first
// run is still going. A lapsed lease is marked, and a run under it is not
// started again after an outage: the job belongs to its new lease.
//
// A job is run in two steps: JobRunner::Run (job_runner.h) turns it into an
// Outcome without a queue call, then OutcomeApplier::Apply (outcome.h)
// records the outcome: the row first, then the upload, then the queue, where
// a completion also leases the slot's next job in the same round trip. The
// runner's progress stages are posted to the queue through the shared
// consumer without waiting for Redis (Consumer::PostProgress); the job's
// completion follows them on the same pipelined connection.
//
// The housekeeping thread renews locks and runs the stalled check through
// the shared consumer, and uses the producer Queue for the reconciler. All
// waiting is on `cv_`, so Stop() wakes every loop at once.
#include "worker/worker.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "core/ids.h"
#include "queue/payload.h"
#include "queue/queue.h"
#include "storage/blob_store.h"
#include "storage/metadata_store.h"
#include "worker/job_metrics.h"
#include "worker/job_runner.h"
#include "worker/outcome.h"
#include "worker/sandbox.h"

namespace conveyor::worker {
namespace {

using std::chrono::milliseconds;

constexpr int64_t kIdleWaitMs = 1000;      // longest marker wait before re-checking Stop()
constexpr int64_t kMinBackoffMs = 100;     // first wait after a Redis/database error
constexpr int64_t kMaxBackoffMs = 5000;    // cap of that wait
constexpr int kReconcileBatch = 200;       // pending rows looked at per reconciler pass

}  // namespace

class Worker::Impl {
 public:
  Impl(WorkerSettings settings, storage::MetadataStore* store, storage::BlobStore* blobs,
       queue::Queue* producer, ConsumerFactory factory)
      : settings_(std::move(settings)),
        store_(store),
        blobs_(blobs),
        producer_(producer),
        factory_(std::move(factory)),
        worker_id_(NewUuid()),
        applier_(store, blobs) {
    auto a = processing::MakeAnalyzer(settings_.analyzer);
    if (!a) {
      spdlog::error("worker: analysis provider: {}; using the local one",
                    a.status().ToString());
      a = processing::MakeAnalyzer(processing::AnalyzerSettings{});
    }
    analyzer_ = std::move(*a);
    RunnerEnv env;
    env.pause = [this](int64_t ms) {
      std::unique_lock lock(mu_);
      return cv_.wait_for(lock, milliseconds(ms), [&] { return stopped_; });
    };
    runner_ = std::make_unique<JobRunner>(settings_, store_, blobs_, analyzer_.get(),
                                          std::move(env));
  }

  void Start() {
    std::lock_guard lock(mu_);
    if (started_) return;
    started_ = true;
    job_metrics::SetSlotsTotal(settings_.concurrency);
    // The worker's /proc files (environ holds its secrets) are closed to its
    // parser children and to anything else without CAP_SYS_PTRACE.
    if (!sandbox::ProtectWorkerProcess()) spdlog::warn("worker: cannot make the process non-dumpable");
    for (int i = 0; i < settings_.concurrency; ++i) threads_.emplace_back([this] { SlotLoop(); });
    threads_.emplace_back([this] { HousekeepingLoop(); });
  }

  void Stop() {
    {
      std::unique_lock lock(mu_);
      if (!started_ || stopped_) return;
      stopping_ = true;
      cv_.notify_all();
      // Running jobs get the grace period to finish.
      cv_.wait_for(lock, milliseconds(settings_.shutdown_grace_ms),
                   [&] { return running_.empty(); });
      if (!running_.empty()) ReleaseRunningLocked();
      stopped_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
    threads_.clear();
  }

  int64_t finished() const { return finished_.load(); }

 private:
  // Waits `ms` or until Stop(); true when stopping.
  bool WaitOrStop(int64_t ms) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, milliseconds(ms), [&] { return stopping_; });
  }

  bool stopping() {
    std::lock_guard lock(mu_);
    return stopping_;
  }

  // The worker's one consumer, opened by the first thread that needs it,
  // retrying with capped backoff until it works; nullptr on Stop().
  queue::Consumer* Connect() {
    int64_t backoff = kMinBackoffMs;
    while (!stopping()) {
      {
        std::lock_guard lock(consumer_mu_);
        if (consumer_) return consumer_.get();
        auto c = factory_();
        if (c) {
          consumer_ = std::move(*c);
          return consumer_.get();
        }
        spdlog::warn("worker: cannot reach the queue: {}", c.status().ToString());
      }
      if (WaitOrStop(backoff)) break;
      backoff = std::min(backoff * 2, kMaxBackoffMs);
    }
    return nullptr;
  }

  // Hook point: a job leased by this worker is about to run (or, when
  // prefetched with a completion, waits for its slot); its lock is renewed
  // from now on.
  void JobStarted(const std::shared_ptr<queue::ActiveJob>& job) {
    std::lock_guard lock(mu_);
    running_[job->token] = Lease{job, false};
  }

  // True when the housekeeping thread found `job`'s lock gone or taken.
  bool LeaseLapsed(const queue::ActiveJob& job) {
    std::lock_guard lock(mu_);
    auto it = running_.find(job.token);
    return it != running_.end() && it->second.lapsed;
  }

  // Hook point: this worker is done with `job` (recorded, released or
  // abandoned); its lock is no longer renewed.
  void JobEnded(const queue::ActiveJob& job) {
    {
      std::lock_guard lock(mu_);
      running_.erase(job.token);
    }
    cv_.notify_all();
  }

  void SlotLoop() {
    queue::Consumer* consumer = Connect();
    if (!consumer) return;
    const std::string token_base = worker_id_ + ":" + std::to_string(next_slot_++);
    uint64_t seq = 0;
    int64_t backoff = kMinBackoffMs;
    // A job leased together with the previous job's completion (one round trip).
    std::optional<queue::ActiveJob> prefetched;
    while (!stopping()) {
      std::string token = token_base + ":" + std::to_string(seq++);
      std::shared_ptr<queue::ActiveJob> active;
      if (prefetched) {
        active = std::make_shared<queue::ActiveJob>(std::move(*prefetched));
        prefetched.reset();
      } else {
        auto job = consumer->Fetch(token, settings_.lock_ms);
        if (!job) {
          spdlog::warn("worker: fetch failed: {}", job.status().ToString());
          if (WaitOrStop(backoff)) break;
          backoff = std::min(backoff * 2, kMaxBackoffMs);
          continue;
        }
        backoff = kMinBackoffMs;
        if (!job->has_value()) {
          auto woke = consumer->WaitForWork(kIdleWaitMs);
          if (!woke) {
            if (WaitOrStop(backoff)) break;
            backoff = std::min(backoff * 2, kMaxBackoffMs);
          }
          continue;
        }
        active = std::make_shared<queue::ActiveJob>(std::move(**job));
      }
      JobStarted(active);
      job_metrics::BusySlot busy;
      // Unless stopping, a completion leases the next job in the same round trip.
      const OutcomeApplier::NextLease lease{token_base + ":" + std::to_string(seq++),
                                            settings_.lock_ms};
      OutcomeApplier::Applied applied;
      // A run that meets an outage runs again, in the same attempt and under
      // the same lease (renewed by the housekeeping thread), until the outage
      // is over or has lasted outage_wait_ms; then it counts as an attempt.
      int64_t outage_since_ms = -1;
      int64_t outage_backoff = kMinBackoffMs;
      for (;;) {
        Outcome outcome = runner_->Run(*active, [&](const std::string& stage, int percent) {
          ReportProgress(*consumer, active->id, stage, percent);
        });
        const bool may_wait = settings_.outage_wait_ms > 0 && !stopping() &&
                              (outage_since_ms < 0 ||
                               NowMs() - outage_since_ms < settings_.outage_wait_ms);
        applied = applier_.Apply(*consumer, *active, std::move(outcome),
                                 stopping() ? nullptr : &lease, may_wait);
        if (!applied.outage) break;
        if (LeaseLapsed(*active)) {
          // The stalled check has put the job back (or another worker holds
          // it): running it again here would only race that run.
          spdlog::warn("worker: job {} lost its lease during an outage; left to its next run",
                       active->id);
          break;
        }
        if (outage_since_ms < 0) outage_since_ms = NowMs();
        if (WaitOrStop(outage_backoff)) {
          // Stopping: hand the job back now rather than to its lock.
          auto r = consumer->Release(*active);
          if (!r) spdlog::warn("worker: releasing job {}: {}", active->id, r.status().ToString());
          break;
        }
        outage_backoff = std::min(outage_backoff * 2, kMaxBackoffMs);
      }
      SettleSandboxChild();  // the job's child ended meanwhile
      if (applied.finished) finished_++;
      if (applied.next) {
        prefetched = std::move(*applied.next);
        JobStarted(std::make_shared<queue::ActiveJob>(*prefetched));
      }
      JobEnded(*active);
    }
    if (prefetched) {
      // Leased but never started: give it back at once.
      auto r = consumer->Release(*prefetched);
      if (!r) spdlog::warn("worker: releasing job {}: {}", prefetched->id, r.status().ToString());
      JobEnded(*prefetched);
    }
  }

  // A stage of a job for its watchers: BullMQ's progress field and event
  // ({"stage","percent"}) and a line of the job's log, in one round trip.
  static void ReportProgress(queue::Consumer& consumer, const std::string& id,
                             const std::string& stage, int percent) {
    nlohmann::json p = {{"stage", stage}, {"percent", percent}};
    consumer.PostProgress(id, p.dump(), "stage " + stage + " " + std::to_string(percent) + "%");
  }

  void HousekeepingLoop() {
    queue::Consumer* consumer = Connect();
    if (!consumer) return;
    using clock = std::chrono::steady_clock;
    const int64_t renew_ms = std::max<int64_t>(settings_.lock_ms / 2, 10);
    auto next_renew = clock::now();
    auto next_stalled = clock::now();
    auto next_reconcile = clock::now() + milliseconds(settings_.reconcile_interval_ms);
    for (;;) {
      auto now = clock::now();
      if (now >= next_renew) {
        RenewLocks(*consumer);
        next_renew = now + milliseconds(renew_ms);
      }
      if (now >= next_stalled) {
        auto r = consumer->RecoverStalled(settings_.stalled_interval_ms);
        if (!r) {
          spdlog::warn("worker: stalled check failed: {}", r.status().ToString());
        } else {
          for (const auto& id : *r) spdlog::warn("worker: job {} stalled and was put back", id);
          job_metrics::Stalled(static_cast<int64_t>(r->size()));
        }
        next_stalled = now + milliseconds(settings_.stalled_interval_ms);
      }
      if (now >= next_reconcile) {
        Reconcile();
        next_reconcile = now + milliseconds(settings_.reconcile_interval_ms);
      }
      auto next = std::min({next_renew, next_stalled, next_reconcile});
      std::unique_lock lock(mu_);
      if (cv_.wait_until(lock, next, [&] { return stopped_; })) return;
    }
  }

  void RenewLocks(queue::Consumer& consumer) {
    std::vector<std::shared_ptr<queue::ActiveJob>> jobs;
    {
      std::lock_guard lock(mu_);
      for (auto& [token, lease] : running_) jobs.push_back(lease.job);
    }
    if (jobs.empty()) return;
    std::vector<queue::ActiveJob*> ptrs;
    for (auto& j : jobs) ptrs.push_back(j.get());
    auto lost = consumer.ExtendLocks(ptrs, settings_.lock_ms);
    if (!lost) {
      spdlog::warn("worker: lock renewal failed: {}", lost.status().ToString());
      return;
    }
    if (lost->empty()) return;
    std::lock_guard lock(mu_);
    for (const queue::ActiveJob* job : *lost) {
      spdlog::warn("worker: lost the lock of job {}", job->id);
      auto it = running_.find(job->token);
      if (it != running_.end()) it->second.lapsed = true;
    }
  }

  // Pending rows whose job is missing from Redis (the API crashed between the
  // row and the add, or Redis lost it) are added again. Adding is idempotent.
  void Reconcile() {
    if (!producer_) return;
    int64_t older_than = NowMs() - settings_.reconcile_interval_ms;
    auto rows = store_->ListPending(older_than, kReconcileBatch);
    if (!rows) {
      spdlog::warn("worker: reconciler cannot list pending rows: {}", rows.status().ToString());
      return;
    }
    for (const auto& row : *rows) {
      auto exists = producer_->Exists(row.id);
      if (!exists) return;  // Redis down: try again next pass
      if (*exists) continue;
      queue::JobPayload p{row.id,           row.user_id,       row.session_id, row.storage_path,
                          row.original_name, row.mime_type, row.size_bytes,  row.message};
      auto added = producer_->Add(row.id, queue::kJobName, queue::EncodeJobPayload(p),
                                  queue::JobOptions{});
      if (added && *added) spdlog::info("worker: reconciler re-added job {}", row.id);
    }
  }

  // Stop() ran out of grace: hand running jobs back so that another worker
  // takes them at once. Called with mu_ held.
  void ReleaseRunningLocked() {
    queue::Consumer* c = nullptr;
    {
      std::lock_guard lock(consumer_mu_);
      c = consumer_.get();
    }
    if (!c) return;  // never connected: nothing was leased
    for (auto& [token, lease] : running_) {
      const std::shared_ptr<queue::ActiveJob>& job = lease.job;
      auto r = c->Release(*job);
      if (!r) spdlog::warn("worker: could not release job {}: {}", job->id, r.status().ToString());
      else spdlog::info("worker: released job {} at shutdown", job->id);
    }
  }

  const WorkerSettings settings_;
  storage::MetadataStore* const store_;
  storage::BlobStore* const blobs_;
  queue::Queue* const producer_;
  const ConsumerFactory factory_;
  const std::string worker_id_;

  std::mutex consumer_mu_;
  std::unique_ptr<queue::Consumer> consumer_;  // shared by every thread; set once

  std::mutex mu_;
  std::condition_variable cv_;
  bool started_ = false;
  bool stopping_ = false;  // no new fetches
  bool stopped_ = false;   // housekeeping ends too
  // A job this worker leased, by lease token.
  struct Lease {
    std::shared_ptr<queue::ActiveJob> job;
    bool lapsed = false;  // its lock was found gone or taken
  };
  std::map<std::string, Lease> running_;
  const OutcomeApplier applier_;
  std::unique_ptr<processing::Analyzer> analyzer_;  // thread-safe; shared by the slots
  std::unique_ptr<JobRunner> runner_;               // uses analyzer_; shared by the slots
  std::vector<std::thread> threads_;
  std::atomic<int> next_slot_{0};
  std::atomic<int64_t> finished_{0};
};

Worker::Worker(WorkerSettings settings, storage::MetadataStore* store, storage::BlobStore* blobs,
               queue::Queue* producer, ConsumerFactory consumer_factory)
    : impl_(std::make_unique<Impl>(std::move(settings), store, blobs, producer,
                                   std::move(consumer_factory))) {}

Worker::~Worker() { Stop(); }

void Worker::Start() { impl_->Start(); }
void Worker::Stop() { impl_->Stop(); }
int64_t Worker::finished() const { return impl_->finished(); }

}  // namespace conveyor::worker
