// StorageSweeper against a real blob directory and real rows (SQLite file
// and PostgreSQL): which files a pass removes and which it keeps, and that
// the periodic thread catches a job that becomes final later.
#include "uploads/sweeper.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "core/clock.h"
#include "core/ids.h"
#include "storage/blob_store.h"
#include "storage/metadata_store.h"
#include "test_support.h"

namespace conveyor::uploads {
namespace {

namespace fs = std::filesystem;
using conveyor::testing::PostgresServer;
using conveyor::testing::TempDir;

constexpr int64_t kHourMs = 3600000;

struct Backend {
  const char* name;
  std::string (*fresh_url)(TempDir& dir);
};

std::string SqliteUrl(TempDir& dir) { return "sqlite://" + (dir / "conveyor.db"); }

PostgresServer& SharedPostgres() {
  static PostgresServer server;
  return server;
}
std::string PostgresUrl(TempDir&) {
  static std::atomic<int> n{0};
  return SharedPostgres().CreateDatabase("sweeper_" + std::to_string(n++));
}

const Backend kSqlite{"sqlite", SqliteUrl};
const Backend kPostgres{"postgres", PostgresUrl};

// Sets a file's mtime `age_ms` into the past.
void Age(const std::string& path, int64_t age_ms) {
  int64_t t = SystemClock().EpochMs() - age_ms;
  struct timespec times[2];
  times[0].tv_sec = times[1].tv_sec = t / 1000;
  times[0].tv_nsec = times[1].tv_nsec = (t % 1000) * 1000000;
  ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), times, 0), 0) << path;
}

class SweeperTest : public ::testing::TestWithParam<const Backend*> {
 protected:
  void SetUp() override {
    auto store = storage::OpenMetadataStore(GetParam()->fresh_url(dir_), /*migrate=*/true);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(*store);
    blob_dir_ = dir_ / "blobs";
    auto blobs = storage::OpenLocalBlobStore(blob_dir_);
    ASSERT_TRUE(blobs.ok()) << blobs.status().ToString();
    blobs_ = std::move(*blobs);
    settings_.temp_max_age_ms = kHourMs;
    settings_.orphan_min_age_ms = 600000;
    settings_.interval_ms = 0;
  }

  // A committed blob named by a new id, `age_ms` old.
  std::string Blob(int64_t age_ms = 0) {
    std::string id = NewUuid();
    auto w = blobs_->Create(id);
    EXPECT_TRUE(w.ok());
    EXPECT_TRUE((*w)->Append("bytes of " + id).ok());
    auto path = (*w)->Commit(false);
    EXPECT_TRUE(path.ok());
    if (age_ms > 0) Age(*path, age_ms);
    return id;
  }

  // A blob with a pending row.
  std::string Job(int64_t age_ms = 0) {
    std::string id = Blob(age_ms);
    storage::NewJob job;
    job.id = id;
    job.user_id = "u1";
    job.session_id = "s1";
    job.original_name = "a.txt";
    job.mime_type = "text/plain";
    job.size_bytes = 9;
    job.sha256_hex = std::string(64, '0');
    job.storage_path = blobs_->Location(id);
    EXPECT_TRUE(store_->InsertJob(job).ok());
    return id;
  }

  bool Exists(const std::string& id) { return fs::exists(blobs_->Location(id)); }

  // Regular files left anywhere under the blob directory.
  int FilesLeft() {
    int n = 0;
    for (const auto& e : fs::recursive_directory_iterator(blob_dir_)) n += e.is_regular_file();
    return n;
  }

  SweepReport SweepOnce() {
    auto r = Sweep(*blobs_, *store_, settings_);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : SweepReport{};
  }

  TempDir dir_;
  std::string blob_dir_;
  std::unique_ptr<storage::MetadataStore> store_;
  std::unique_ptr<storage::BlobStore> blobs_;
  SweepSettings settings_;
};

TEST_P(SweeperTest, RemovesOldTempFilesAndKeepsAnUploadInProgress) {
  // Cut off midway: a temp file nobody writes any more.
  std::string cut_id = NewUuid();
  std::string cut_path = blob_dir_ + "/tmp/" + cut_id + ".part";
  {
    auto w = blobs_->Create(cut_id);
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE((*w)->Append("half an upload").ok());
    // The API was killed: nothing ran the writer's Abort. Keep the file.
    ASSERT_EQ(::link(cut_path.c_str(), (cut_path + ".keep").c_str()), 0);
  }
  ASSERT_EQ(::rename((cut_path + ".keep").c_str(), cut_path.c_str()), 0);
  Age(cut_path, 2 * kHourMs);

  // In progress (another API process sharing the directory): young.
  std::string live_id = NewUuid();
  auto live = blobs_->Create(live_id);
  ASSERT_TRUE(live.ok());
  ASSERT_TRUE((*live)->Append("first part").ok());

  SweepReport r = SweepOnce();
  EXPECT_EQ(r.temps_removed, 1);
  EXPECT_FALSE(fs::exists(cut_path));
  EXPECT_TRUE(fs::exists(blob_dir_ + "/tmp/" + live_id + ".part"));

  // The live upload still finishes.
  ASSERT_TRUE((*live)->Append(", second part").ok());
  ASSERT_TRUE((*live)->Commit(false).ok());
  EXPECT_TRUE(Exists(live_id));
}

TEST_P(SweeperTest, RemovesBlobsWithoutARowOnlyOnceOld) {
  std::string old_orphan = Blob(2 * settings_.orphan_min_age_ms);
  std::string young_orphan = Blob();  // its row may be on the way
  SweepReport r = SweepOnce();
  EXPECT_EQ(r.orphans_removed, 1);
  EXPECT_FALSE(Exists(old_orphan));
  EXPECT_TRUE(Exists(young_orphan));
  EXPECT_EQ(r.kept, 1);
}

TEST_P(SweeperTest, RemovesBlobsOfFinalJobsAndKeepsThoseStillToRun) {
  std::string pending = Job();
  std::string processing = Job();
  ASSERT_TRUE(store_->MarkProcessing(processing, 1).ok());
  std::string completed = Job();
  ASSERT_TRUE(store_->MarkCompleted(completed, "f1", "{}").ok());
  std::string failed = Job();
  ASSERT_TRUE(store_->MarkFailed(failed, "Invalid file format").ok());
  // A pending row whose blob is old: still to run (the reconciler re-adds it).
  std::string old_pending = Job(2 * settings_.orphan_min_age_ms);

  SweepReport r = SweepOnce();
  EXPECT_EQ(r.finals_removed, 2);
  EXPECT_EQ(r.kept, 3);
  EXPECT_FALSE(Exists(completed));
  EXPECT_FALSE(Exists(failed));
  EXPECT_TRUE(Exists(pending));
  EXPECT_TRUE(Exists(processing));
  EXPECT_TRUE(Exists(old_pending));

  // Once every job is final, nothing is left in the directory.
  for (const std::string& id : {pending, processing, old_pending}) {
    ASSERT_TRUE(store_->MarkCompleted(id, "f-" + id, "{}").ok());
  }
  r = SweepOnce();
  EXPECT_EQ(r.finals_removed, 3);
  EXPECT_EQ(FilesLeft(), 0);
}

TEST_P(SweeperTest, ForeignNamesAreLeftAlone) {
  // A Node.js producer's file (not a UUID name) and a UUID-named directory.
  std::string foreign = blob_dir_ + "/upload-from-node.pdf";
  { std::ofstream(foreign) << "node"; }
  Age(foreign, 2 * kHourMs);
  ASSERT_TRUE(fs::create_directory(blob_dir_ + "/" + NewUuid()));
  SweepReport r = SweepOnce();
  EXPECT_EQ(r.orphans_removed + r.finals_removed + r.kept, 0);
  EXPECT_TRUE(fs::exists(foreign));
}

TEST_P(SweeperTest, AnAdoptedProducerFileIsYoungUntilItsRowIsWritten) {
  // A Node.js producer wrote this file long ago; a worker adopts it now and
  // writes its row just after (or, after a crash, on the next attempt).
  ASSERT_TRUE(fs::create_directory(blob_dir_ + "/node"));
  std::string produced = blob_dir_ + "/node/report.txt";
  { std::ofstream(produced) << "from node"; }
  Age(produced, 2 * kHourMs);
  std::string id = NewUuid();
  auto adopted = blobs_->Adopt(produced, id);
  ASSERT_TRUE(adopted.ok()) << adopted.status().ToString();
  SweepReport r = SweepOnce();
  EXPECT_EQ(r.orphans_removed, 0);
  EXPECT_TRUE(Exists(id));
}

TEST_P(SweeperTest, StartSweepsAtOnceAndThenPeriodically) {
  std::string final_before = Job();
  ASSERT_TRUE(store_->MarkFailed(final_before, "x").ok());
  std::string later = Job();
  settings_.interval_ms = 50;
  StorageSweeper sweeper(settings_, blobs_.get(), store_.get());
  sweeper.Start();
  EXPECT_FALSE(Exists(final_before));  // the start-up pass ran before Start returned
  EXPECT_TRUE(Exists(later));
  ASSERT_TRUE(store_->MarkCompleted(later, "f", "{}").ok());
  EXPECT_TRUE(conveyor::testing::Eventually([&] { return !Exists(later); },
                                            std::chrono::seconds(10)));
  sweeper.Stop();
  sweeper.Stop();  // idempotent
}

std::string BackendName(const ::testing::TestParamInfo<const Backend*>& info) {
  return info.param->name;
}

INSTANTIATE_TEST_SUITE_P(Rows, SweeperTest, ::testing::Values(&kSqlite, &kPostgres), BackendName);

}  // namespace
}  // namespace conveyor::uploads
