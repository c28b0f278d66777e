#include "storage/job_record.h"

namespace conveyor::storage {

std::string_view JobStatusName(JobStatus s) {
  switch (s) {
    case JobStatus::kPending: return "pending";
    case JobStatus::kProcessing: return "processing";
    case JobStatus::kCompleted: return "completed";
    case JobStatus::kFailed: return "failed";
  }
  return "pending";
}

std::optional<JobStatus> ParseJobStatus(std::string_view s) {
  if (s == "pending") return JobStatus::kPending;
  if (s == "processing") return JobStatus::kProcessing;
  if (s == "completed") return JobStatus::kCompleted;
  if (s == "failed") return JobStatus::kFailed;
  return std::nullopt;
}

}  // namespace conveyor::storage
