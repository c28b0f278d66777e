#include "storage/job_record.h"

#include <algorithm>

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

std::vector<std::string> CleanTerms(const std::vector<std::string>& terms, size_t max) {
  std::vector<std::string> out;
  for (const auto& t : terms) {
    if (out.size() >= max) break;
    if (t.empty() || t.size() > kMaxIndexTermBytes) continue;
    if (std::find(out.begin(), out.end(), t) == out.end()) out.push_back(t);
  }
  return out;
}

std::optional<int> RepeatedChunkIndex(const std::vector<MemoryChunk>& chunks) {
  std::vector<int> indexes;
  indexes.reserve(chunks.size());
  for (const auto& c : chunks) indexes.push_back(c.index);
  std::sort(indexes.begin(), indexes.end());
  auto twice = std::adjacent_find(indexes.begin(), indexes.end());
  if (twice == indexes.end()) return std::nullopt;
  return *twice;
}

}  // namespace conveyor::storage
