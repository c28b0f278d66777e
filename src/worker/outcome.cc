#include "worker/outcome.h"

#include <spdlog/spdlog.h>

#include "core/ids.h"
#include "core/metrics.h"
#include "worker/job_metrics.h"
#include "queue/queue.h"
#include "storage/blob_store.h"

namespace conveyor::worker {
namespace {

// The client's error for a failure without a message of its own.
constexpr const char* kInvalidFormat = "Invalid file format";

// The entry appended to the job's BullMQ stacktrace.
std::string StackFor(const Status& why) {
  return "Error: " + why.message() + "\n    at conveyor worker (" +
         std::string(ErrcName(why.code())) + ")";
}

// The one retry decision: a transient failure is retried while attempts
// remain, unless the queue has already given up on the job (stalled too often).
bool RetriesLeft(const queue::ActiveJob& job) {
  return !job.deferred_failure &&
         queue::ShouldRetry(job.attempts_made, job.options.attempts, /*transient=*/true);
}

}  // namespace

const char* OutcomeName(const Outcome& outcome) {
  static constexpr const char* kNames[] = {"completed", "retry", "fail", "already_finished",
                                           "abandoned"};
  return kNames[outcome.index()];
}

OutcomeApplier::OutcomeApplier(storage::MetadataStore* store, storage::BlobStore* blobs)
    : store_(store), blobs_(blobs) {}

OutcomeApplier::Applied OutcomeApplier::Apply(queue::Consumer& consumer,
                                              const queue::ActiveJob& job, Outcome outcome,
                                              const NextLease* next,
                                              bool wait_outage) const {
  ScopedLogContext log_context(job_metrics::JobLogContext(job));
  if (auto* done = std::get_if<Completed>(&outcome)) {
    const int64_t store_ns = metrics::SteadyNowNs();
    auto recorded = store_->CompleteJob(done->completion);
    job_metrics::ObserveStage("store", metrics::SecondsSince(store_ns));
    if (recorded) {
      job_metrics::Completed(job.timestamp_ms);
      // One line per committed completion: the chaos test counts them.
      spdlog::info("worker: job {} completed", job.id);
      RemoveBlob(job);
      return TellCompleted(consumer, job, done->completion.result_json, next);
    }
    outcome = Retry{recorded.status()};  // decided below like any other retry
    if (recorded.code() == Errc::kAborted) {
      // Another run of this job committed at the same time (a lease that
      // lapsed while this run went on). If it completed the row, this run
      // ends as that completion, as a later run would (AlreadyFinished).
      auto row = store_->GetJob(job.id);
      if (row && row->has_value() && (*row)->status == storage::JobStatus::kCompleted) {
        spdlog::info("worker: job {} was completed by another run meanwhile", job.id);
        outcome = AlreadyFinished{.completed = true,
                                  .result_json = (*row)->result_json.value_or("null"),
                                  .error = ""};
      }
    }
  }

  const char* dead_letter_reason = job.deferred_failure ? "stalled" : "permanent";
  if (auto* retry = std::get_if<Retry>(&outcome)) {
    if (wait_outage && retry->why.code() == Errc::kUnavailable) {
      spdlog::warn("worker: job {} met an outage and runs again once it is over: {}", job.id,
                   retry->why.ToString());
      return {.finished = false, .next = std::nullopt, .outage = true};
    }
    if (!RetriesLeft(job)) {
      if (!job.deferred_failure) dead_letter_reason = "retries_exhausted";
      outcome = Fail{retry->why, /*has_row=*/true};  // the last attempt: dead-letter
    } else {
      job_metrics::Retried(retry->why.code());
      spdlog::warn("worker: job {} attempt {} failed, will retry: {}", job.id,
                   job.attempts_made + 1, retry->why.ToString());
      (void)store_->MarkPending(job.id);
      auto r = consumer.Fail(job, retry->why.message(), StackFor(retry->why), /*retry=*/true);
      if (!r) spdlog::warn("worker: scheduling retry of {}: {}", job.id, r.status().ToString());
      return {};
    }
  }

  if (auto* fail = std::get_if<Fail>(&outcome)) {
    const std::string message =
        fail->why.message().empty() ? std::string(kInvalidFormat) : fail->why.message();
    spdlog::info("worker: job {} failed: {}", job.id, fail->why.ToString());
    job_metrics::Failed(fail->why.code(), dead_letter_reason);
    if (fail->has_row) {
      auto r = store_->MarkFailed(job.id, message);
      if (!r && IsTransient(r.code())) {
        // The row cannot say so now (database down): failing the job in the
        // queue would leave the row pending for good (the reconciler does not
        // re-add a job BullMQ still holds) with its upload deleted. Leave
        // the job to its lock instead: the stalled check puts it back and
        // the next attempt records its fate once the database is back.
        spdlog::warn("worker: recording failure of {}: {}; left to the stalled check", job.id,
                     r.status().ToString());
        return {};
      }
      if (!r) spdlog::warn("worker: recording failure of {}: {}", job.id, r.status().ToString());
      RemoveBlob(job);
    }
    TellFailed(consumer, job, message, StackFor(fail->why));
    return {.finished = true, .next = std::nullopt, .outage = false};
  }

  if (auto* finished = std::get_if<AlreadyFinished>(&outcome)) {
    // An earlier run recorded the row and may have died before the rest.
    RemoveBlob(job);
    if (finished->completed) return TellCompleted(consumer, job, finished->result_json, next);
    TellFailed(consumer, job, finished->error, /*stack=*/"");
    return {.finished = true, .next = std::nullopt, .outage = false};
  }

  return {};  // Abandoned: released by Stop(), recorded by whoever runs it next
}

OutcomeApplier::Applied OutcomeApplier::TellCompleted(queue::Consumer& consumer,
                                                      const queue::ActiveJob& job,
                                                      const std::string& result_json,
                                                      const NextLease* next) const {
  Applied applied{.finished = true, .next = std::nullopt, .outage = false};
  if (!next) {
    auto r = consumer.Complete(job, result_json);
    if (!r) spdlog::warn("worker: completing job {} in the queue: {}", job.id, r.status().ToString());
    return applied;
  }
  auto r = consumer.CompleteAndFetch(job, result_json, next->token, next->lock_ms);
  if (!r.completed) {
    spdlog::warn("worker: completing job {} in the queue: {}", job.id,
                 r.completed.status().ToString());
  }
  if (!r.next) {
    spdlog::warn("worker: fetching after job {}: {}", job.id, r.next.status().ToString());
  } else if (r.next->has_value()) {
    applied.next = std::move(**r.next);
  }
  return applied;
}

void OutcomeApplier::TellFailed(queue::Consumer& consumer, const queue::ActiveJob& job,
                                const std::string& message, const std::string& stack) const {
  auto r = consumer.Fail(job, message, stack, /*retry=*/false);
  if (!r) spdlog::warn("worker: failing job {} in the queue: {}", job.id, r.status().ToString());
}

void OutcomeApplier::RemoveBlob(const queue::ActiveJob& job) const {
  if (!IsUuid(job.id)) return;
  if (auto r = blobs_->Remove(job.id); !r) {
    spdlog::warn("worker: removing the upload of {}: {}", job.id, r.status().ToString());
  }
}

}  // namespace conveyor::worker
