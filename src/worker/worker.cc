// Design
// ------
// Each slot thread owns a queue::Consumer and loops: Fetch a job (BullMQ's
// moveToActive, which also promotes due delayed jobs); if none is ready, block
// on the queue's wake-up marker for at most kIdleWaitMs so that Stop() is
// noticed promptly. A fetched job is registered in `running_` so that the
// housekeeping thread can renew its lock; the slot then runs Process() and
// unregisters it.
//
// The housekeeping thread owns one more Consumer for lock renewals and the
// stalled check, and uses the producer Queue for the reconciler. All waiting
// is on `cv_`, so Stop() wakes every loop at once.
//
// The database row is written before the queue is told, so that a client that
// sees a job finished in BullMQ also sees it finished in the row; if the queue
// call then fails (lock lost, Redis down) the job may run again, which is safe
// because processing is idempotent.
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

namespace conveyor::worker {
namespace {

using std::chrono::milliseconds;

constexpr int64_t kIdleWaitMs = 1000;      // longest marker wait before re-checking Stop()
constexpr int64_t kMinBackoffMs = 100;     // first wait after a Redis/database error
constexpr int64_t kMaxBackoffMs = 5000;    // cap of that wait
constexpr int kReconcileBatch = 200;       // pending rows looked at per reconciler pass
constexpr const char* kInvalidFormat = "Invalid file format";
// Client-facing messages of storage trouble (details go to the log only).
constexpr const char* kInvalidStoragePath = "Invalid storage path";
constexpr const char* kInputUnreadableMessage = "Uploaded file could not be read";

std::string FileIdFor(const std::string& job_id) { return "file_" + job_id; }

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
        worker_id_(NewUuid()) {
    auto a = processing::MakeAnalyzer(settings_.analyzer);
    if (!a) {
      spdlog::error("worker: analysis provider: {}; using the local one",
                    a.status().ToString());
      a = processing::MakeAnalyzer(processing::AnalyzerSettings{});
    }
    analyzer_ = std::move(*a);
  }

  void Start() {
    std::lock_guard lock(mu_);
    if (started_) return;
    started_ = true;
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

  // Opens a consumer, retrying with capped backoff until it works or Stop().
  std::unique_ptr<queue::Consumer> Connect() {
    int64_t backoff = kMinBackoffMs;
    while (!stopping()) {
      auto c = factory_();
      if (c) return std::move(*c);
      spdlog::warn("worker: cannot reach the queue: {}", c.status().ToString());
      if (WaitOrStop(backoff)) break;
      backoff = std::min(backoff * 2, kMaxBackoffMs);
    }
    return nullptr;
  }

  void SlotLoop() {
    std::unique_ptr<queue::Consumer> consumer = Connect();
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
      {
        std::lock_guard lock(mu_);
        running_[active->id] = active;
      }
      std::optional<std::string> result_json = Process(*consumer, *active);
      if (result_json) {
        if (stopping()) {
          FinishQueue(*consumer, *active, *result_json);
        } else {
          std::string next_token = token_base + ":" + std::to_string(seq++);
          auto r = consumer->CompleteAndFetch(*active, *result_json, next_token, settings_.lock_ms);
          if (!r.completed) {
            spdlog::warn("worker: completing job {} in the queue: {}", active->id,
                         r.completed.status().ToString());
          }
          finished_++;
          if (r.next && r.next->has_value()) {
            prefetched = std::move(**r.next);
            std::lock_guard lock(mu_);
            running_[prefetched->id] = std::make_shared<queue::ActiveJob>(*prefetched);
          }
        }
      }
      {
        std::lock_guard lock(mu_);
        running_.erase(active->id);
      }
      cv_.notify_all();
    }
    if (prefetched) {
      // Leased but never started: give it back at once.
      auto r = consumer->Release(*prefetched);
      if (!r) spdlog::warn("worker: releasing job {}: {}", prefetched->id, r.status().ToString());
      std::lock_guard lock(mu_);
      running_.erase(prefetched->id);
      cv_.notify_all();
    }
  }

  void HousekeepingLoop() {
    std::unique_ptr<queue::Consumer> consumer = Connect();
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
      for (auto& [id, job] : running_) jobs.push_back(job);
    }
    if (jobs.empty()) return;
    std::vector<queue::ActiveJob*> ptrs;
    for (auto& j : jobs) ptrs.push_back(j.get());
    auto lost = consumer.ExtendLocks(ptrs, settings_.lock_ms);
    if (!lost) {
      spdlog::warn("worker: lock renewal failed: {}", lost.status().ToString());
      return;
    }
    for (const auto& id : *lost) spdlog::warn("worker: lost the lock of job {}", id);
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
    auto c = factory_();
    if (!c) return;  // their locks lapse and the stalled check recovers them
    for (auto& [id, job] : running_) {
      auto r = (*c)->Release(*job);
      if (!r) spdlog::warn("worker: could not release job {}: {}", id, r.status().ToString());
      else spdlog::info("worker: released job {} at shutdown", id);
    }
  }

  // What a job is about, from its row (the source of truth) or, for a job a
  // Node.js producer added without a row, from its data once checked.
  struct JobFacts {
    std::string user_id;
    std::string session_id;
    std::string original_name;
    std::string message;
  };

  // A storage error as the client may see it; the detail goes to the log.
  Status PublicStorageError(const queue::ActiveJob& job, const Status& why) {
    spdlog::warn("worker: job {}: upload: {}", job.id, why.ToString());
    switch (why.code()) {
      case Errc::kNotFound: return FailedPrecondition(kInputMissingMessage);
      case Errc::kInvalidArgument: return InvalidArgument(kInvalidStoragePath);
      default: return Unavailable(kInputUnreadableMessage);
    }
  }

  // Runs one job. Returns the result JSON when the job succeeded and the queue
  // still has to be told (the caller completes it, fetching the next job in
  // the same round trip); nullopt when everything is already recorded.
  //
  // The row decides who the job belongs to and which file it reads: a job
  // with a row reads blob <job id> for the row's user and session, whatever
  // its data says. A job without a row (a Node.js producer) names its file in
  // `storagePath`; the file is adopted (BlobStore::Adopt: under STORAGE_DIR,
  // no symlink, not another job's) and becomes blob <job id> before the row
  // is written. Either way the worker holds the file open and the sandboxed
  // parser reads that descriptor.
  std::optional<std::string> Process(queue::Consumer& consumer, const queue::ActiveJob& job) {
    if (job.deferred_failure) {
      FailJob(consumer, job, FailedPrecondition(*job.deferred_failure), true);
      return std::nullopt;
    }
    auto row = store_->GetJob(job.id);
    if (!row) {
      RetryLater(consumer, job, row.status());
      return std::nullopt;
    }
    JobFacts facts;
    storage::OpenedBlob blob;
    if (row->has_value()) {
      const storage::JobRecord& r = **row;
      if (r.status == storage::JobStatus::kCompleted && r.result_json) {
        // Finished before, but the queue was not told: tell it now.
        return *r.result_json;
      }
      if (r.status == storage::JobStatus::kFailed) {
        auto f = consumer.Fail(job, r.error.value_or("failed"), "", /*retry=*/false);
        (void)f;
        return std::nullopt;
      }
      facts = {r.user_id, r.session_id, r.original_name, r.message};
      auto opened = blobs_->OpenBlob(job.id);
      if (!opened) {
        Status why = PublicStorageError(job, opened.status());
        if (IsTransient(why.code())) RetryLater(consumer, job, why);
        else FailJob(consumer, job, why, true);
        return std::nullopt;
      }
      blob = std::move(*opened);
    } else {
      auto adopted = AdoptProducerJob(consumer, job, &facts);
      if (!adopted) return std::nullopt;  // recorded
      blob = std::move(*adopted);
    }
    auto marked = store_->MarkProcessing(job.id, job.attempts_started);
    if (!marked && marked.code() != Errc::kFailedPrecondition) {
      RetryLater(consumer, job, marked.status());
      return std::nullopt;
    }

    // JOB_TIMEOUT_MS bounds the whole job: what is left of it bounds the
    // sandboxed extraction, and a job out of time fails with a timeout, which
    // the queue retries like any other.
    using steady = std::chrono::steady_clock;
    const auto job_deadline = steady::now() + milliseconds(settings_.job_timeout_ms);
    const Status timed_out = DeadlineExceeded(
        "Job timed out after " + std::to_string(settings_.job_timeout_ms) + " ms (JOB_TIMEOUT_MS)");
    if (settings_.processing_delay_ms > 0) {
      // Tests use this window to kill or stop the worker while it holds the
      // job. A Stop() whose grace ran out has released the job already:
      // abandon it.
      std::unique_lock lock(mu_);
      if (cv_.wait_for(lock, milliseconds(settings_.processing_delay_ms),
                       [&] { return stopped_; })) {
        return std::nullopt;
      }
    }
    processing::Input input{blob.path, facts.original_name, facts.message, blob.fd.get()};
    auto progress = [&](const std::string& stage, int percent) {
      nlohmann::json p = {{"stage", stage}, {"percent", percent}};
      (void)consumer.UpdateProgress(job.id, p.dump());
      (void)store_->SetProgress(job.id, percent);
      (void)consumer.AddLog(job.id, "stage " + stage + " " + std::to_string(percent) + "%");
    };
    SandboxSettings sandbox = settings_.sandbox;
    bool job_deadline_binds = false;
    if (settings_.job_timeout_ms > 0) {
      int64_t left =
          std::chrono::duration_cast<milliseconds>(job_deadline - steady::now()).count();
      if (left <= 0) {
        RetryLater(consumer, job, timed_out);
        return std::nullopt;
      }
      if (left < sandbox.timeout_ms) {
        sandbox.timeout_ms = left;
        job_deadline_binds = true;
      }
    }
    auto out = RunSandboxed(sandbox, input, settings_.limits, progress);
    if (out.code() == Errc::kDeadlineExceeded) {
      // The sandbox's timeout: the job's own when JOB_TIMEOUT_MS cut it short
      // (retried), else the file's (it takes too long to parse, every time).
      if (!job_deadline_binds) {
        FailJob(consumer, job, out.status(), true);
        return std::nullopt;
      }
      out = timed_out;
    }
    if (!out) {
      if (IsTransient(out.code())) {
        RetryLater(consumer, job, out.status());
      } else {
        FailJob(consumer, job, out.status(), true);
      }
      return std::nullopt;
    }

    progress("analyse", 80);
    processing::AnalysisInput ain;
    ain.text = out->text;
    ain.kind = out->kind;
    ain.message = facts.message;
    ain.extract_summary = out->summary;
    ain.name_hint = facts.original_name;
    ain.words = out->words;
    ain.pages = out->pages;
    ain.tables = out->tables;
    auto analysis = analyzer_->Analyze(ain);
    if (!analysis) {
      if (IsTransient(analysis.code())) {
        RetryLater(consumer, job, analysis.status());
      } else {
        FailJob(consumer, job, analysis.status(), true);
      }
      return std::nullopt;
    }

    const std::string file_id = FileIdFor(job.id);
    // Earlier files of the session that share key terms: best effort.
    nlohmann::json references = nlohmann::json::array();
    if (auto refs = FindReferences(*store_, facts.user_id, facts.session_id, file_id,
                                   analysis->keywords, settings_.references)) {
      for (const auto& r : *refs) {
        references.push_back(
            {{"fileId", r.file_id}, {"jobId", r.job_id}, {"snippet", r.snippet}, {"terms", r.terms}});
      }
    } else {
      spdlog::warn("worker: references of {}: {}", job.id, refs.status().ToString());
    }
    std::vector<storage::MemoryChunk> chunks;
    chunks.reserve(out->chunks.size());
    for (size_t i = 0; i < out->chunks.size(); ++i) {
      chunks.push_back({static_cast<int>(i), std::move(out->chunks[i])});
    }
    progress("store", 90);
    auto stored =
        store_->StoreMemory(facts.user_id, facts.session_id, job.id, file_id, chunks);
    if (!stored) {
      RetryLater(consumer, job, stored.status());
      return std::nullopt;
    }
    nlohmann::json result = {
        {"aiResponse", {{"text", analysis->summary}}},
        {"fileId", file_id},
        {"kind", std::string(processing::FileKindName(out->kind))},
        {"words", out->words},
        {"pages", out->pages},
        {"tables", out->tables},
        {"chunks", chunks.size()},
        {"keywords", analysis->keywords},
        {"language", analysis->language},
        {"provider", analysis->provider},
        {"references", references},
    };
    std::string result_json = result.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    auto done = store_->MarkCompleted(job.id, file_id, result_json);
    if (!done) {
      RetryLater(consumer, job, done.status());
      return std::nullopt;
    }
    RemoveBlob(job);
    return result_json;
  }

  void FinishQueue(queue::Consumer& consumer, const queue::ActiveJob& job,
                   const std::string& result_json) {
    auto r = consumer.Complete(job, result_json);
    if (!r) spdlog::warn("worker: completing job {} in the queue: {}", job.id, r.status().ToString());
    finished_++;
  }

  // A transient failure: retry with backoff while attempts remain, else final.
  void RetryLater(queue::Consumer& consumer, const queue::ActiveJob& job, const Status& why) {
    if (!queue::ShouldRetry(job.attempts_made, job.options.attempts, /*transient=*/true)) {
      FailJob(consumer, job, why, true);
      return;
    }
    spdlog::warn("worker: job {} attempt {} failed, will retry: {}", job.id,
                 job.attempts_made + 1, why.ToString());
    (void)store_->MarkPending(job.id);
    auto r = consumer.Fail(job, why.message(), StackFor(why), /*retry=*/true);
    if (!r) spdlog::warn("worker: scheduling retry of {}: {}", job.id, r.status().ToString());
  }

  // A final failure: the row says failed, the queue moves the job to failed
  // (and dead-letters it), the job's own stored upload (blob <job id>) is
  // deleted; never a file the job data names.
  void FailJob(queue::Consumer& consumer, const queue::ActiveJob& job, const Status& why,
               bool row_known) {
    std::string message = why.message().empty() ? std::string(kInvalidFormat) : why.message();
    spdlog::info("worker: job {} failed: {}", job.id, why.ToString());
    if (row_known) {
      auto r = store_->MarkFailed(job.id, message);
      if (!r) spdlog::warn("worker: recording failure of {}: {}", job.id, r.status().ToString());
    }
    if (row_known) RemoveBlob(job);
    auto r = consumer.Fail(job, message, StackFor(why), /*retry=*/false);
    if (!r) spdlog::warn("worker: failing job {} in the queue: {}", job.id, r.status().ToString());
    finished_++;
  }

  void RemoveBlob(const queue::ActiveJob& job) {
    if (!IsUuid(job.id)) return;
    if (auto r = blobs_->Remove(blobs_->PathFor(job.id)); !r) {
      spdlog::warn("worker: removing the upload of {}: {}", job.id, r.status().ToString());
    }
  }

  // A job without a row, from a Node.js producer: checks its data, adopts
  // its file as blob <job id> and writes the row. nullopt when the job was
  // failed or put back for a retry (already recorded).
  std::optional<storage::OpenedBlob> AdoptProducerJob(queue::Consumer& consumer,
                                                      const queue::ActiveJob& job,
                                                      JobFacts* facts) {
    auto payload = queue::DecodeJobPayload(job.data_json);
    if (!payload) {
      FailJob(consumer, job, payload.status(), /*row_known=*/false);
      return std::nullopt;
    }
    if (!payload->job_id.empty() && payload->job_id != job.id) {
      spdlog::warn("worker: job {} carries jobId {} in its data", job.id, payload->job_id);
    }
    // The rules the upload path applies (core/ids.h), so that a session means
    // the same bytes whichever way a file arrived. Without a row to record it
    // in, such a job fails in the queue only.
    Status invalid;
    if (!IsUuid(job.id)) invalid = InvalidArgument("Invalid job id (must be a UUID)");
    else if (payload->user_id.empty() || !IsValidUtf8(payload->user_id)) invalid = InvalidArgument("Invalid userId");
    else invalid = CheckSessionId(payload->session_id);
    if (!invalid.ok()) {
      FailJob(consumer, job, invalid, /*row_known=*/false);
      return std::nullopt;
    }
    *facts = {payload->user_id, payload->session_id, payload->original_name, payload->message};
    // Adopt first, then the row: a crash in between leaves blob <job id>,
    // which the next attempt's Adopt finds.
    auto blob = blobs_->Adopt(payload->storage_path, job.id);
    Status failure;
    if (!blob) failure = PublicStorageError(job, blob.status());
    if (!failure.ok() && IsTransient(failure.code())) {
      RetryLater(consumer, job, failure);
      return std::nullopt;
    }
    storage::NewJob nj;
    nj.id = job.id;
    nj.user_id = payload->user_id;
    nj.session_id = payload->session_id;
    nj.original_name = payload->original_name;
    nj.mime_type = payload->mime_type;
    nj.size_bytes = blob ? blob->size_bytes : payload->size;
    nj.storage_path = blobs_->PathFor(job.id);
    nj.message = payload->message;
    auto ins = store_->InsertJob(nj);
    if (!ins && ins.code() != Errc::kAlreadyExists) {
      RetryLater(consumer, job, ins.status());
      return std::nullopt;
    }
    if (!failure.ok()) {
      // Recorded in the row too, so the producer's user sees why.
      FailJob(consumer, job, failure, /*row_known=*/true);
      return std::nullopt;
    }
    return std::move(*blob);
  }

  static std::string StackFor(const Status& why) {
    return "Error: " + why.message() + "\n    at conveyor worker (" +
           std::string(ErrcName(why.code())) + ")";
  }

  const WorkerSettings settings_;
  storage::MetadataStore* const store_;
  storage::BlobStore* const blobs_;
  queue::Queue* const producer_;
  const ConsumerFactory factory_;
  const std::string worker_id_;

  std::mutex mu_;
  std::condition_variable cv_;
  bool started_ = false;
  bool stopping_ = false;  // no new fetches
  bool stopped_ = false;   // housekeeping ends too
  std::map<std::string, std::shared_ptr<queue::ActiveJob>> running_;
  std::unique_ptr<processing::Analyzer> analyzer_;  // thread-safe; shared by the slots
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
