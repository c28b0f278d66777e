// File: tests/support/counting.h
//
// Decorators that count the calls made through the storage and queue
// interfaces, for tests that measure how many database transactions and
// Redis round trips an operation costs:
//   CallCounts              thread-safe tally by method name
//   CountingMetadataStore   forwards to any MetadataStore (a real SQLite or
//                           PostgreSQL one), counting each call
//   CountingConsumer        forwards to any queue::Consumer (a real Redis one),
//                           counting each call; one call is one round trip
//                           (CompleteAndFetch and ReportProgress pipeline
//                           theirs into one)
// Every MetadataStore write is one transaction; reads are counted apart.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "queue/queue.h"
#include "storage/metadata_store.h"

namespace conveyor::testing {

class CallCounts {
 public:
  void Add(std::string_view name);
  int Get(std::string_view name) const;
  // Sum over `names`.
  int Sum(std::initializer_list<std::string_view> names) const;
  std::map<std::string, int> Snapshot() const;
  void Reset();
  // "name=count name=count ..." in name order.
  std::string ToString() const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, int, std::less<>> counts_;
};

class CountingMetadataStore : public storage::MetadataStore {
 public:
  // `inner` is not owned and must outlive this.
  explicit CountingMetadataStore(storage::MetadataStore* inner) : inner_(inner) {}

  // The methods that write (one transaction each) and those that only read.
  static constexpr std::string_view kWrites[] = {
      "InsertJob", "InsertJobs", "ClaimJob", "MarkProcessing", "SetProgress", "MarkCompleted",
      "MarkFailed", "MarkPending", "StoreFileMemory", "CompleteJob"};
  static constexpr std::string_view kReads[] = {"GetJob", "GetJobForUser", "ListPending",
                                                "SearchMemory", "FindRelatedFiles", "Ping"};
  int writes() const;
  int reads() const;

  Result<void> InsertJob(const storage::NewJob& job) override;
  Result<void> InsertJobs(const std::vector<storage::NewJob>& jobs) override;
  Result<std::optional<storage::JobRecord>> GetJob(const std::string& id) override;
  Result<std::optional<storage::JobRecord>> GetJobForUser(const std::string& id,
                                                          const std::string& user_id) override;
  Result<void> MarkProcessing(const std::string& id, int attempts) override;
  Result<std::optional<storage::JobRecord>> ClaimJob(const std::string& id, int attempts) override;
  Result<void> SetProgress(const std::string& id, int percent) override;
  Result<void> MarkCompleted(const std::string& id, const std::string& file_id,
                             const std::string& result_json) override;
  Result<void> MarkFailed(const std::string& id, const std::string& error) override;
  Result<void> MarkPending(const std::string& id) override;
  Result<std::vector<storage::JobRecord>> ListPending(int64_t older_than_ms, int limit) override;
  Result<void> StoreFileMemory(const storage::FileMemory& memory) override;
  Result<std::vector<storage::RelatedFile>> FindRelatedFiles(
      const storage::RelatedQuery& query) override;
  Result<void> CompleteJob(const storage::JobCompletion& c) override;
  Result<std::vector<storage::MemoryHit>> SearchMemory(const std::string& user_id,
                                                       const std::string& session_id,
                                                       const std::string& query,
                                                       int limit) override;
  Result<void> Ping() override;

  CallCounts counts;

 private:
  storage::MetadataStore* inner_;
};

class CountingConsumer : public queue::Consumer {
 public:
  CountingConsumer(std::unique_ptr<queue::Consumer> inner, std::shared_ptr<CallCounts> counts)
      : inner_(std::move(inner)), counts_(std::move(counts)) {}

  // Calls made for jobs (as opposed to waiting for work and housekeeping).
  static constexpr std::string_view kJobCalls[] = {
      "Fetch", "CompleteAndFetch", "Complete", "Fail", "UpdateProgress", "AddLog",
      "ReportProgress", "Release"};

  Result<bool> WaitForWork(int64_t timeout_ms) override;
  Result<std::optional<queue::ActiveJob>> Fetch(const std::string& token, int64_t lock_ms) override;
  Result<std::vector<queue::ActiveJob*>> ExtendLocks(const std::vector<queue::ActiveJob*>& jobs,
                                               int64_t lock_ms) override;
  Result<void> Complete(const queue::ActiveJob& job, const std::string& return_json) override;
  CompleteAndFetchResult CompleteAndFetch(const queue::ActiveJob& job,
                                          const std::string& return_json,
                                          const std::string& next_token,
                                          int64_t lock_ms) override;
  Result<void> Fail(const queue::ActiveJob& job, const std::string& reason,
                    const std::string& stack, bool retry) override;
  Result<void> UpdateProgress(const std::string& id, const std::string& progress_json) override;
  Result<void> AddLog(const std::string& id, const std::string& line) override;
  Result<void> ReportProgress(const std::string& id, const std::string& progress_json,
                              const std::string& log_line) override;
  Result<std::vector<std::string>> RecoverStalled(int64_t stalled_interval_ms) override;
  Result<void> Release(const queue::ActiveJob& job) override;

 private:
  std::unique_ptr<queue::Consumer> inner_;
  std::shared_ptr<CallCounts> counts_;
};

}  // namespace conveyor::testing
