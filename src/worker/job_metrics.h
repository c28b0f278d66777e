// File: worker/job_metrics.h
//
// The worker's Prometheus metrics (core/metrics.h, the process's registry),
// behind a few calls so that the job path only says what happened:
//
//   conveyor_jobs_completed_total                     counter
//   conveyor_jobs_retried_total{kind}                 counter  kind: the error code (ErrcName)
//   conveyor_jobs_failed_total{kind}                  counter  failed for good
//   conveyor_jobs_dead_lettered_total{reason}         counter  reason: permanent |
//                                                              retries_exhausted | stalled
//   conveyor_jobs_stalled_total                       counter  recovered by the stalled check
//   conveyor_job_stage_duration_seconds{stage}        histogram detect|extract|analyse|store
//   conveyor_job_end_to_end_seconds                   histogram upload (job added) -> completed
//   conveyor_worker_slots_busy, conveyor_worker_slots gauges (busy, WORKER_CONCURRENCY)
//
// Threads: every call is thread-safe and cheap (atomics after first use).
#pragma once

#include <cstdint>
#include <string_view>

#include "core/error.h"
#include "core/log.h"
#include "queue/job.h"

namespace conveyor::worker::job_metrics {

void ObserveStage(std::string_view stage, double seconds);
// `added_ms`: the job's BullMQ timestamp (epoch ms when it was added).
void Completed(int64_t added_ms);
void Retried(Errc why);
// A final failure (every one is copied to the dead-letter queue).
void Failed(Errc why, std::string_view dead_letter_reason);
void Stalled(int64_t n);
void SetSlotsTotal(int n);
int64_t SlotsBusy();

// Counts the calling slot busy for its lifetime.
class BusySlot {
 public:
  BusySlot();
  ~BusySlot();
  BusySlot(const BusySlot&) = delete;
  BusySlot& operator=(const BusySlot&) = delete;
};

// The log context of a job: its id and, from its data, the upload's
// request id and the user (core/log.h).
LogContext JobLogContext(const queue::ActiveJob& job);

}  // namespace conveyor::worker::job_metrics
