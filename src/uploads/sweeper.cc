// StorageSweeper: one pass lists tmp/ and the committed blobs, and asks the
// job row of each blob whether anything will still read it. See sweeper.h.
#include "uploads/sweeper.h"

#include <spdlog/spdlog.h>

#include "storage/blob_store.h"
#include "storage/metadata_store.h"

namespace conveyor::uploads {
namespace {

bool IsFinal(storage::JobStatus s) {
  return s == storage::JobStatus::kCompleted || s == storage::JobStatus::kFailed;
}

// Removes blob `b` when its job is final or gone; counts what it did.
Result<void> SweepBlob(storage::BlobStore& blobs, storage::MetadataStore& store,
                       const storage::StoredBlob& b, int64_t orphan_before_ms,
                       SweepReport& report) {
  auto row = store.GetJob(b.id);
  if (!row) return row.status();
  int* counter = nullptr;
  if (!row->has_value()) {
    if (b.mtime_ms < orphan_before_ms) counter = &report.orphans_removed;
  } else if (IsFinal((*row)->status)) {
    counter = &report.finals_removed;
  }
  if (counter == nullptr) {
    ++report.kept;
    return {};
  }
  CONVEYOR_RETURN_IF_ERROR(blobs.Remove(b.id));
  ++*counter;
  return {};
}

}  // namespace

Result<SweepReport> Sweep(storage::BlobStore& blobs, storage::MetadataStore& store,
                          const SweepSettings& settings, const Clock& clock) {
  SweepReport report;
  int64_t now = clock.EpochMs();
  report.temps_removed = blobs.RemoveStaleTemps(now - settings.temp_max_age_ms);
  auto listed = blobs.ListBlobs();
  if (!listed) return listed.status();
  for (const storage::StoredBlob& b : *listed) {
    CONVEYOR_RETURN_IF_ERROR(
        SweepBlob(blobs, store, b, now - settings.orphan_min_age_ms, report));
  }
  return report;
}

StorageSweeper::StorageSweeper(SweepSettings settings, storage::BlobStore* blobs,
                               storage::MetadataStore* store)
    : settings_(settings), blobs_(blobs), store_(store) {}

StorageSweeper::~StorageSweeper() { Stop(); }

void StorageSweeper::Start() {
  RunPass();
  if (settings_.interval_ms <= 0) return;
  std::lock_guard lock(mu_);
  if (stopping_ || thread_.joinable()) return;
  thread_ = std::thread([this] { Loop(); });
}

void StorageSweeper::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void StorageSweeper::RunPass() {
  auto r = Sweep(*blobs_, *store_, settings_);
  if (!r) {
    spdlog::warn("storage sweep: {} (next pass in {} ms)", r.status().ToString(),
                 settings_.interval_ms);
    return;
  }
  int removed = r->temps_removed + r->orphans_removed + r->finals_removed;
  if (removed == 0) return;
  spdlog::info("storage sweep: removed {} temp files, {} blobs without a row, {} blobs of "
               "final jobs; kept {}",
               r->temps_removed, r->orphans_removed, r->finals_removed, r->kept);
}

void StorageSweeper::Loop() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    if (cv_.wait_for(lock, std::chrono::milliseconds(settings_.interval_ms),
                     [this] { return stopping_; })) {
      break;
    }
    lock.unlock();
    RunPass();
    lock.lock();
  }
}

}  // namespace conveyor::uploads
