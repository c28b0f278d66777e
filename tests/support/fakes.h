// File: tests/support/fakes.h
//
// In-memory fakes of the storage and queue interfaces for unit tests, with
// switches that inject failures:
//   FakeMetadataStore  rows in a map; `fail_insert`/`fail_ping` return the given code
//   FakeQueue          jobs in a map; `fail_add` returns the given code
//   DirBlobStore       a real BlobStore over a directory (tmp/<uuid>.part,
//                      committed <dir>/<uuid>), simple and independent of the
//                      production implementation, so tests can list the tree.
// All are thread-safe.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/error.h"
#include "queue/queue.h"
#include "storage/blob_store.h"
#include "storage/metadata_store.h"

namespace conveyor::testing {

class FakeMetadataStore : public storage::MetadataStore {
 public:
  Result<void> InsertJob(const storage::NewJob& job) override;
  Result<void> InsertJobs(const std::vector<storage::NewJob>& jobs) override;
  Result<std::optional<storage::JobRecord>> GetJob(const std::string& id) override;
  Result<std::optional<storage::JobRecord>> GetJobForUser(const std::string& id,
                                                          const std::string& user_id) override;
  Result<void> MarkProcessing(const std::string& id, int attempts) override;
  Result<void> SetProgress(const std::string& id, int percent) override;
  Result<void> MarkCompleted(const std::string& id, const std::string& file_id,
                             const std::string& result_json) override;
  Result<void> MarkFailed(const std::string& id, const std::string& error) override;
  Result<void> MarkPending(const std::string& id) override;
  Result<std::vector<storage::JobRecord>> ListPending(int64_t older_than_ms, int limit) override;
  Result<void> StoreFileMemory(const storage::FileMemory& memory) override;
  Result<std::vector<storage::RelatedFile>> FindRelatedFiles(
      const storage::RelatedQuery& query) override;
  Result<std::vector<storage::MemoryHit>> SearchMemory(const std::string& user_id,
                                                       const std::string& session_id,
                                                       const std::string& query,
                                                       int limit) override;
  Result<void> Ping() override;

  size_t size() const;
  std::vector<storage::JobRecord> All() const;

  std::atomic<Errc> fail_insert{Errc::kOk};  // non-OK: InsertJob fails with it
  std::atomic<Errc> fail_ping{Errc::kOk};

 private:
  struct Chunk {
    std::string user_id, session_id, job_id, file_id;
    storage::MemoryChunk chunk;
  };
  mutable std::mutex mu_;
  std::map<std::string, storage::JobRecord> rows_;
  std::vector<Chunk> chunks_;
  std::vector<storage::FileMemory> files_;  // terms of each file, newest last (no chunks)
};

class FakeQueue : public queue::Queue {
 public:
  struct Added {
    std::string name;
    std::string data_json;
  };
  Result<bool> Add(const std::string& id, const std::string& name, const std::string& data_json,
                   const queue::JobOptions& opts) override;
  Result<bool> Exists(const std::string& id) override;
  Result<queue::JobCounts> Counts() override;
  Result<void> Ping() override;

  size_t size() const;
  std::optional<Added> Get(const std::string& id) const;

  std::atomic<Errc> fail_add{Errc::kOk};
  std::atomic<Errc> fail_ping{Errc::kOk};
  std::atomic<int> add_calls{0};

 private:
  mutable std::mutex mu_;
  std::map<std::string, Added> jobs_;
};

class DirBlobStore : public storage::BlobStore {
 public:
  explicit DirBlobStore(std::string dir);  // creates dir and dir/tmp
  Result<std::unique_ptr<storage::BlobWriter>> Create(const std::string& id) override;
  std::string PathFor(const std::string& id) const override;
  bool Owns(const std::string& path) const override;
  Result<void> Remove(const std::string& path) override;
  int RemoveStaleTemps(int64_t older_than_ms) override;

  const std::string& dir() const { return dir_; }
  // Every regular file under `root` (recursively), as absolute paths.
  static std::vector<std::string> ListFiles(const std::string& root);

 private:
  std::string dir_;
};

}  // namespace conveyor::testing
