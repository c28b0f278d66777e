#include "counting.h"

namespace conveyor::testing {

// ---- CallCounts ----

void CallCounts::Add(std::string_view name) {
  std::lock_guard lock(mu_);
  auto it = counts_.find(name);
  if (it == counts_.end()) it = counts_.emplace(std::string(name), 0).first;
  ++it->second;
}

int CallCounts::Get(std::string_view name) const {
  std::lock_guard lock(mu_);
  auto it = counts_.find(name);
  return it == counts_.end() ? 0 : it->second;
}

int CallCounts::Sum(std::initializer_list<std::string_view> names) const {
  int n = 0;
  for (auto name : names) n += Get(name);
  return n;
}

std::map<std::string, int> CallCounts::Snapshot() const {
  std::lock_guard lock(mu_);
  return {counts_.begin(), counts_.end()};
}

void CallCounts::Reset() {
  std::lock_guard lock(mu_);
  counts_.clear();
}

std::string CallCounts::ToString() const {
  std::string out;
  for (const auto& [name, n] : Snapshot()) {
    if (!out.empty()) out += ' ';
    out += name + "=" + std::to_string(n);
  }
  return out;
}

// ---- CountingMetadataStore ----

int CountingMetadataStore::writes() const {
  int n = 0;
  for (auto name : kWrites) n += counts.Get(name);
  return n;
}

int CountingMetadataStore::reads() const {
  int n = 0;
  for (auto name : kReads) n += counts.Get(name);
  return n;
}

Result<void> CountingMetadataStore::InsertJob(const storage::NewJob& job) {
  counts.Add("InsertJob");
  return inner_->InsertJob(job);
}

Result<void> CountingMetadataStore::InsertJobs(const std::vector<storage::NewJob>& jobs) {
  counts.Add("InsertJobs");
  return inner_->InsertJobs(jobs);
}

Result<std::optional<storage::JobRecord>> CountingMetadataStore::GetJob(const std::string& id) {
  counts.Add("GetJob");
  return inner_->GetJob(id);
}

Result<std::optional<storage::JobRecord>> CountingMetadataStore::GetJobForUser(
    const std::string& id, const std::string& user_id) {
  counts.Add("GetJobForUser");
  return inner_->GetJobForUser(id, user_id);
}

Result<void> CountingMetadataStore::MarkProcessing(const std::string& id, int attempts) {
  counts.Add("MarkProcessing");
  return inner_->MarkProcessing(id, attempts);
}

Result<std::optional<storage::JobRecord>> CountingMetadataStore::ClaimJob(const std::string& id,
                                                                         int attempts) {
  counts.Add("ClaimJob");
  return inner_->ClaimJob(id, attempts);
}

Result<void> CountingMetadataStore::SetProgress(const std::string& id, int percent) {
  counts.Add("SetProgress");
  return inner_->SetProgress(id, percent);
}

Result<void> CountingMetadataStore::MarkCompleted(const std::string& id,
                                                  const std::string& file_id,
                                                  const std::string& result_json) {
  counts.Add("MarkCompleted");
  return inner_->MarkCompleted(id, file_id, result_json);
}

Result<void> CountingMetadataStore::MarkFailed(const std::string& id, const std::string& error) {
  counts.Add("MarkFailed");
  return inner_->MarkFailed(id, error);
}

Result<void> CountingMetadataStore::MarkPending(const std::string& id) {
  counts.Add("MarkPending");
  return inner_->MarkPending(id);
}

Result<std::vector<storage::JobRecord>> CountingMetadataStore::ListPending(int64_t older_than_ms,
                                                                           int limit) {
  counts.Add("ListPending");
  return inner_->ListPending(older_than_ms, limit);
}

Result<void> CountingMetadataStore::StoreFileMemory(const storage::FileMemory& memory) {
  counts.Add("StoreFileMemory");
  return inner_->StoreFileMemory(memory);
}

Result<std::vector<storage::RelatedFile>> CountingMetadataStore::FindRelatedFiles(
    const storage::RelatedQuery& query) {
  counts.Add("FindRelatedFiles");
  return inner_->FindRelatedFiles(query);
}

Result<void> CountingMetadataStore::CompleteJob(const storage::JobCompletion& c) {
  counts.Add("CompleteJob");
  return inner_->CompleteJob(c);
}

Result<std::vector<storage::MemoryHit>> CountingMetadataStore::SearchMemory(
    const std::string& user_id, const std::string& session_id, const std::string& query,
    int limit) {
  counts.Add("SearchMemory");
  return inner_->SearchMemory(user_id, session_id, query, limit);
}

Result<void> CountingMetadataStore::Ping() {
  counts.Add("Ping");
  return inner_->Ping();
}

// ---- CountingConsumer ----

Result<bool> CountingConsumer::WaitForWork(int64_t timeout_ms) {
  counts_->Add("WaitForWork");
  return inner_->WaitForWork(timeout_ms);
}

Result<std::optional<queue::ActiveJob>> CountingConsumer::Fetch(const std::string& token,
                                                                int64_t lock_ms) {
  auto r = inner_->Fetch(token, lock_ms);
  // An empty fetch is waiting for work, not the cost of a job.
  counts_->Add(r && r->has_value() ? "Fetch" : "Fetch(empty)");
  return r;
}

Result<std::vector<queue::ActiveJob*>> CountingConsumer::ExtendLocks(
    const std::vector<queue::ActiveJob*>& jobs, int64_t lock_ms) {
  counts_->Add("ExtendLocks");
  return inner_->ExtendLocks(jobs, lock_ms);
}

Result<void> CountingConsumer::Complete(const queue::ActiveJob& job,
                                        const std::string& return_json) {
  counts_->Add("Complete");
  return inner_->Complete(job, return_json);
}

queue::Consumer::CompleteAndFetchResult CountingConsumer::CompleteAndFetch(
    const queue::ActiveJob& job, const std::string& return_json, const std::string& next_token,
    int64_t lock_ms) {
  counts_->Add("CompleteAndFetch");
  return inner_->CompleteAndFetch(job, return_json, next_token, lock_ms);
}

Result<void> CountingConsumer::Fail(const queue::ActiveJob& job, const std::string& reason,
                                    const std::string& stack, bool retry) {
  counts_->Add("Fail");
  return inner_->Fail(job, reason, stack, retry);
}

Result<void> CountingConsumer::UpdateProgress(const std::string& id,
                                              const std::string& progress_json) {
  counts_->Add("UpdateProgress");
  return inner_->UpdateProgress(id, progress_json);
}

Result<void> CountingConsumer::AddLog(const std::string& id, const std::string& line) {
  counts_->Add("AddLog");
  return inner_->AddLog(id, line);
}

Result<void> CountingConsumer::ReportProgress(const std::string& id,
                                              const std::string& progress_json,
                                              const std::string& log_line) {
  counts_->Add("ReportProgress");
  return inner_->ReportProgress(id, progress_json, log_line);
}

Result<std::vector<std::string>> CountingConsumer::RecoverStalled(int64_t stalled_interval_ms) {
  counts_->Add("RecoverStalled");
  return inner_->RecoverStalled(stalled_interval_ms);
}

Result<void> CountingConsumer::Release(const queue::ActiveJob& job) {
  counts_->Add("Release");
  return inner_->Release(job);
}

}  // namespace conveyor::testing
