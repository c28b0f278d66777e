#include "worker/job_metrics.h"

#include <chrono>
#include <string>

#include "core/metrics.h"
#include "queue/payload.h"

namespace conveyor::worker::job_metrics {
namespace {

metrics::Registry& R() { return metrics::DefaultRegistry(); }

metrics::GaugeValue& Busy() {
  static auto& g = R().Gauge("conveyor_worker_slots_busy", "Worker slots running a job.").Get();
  return g;
}

}  // namespace

void ObserveStage(std::string_view stage, double seconds) {
  static auto& f = R().Histogram("conveyor_job_stage_duration_seconds",
                                 "Time a job spends in each processing stage.", {"stage"},
                                 metrics::kJobBuckets);
  f.Get({std::string(stage)}).Observe(seconds);
}

void Completed(int64_t added_ms) {
  static auto& done =
      R().Counter("conveyor_jobs_completed_total", "Jobs completed by this worker.").Get();
  static auto& e2e = R().Histogram("conveyor_job_end_to_end_seconds",
                                   "Time from a job's upload (added to the queue) to completed.",
                                   {}, metrics::kJobBuckets)
                         .Get();
  done.Inc();
  if (added_ms > 0) {
    const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
    e2e.Observe(static_cast<double>(now > added_ms ? now - added_ms : 0) / 1000.0);
  }
}

void Retried(Errc why) {
  static auto& f = R().Counter("conveyor_jobs_retried_total",
                               "Failed attempts scheduled for another try, by error kind.",
                               {"kind"});
  f.Get({std::string(ErrcName(why))}).Inc();
}

void Failed(Errc why, std::string_view dead_letter_reason) {
  static auto& failed = R().Counter("conveyor_jobs_failed_total",
                                    "Jobs failed for good, by error kind.", {"kind"});
  static auto& dlq = R().Counter("conveyor_jobs_dead_lettered_total",
                                 "Jobs copied to the dead-letter queue, by reason.", {"reason"});
  failed.Get({std::string(ErrcName(why))}).Inc();
  dlq.Get({std::string(dead_letter_reason)}).Inc();
}

void Stalled(int64_t n) {
  static auto& c = R().Counter("conveyor_jobs_stalled_total",
                               "Jobs whose lock lapsed, recovered by the stalled check.")
                       .Get();
  if (n > 0) c.Inc(static_cast<double>(n));
}

void SetSlotsTotal(int n) {
  static auto& g = R().Gauge("conveyor_worker_slots", "Worker slots (WORKER_CONCURRENCY).").Get();
  g.Set(n);
  Busy();  // exported from the start, at 0
}

int64_t SlotsBusy() { return static_cast<int64_t>(Busy().value()); }

BusySlot::BusySlot() { Busy().Add(1); }
BusySlot::~BusySlot() { Busy().Add(-1); }

LogContext JobLogContext(const queue::ActiveJob& job) {
  LogContext c;
  c.job_id = job.id;
  if (auto p = queue::DecodeJobPayload(job.data_json)) {
    c.request_id = p->request_id;
    c.user_id = p->user_id;
  }
  return c;
}

}  // namespace conveyor::worker::job_metrics
