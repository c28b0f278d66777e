// JobRunner and OutcomeApplier without Redis: the in-memory FakeMetadataStore
// and FakeConsumer, a FakeClock, the real local blob store, and extraction
// either in-process (processing::Run, what the child runs) or scripted; one
// test runs the real sandboxed child. Each test runs a leased job to its
// outcome, applies it, and checks the row, the upload and the queue.
#include "worker/job_runner.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/ids.h"
#include "fakes.h"
#include "queue/payload.h"
#include "storage/blob_store.h"
#include "test_support.h"
#include "worker/outcome.h"

namespace conveyor::worker {
namespace {

namespace fs = std::filesystem;
using conveyor::testing::FakeConsumer;
using nlohmann::json;

const char kText[] =
    "Lighthouse keepers kept the lamps burning through every winter storm.\n\n"
    "The keepers logged the weather, trimmed the wicks and polished the great lens.\n";

// A scripted extraction: the child's four stages, then `result`.
struct ScriptedExtract {
  Result<processing::Output> result = Unavailable("not scripted");
  int calls = 0;
  int64_t timeout_ms = -1;  // the sandbox timeout of the last call
};

class JobRunnerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto blobs = storage::OpenLocalBlobStore(dir_ / "uploads");
    ASSERT_TRUE(blobs) << blobs.status().ToString();
    blobs_ = std::move(*blobs);
    storage_dir_ = fs::canonical(dir_ / "uploads").string();
    auto analyzer = processing::MakeAnalyzer(processing::AnalyzerSettings{});
    ASSERT_TRUE(analyzer) << analyzer.status().ToString();
    analyzer_ = std::move(*analyzer);
    settings_.sandbox.binary_path = conveyor::testing::ConveyorBinary();
    env_.clock = &clock_;
    InProcessExtraction();
  }

  // Extraction as the child does it, in this process (no sandbox).
  void InProcessExtraction() {
    env_.extract = [this](const SandboxSettings& s, const processing::Input& in,
                          const processing::Limits& limits, const processing::ProgressFn& progress) {
      ++extract_calls_;
      sandbox_timeout_ms_ = s.timeout_ms;
      return processing::Run(in, limits, progress);
    };
  }

  // Extraction that reports the child's stages and returns `result`.
  void ScriptExtraction(Result<processing::Output> result) {
    scripted_ = std::move(result);
    env_.extract = [this](const SandboxSettings& s, const processing::Input&,
                          const processing::Limits&, const processing::ProgressFn& progress) {
      ++extract_calls_;
      sandbox_timeout_ms_ = s.timeout_ms;
      for (auto [stage, percent] : {std::pair{"detect", 5}, {"extract", 20}}) progress(stage, percent);
      return scripted_;
    };
  }

  // An upload as the API stores it: blob <id>, then its pending row.
  std::string ApiUpload(const std::string& text, const std::string& user = "alice",
                        const std::string& session = "s1") {
    std::string id = NewUuid();
    auto w = blobs_->Create(id);
    EXPECT_TRUE(w);
    EXPECT_TRUE((*w)->Append(text));
    auto path = (*w)->Commit(false);
    EXPECT_TRUE(path);
    storage::NewJob j;
    j.id = id;
    j.user_id = user;
    j.session_id = session;
    j.original_name = "notes.txt";
    j.mime_type = "text/plain";
    j.size_bytes = static_cast<int64_t>(text.size());
    j.storage_path = *path;
    EXPECT_TRUE(store_.InsertJob(j));
    return id;
  }

  // Job `id` added with `data_json`, `attempts_made` attempts behind it, and
  // leased from the fake queue.
  queue::ActiveJob Lease(const std::string& id, int attempts_made = 0,
                         std::string data_json = "") {
    queue::ActiveJob j;
    j.id = id;
    j.name = queue::kJobName;
    j.data_json = data_json.empty() ? queue::EncodeJobPayload({id, "alice", "s1",
                                                               blobs_->Location(id), "notes.txt",
                                                               "text/plain", 10, ""})
                                    : std::move(data_json);
    j.attempts_made = attempts_made;
    j.attempts_started = attempts_made;
    queue_.Push(j);
    auto fetched = queue_.Fetch("token-" + id, 30000);
    EXPECT_TRUE(fetched && fetched->has_value());
    return **fetched;
  }

  Outcome Run(const queue::ActiveJob& job) {
    JobRunner runner(settings_, &store_, blobs_.get(), analyzer_.get(), env_);
    return runner.Run(job, [&](const std::string& stage, int percent) {
      json p = {{"stage", stage}, {"percent", percent}};
      (void)queue_.ReportProgress(job.id, p.dump(), stage);
    });
  }

  OutcomeApplier::Applied Apply(const queue::ActiveJob& job, Outcome outcome,
                                const OutcomeApplier::NextLease* next = nullptr,
                                bool wait_outage = false) {
    OutcomeApplier applier(&store_, blobs_.get());
    return applier.Apply(queue_, job, std::move(outcome), next, wait_outage);
  }

  storage::JobRecord Row(const std::string& id) {
    auto r = store_.GetJob(id);
    EXPECT_TRUE(r && r->has_value()) << id;
    return r && r->has_value() ? **r : storage::JobRecord{};
  }
  FakeConsumer::Job Queued(const std::string& id) {
    auto j = queue_.Get(id);
    EXPECT_TRUE(j) << id;
    return j ? *j : FakeConsumer::Job{};
  }
  bool UploadExists(const std::string& id) { return fs::exists(blobs_->Location(id)); }

  conveyor::testing::TempDir dir_;
  std::string storage_dir_;
  conveyor::testing::FakeMetadataStore store_;
  std::unique_ptr<storage::BlobStore> blobs_;
  FakeConsumer queue_;
  conveyor::testing::FakeClock clock_;
  std::unique_ptr<processing::Analyzer> analyzer_;
  WorkerSettings settings_;
  RunnerEnv env_;
  Result<processing::Output> scripted_ = Unavailable("not scripted");
  int extract_calls_ = 0;
  int64_t sandbox_timeout_ms_ = -1;
};

TEST_F(JobRunnerTest, SuccessRecordsMemoryAndTheRowThenCompletesInTheQueue) {
  std::string id = ApiUpload(kText);
  queue::ActiveJob job = Lease(id);
  // The row shows the extraction's progress while the child parses.
  int progress_while_extracting = -1;
  auto extract = env_.extract;
  env_.extract = [&](const SandboxSettings& s, const processing::Input& in,
                     const processing::Limits& limits, const processing::ProgressFn& progress) {
    return extract(s, in, limits, [&](const std::string& stage, int percent) {
      progress(stage, percent);
      if (stage == "extract") progress_while_extracting = Row(id).progress;
    });
  };
  conveyor::testing::CountingMetadataStore counting(&store_);
  JobRunner runner(settings_, &counting, blobs_.get(), analyzer_.get(), env_);
  Outcome outcome = runner.Run(job, [&](const std::string& stage, int percent) {
    (void)queue_.ReportProgress(id, json({{"stage", stage}, {"percent", percent}}).dump(), stage);
  });
  ASSERT_TRUE(std::holds_alternative<Completed>(outcome)) << OutcomeName(outcome);
  // Nothing is recorded before the applier runs.
  EXPECT_EQ(Row(id).status, storage::JobStatus::kProcessing);
  EXPECT_EQ(Queued(id).state, FakeConsumer::State::kActive);

  OutcomeApplier applier(&counting, blobs_.get());
  auto applied = applier.Apply(queue_, job, std::move(outcome));
  EXPECT_TRUE(applied.finished);
  auto row = Row(id);
  EXPECT_EQ(row.status, storage::JobStatus::kCompleted);
  EXPECT_EQ(row.progress, 100);
  EXPECT_EQ(row.file_id, "file_" + id);
  ASSERT_TRUE(row.result_json);
  json result = json::parse(*row.result_json);
  EXPECT_EQ(result["fileId"], "file_" + id);
  EXPECT_NE(result["aiResponse"]["text"].get<std::string>().find("Lighthouse"), std::string::npos)
      << result.dump();
  EXPECT_EQ(Queued(id).state, FakeConsumer::State::kCompleted);
  EXPECT_EQ(Queued(id).return_json, *row.result_json);
  auto hits = store_.SearchMemory("alice", "s1", "wicks", 10);
  ASSERT_TRUE(hits);
  EXPECT_EQ(hits->size(), 1u);
  EXPECT_FALSE(UploadExists(id));

  // Every stage reached the queue; the row got the coarse ones.
  std::vector<std::string> stages;
  for (const auto& p : Queued(id).progress) stages.push_back(json::parse(p)["stage"]);
  EXPECT_EQ(stages, (std::vector<std::string>{"detect", "extract", "analyse", "chunk", "analyse",
                                              "store"}));
  EXPECT_EQ(Queued(id).logs.size(), 6u);
  EXPECT_EQ(progress_while_extracting, 20);
  EXPECT_EQ(counting.counts.Get("SetProgress"), 2);
  // One statement to take the job, one transaction to record it.
  EXPECT_EQ(counting.counts.Get("ClaimJob"), 1);
  EXPECT_EQ(counting.counts.Get("CompleteJob"), 1);
  EXPECT_EQ(counting.writes(), 4) << counting.counts.ToString();
  EXPECT_EQ(queue_.counts.Get("ReportProgress"), 6);
  EXPECT_EQ(queue_.counts.Get("UpdateProgress") + queue_.counts.Get("AddLog"), 0);
  std::printf("one job through the runner and the applier: %d database transactions (%s); "
              "queue calls after the lease: %s\n",
              counting.writes(), counting.counts.ToString().c_str(),
              queue_.counts.ToString().c_str());
}

TEST_F(JobRunnerTest, TransientErrorWithAttemptsLeftIsRetried) {
  ScriptExtraction(Unavailable("sandbox: cannot start a child: Resource temporarily unavailable"));
  std::string id = ApiUpload(kText);
  queue::ActiveJob job = Lease(id, /*attempts_made=*/0);
  Outcome outcome = Run(job);
  ASSERT_TRUE(std::holds_alternative<Retry>(outcome)) << OutcomeName(outcome);
  auto applied = Apply(job, std::move(outcome));
  EXPECT_FALSE(applied.finished);
  EXPECT_EQ(Row(id).status, storage::JobStatus::kPending);
  auto q = Queued(id);
  EXPECT_EQ(q.state, FakeConsumer::State::kDelayed);
  EXPECT_FALSE(q.dead_lettered);
  EXPECT_NE(q.failed_reason.find("cannot start a child"), std::string::npos) << q.failed_reason;
  EXPECT_TRUE(UploadExists(id));  // the next attempt reads it

  // The next attempt succeeds.
  InProcessExtraction();
  queue_.Promote(id);
  auto again = queue_.Fetch("token-2", 30000);
  ASSERT_TRUE(again && again->has_value());
  EXPECT_EQ((*again)->attempts_made, 1);
  Outcome second = Run(**again);
  ASSERT_TRUE(std::holds_alternative<Completed>(second)) << OutcomeName(second);
  EXPECT_TRUE(Apply(**again, std::move(second)).finished);
  EXPECT_EQ(Row(id).status, storage::JobStatus::kCompleted);
  EXPECT_EQ(Row(id).attempts, 2);
}

TEST_F(JobRunnerTest, TransientErrorOnTheLastAttemptIsDeadLettered) {
  ScriptExtraction(Unavailable("sandbox: cannot start a child: Resource temporarily unavailable"));
  std::string id = ApiUpload(kText);
  queue::ActiveJob job = Lease(id, /*attempts_made=*/2);  // of 3
  Outcome outcome = Run(job);
  ASSERT_TRUE(std::holds_alternative<Retry>(outcome)) << OutcomeName(outcome);
  EXPECT_TRUE(Apply(job, std::move(outcome)).finished);
  auto row = Row(id);
  EXPECT_EQ(row.status, storage::JobStatus::kFailed);
  EXPECT_EQ(row.error, "sandbox: cannot start a child: Resource temporarily unavailable");
  auto q = Queued(id);
  EXPECT_EQ(q.state, FakeConsumer::State::kFailed);
  EXPECT_TRUE(q.dead_lettered);
  ASSERT_EQ(q.stacktrace.size(), 1u);
  EXPECT_NE(q.stacktrace[0].find("(unavailable)"), std::string::npos) << q.stacktrace[0];
  EXPECT_FALSE(UploadExists(id));
}

TEST_F(JobRunnerTest, JobOutOfTimeIsRetriedWithATimeout) {
  settings_.job_timeout_ms = 300;
  settings_.processing_delay_ms = 600;
  env_.pause = [&](int64_t ms) {
    clock_.Advance(ms);
    return false;  // not stopped
  };
  std::string id = ApiUpload(kText);
  queue::ActiveJob job = Lease(id);
  Outcome outcome = Run(job);
  ASSERT_TRUE(std::holds_alternative<Retry>(outcome)) << OutcomeName(outcome);
  const Status& why = std::get<Retry>(outcome).why;
  EXPECT_EQ(why.code(), Errc::kDeadlineExceeded);
  EXPECT_EQ(why.message(), "Job timed out after 300 ms (JOB_TIMEOUT_MS)");
  EXPECT_EQ(extract_calls_, 0);
  EXPECT_FALSE(Apply(job, std::move(outcome)).finished);
  EXPECT_EQ(Row(id).status, storage::JobStatus::kPending);
  EXPECT_EQ(Queued(id).state, FakeConsumer::State::kDelayed);
  EXPECT_NE(Queued(id).failed_reason.find("timed out"), std::string::npos);
}

TEST_F(JobRunnerTest, SandboxTimeoutIsTheJobsWhenJobTimeoutCutItShort) {
  settings_.job_timeout_ms = 5000;
  settings_.sandbox.timeout_ms = 60000;
  ScriptExtraction(DeadlineExceeded(kParseTooLongMessage));
  std::string id = ApiUpload(kText);
  queue::ActiveJob job = Lease(id);
  Outcome outcome = Run(job);
  EXPECT_EQ(sandbox_timeout_ms_, 5000);  // what was left of the job's time
  ASSERT_TRUE(std::holds_alternative<Retry>(outcome)) << OutcomeName(outcome);
  EXPECT_EQ(std::get<Retry>(outcome).why.message(), "Job timed out after 5000 ms (JOB_TIMEOUT_MS)");
}

TEST_F(JobRunnerTest, SandboxTimeoutOfItsOwnIsTheFilesAndPermanent) {
  settings_.job_timeout_ms = 0;
  settings_.sandbox.timeout_ms = 60000;
  ScriptExtraction(DeadlineExceeded(kParseTooLongMessage));
  std::string id = ApiUpload(kText);
  queue::ActiveJob job = Lease(id);
  Outcome outcome = Run(job);
  EXPECT_EQ(sandbox_timeout_ms_, 60000);
  ASSERT_TRUE(std::holds_alternative<Fail>(outcome)) << OutcomeName(outcome);
  EXPECT_TRUE(Apply(job, std::move(outcome)).finished);
  EXPECT_EQ(Row(id).status, storage::JobStatus::kFailed);
  EXPECT_EQ(Row(id).error, kParseTooLongMessage);
  EXPECT_TRUE(Queued(id).dead_lettered);  // on the first attempt: never retried
}

TEST_F(JobRunnerTest, RealSandboxCutShortByJobTimeoutIsRetriedAsAJobTimeout) {
  settings_.sandbox.extra_env.push_back("CONVEYOR_EXTRACT_TEST_FAULT=spin");
  settings_.sandbox.cpu_seconds = 600;  // only the wall clock can end it
  settings_.sandbox.timeout_ms = 60000;
  settings_.job_timeout_ms = 700;
  env_.extract = RunSandboxed;
  env_.clock = &SystemClock();
  std::string id = ApiUpload(kText);
  queue::ActiveJob job = Lease(id);
  Outcome outcome = Run(job);
  ASSERT_TRUE(std::holds_alternative<Retry>(outcome)) << OutcomeName(outcome);
  EXPECT_EQ(std::get<Retry>(outcome).why.code(), Errc::kDeadlineExceeded);
  EXPECT_EQ(std::get<Retry>(outcome).why.message(), "Job timed out after 700 ms (JOB_TIMEOUT_MS)");
}

TEST_F(JobRunnerTest, PermanentFailureFailsAtOnce) {
  std::string binary;
  for (int i = 0; i < 4096; ++i) binary.push_back(static_cast<char>((i * 7919 + 13) % 256));
  std::string id = ApiUpload(binary);
  queue::ActiveJob job = Lease(id);
  Outcome outcome = Run(job);
  ASSERT_TRUE(std::holds_alternative<Fail>(outcome)) << OutcomeName(outcome);
  EXPECT_TRUE(Apply(job, std::move(outcome)).finished);
  EXPECT_EQ(Row(id).status, storage::JobStatus::kFailed);
  EXPECT_EQ(Row(id).error, "Invalid file format");
  auto q = Queued(id);
  EXPECT_EQ(q.state, FakeConsumer::State::kFailed);
  EXPECT_TRUE(q.dead_lettered);
  EXPECT_EQ(q.failed_reason, "Invalid file format");
  EXPECT_FALSE(UploadExists(id));
}

TEST_F(JobRunnerTest, MissingUploadFailsWithAPublicMessage) {
  std::string id = ApiUpload(kText);
  fs::remove(blobs_->Location(id));
  queue::ActiveJob job = Lease(id);
  Outcome outcome = Run(job);
  ASSERT_TRUE(std::holds_alternative<Fail>(outcome)) << OutcomeName(outcome);
  Apply(job, std::move(outcome));
  EXPECT_EQ(Row(id).error, "Uploaded file is missing");
}

TEST_F(JobRunnerTest, CompletedRowOnlyTellsTheQueue) {
  std::string id = ApiUpload(kText);
  ASSERT_TRUE(store_.MarkCompleted(id, "file_" + id, R"({"fileId":"earlier run"})"));
  const auto before = Row(id);
  queue::ActiveJob job = Lease(id, /*attempts_made=*/1);
  Outcome outcome = Run(job);
  ASSERT_TRUE(std::holds_alternative<AlreadyFinished>(outcome)) << OutcomeName(outcome);
  EXPECT_TRUE(Apply(job, std::move(outcome)).finished);
  EXPECT_EQ(extract_calls_, 0);
  EXPECT_EQ(Queued(id).state, FakeConsumer::State::kCompleted);
  EXPECT_EQ(Queued(id).return_json, R"({"fileId":"earlier run"})");
  const auto after = Row(id);
  EXPECT_EQ(after.status, storage::JobStatus::kCompleted);
  EXPECT_EQ(after.updated_at_ms, before.updated_at_ms);
  EXPECT_EQ(after.result_json, before.result_json);
}

TEST_F(JobRunnerTest, FailedRowFailsInTheQueueWithoutARun) {
  std::string id = ApiUpload(kText);
  ASSERT_TRUE(store_.MarkFailed(id, "Invalid file format"));
  const auto before = Row(id);
  queue::ActiveJob job = Lease(id);
  Outcome outcome = Run(job);
  ASSERT_TRUE(std::holds_alternative<AlreadyFinished>(outcome)) << OutcomeName(outcome);
  EXPECT_TRUE(Apply(job, std::move(outcome)).finished);
  EXPECT_EQ(extract_calls_, 0);
  auto q = Queued(id);
  EXPECT_EQ(q.state, FakeConsumer::State::kFailed);
  EXPECT_EQ(q.failed_reason, "Invalid file format");
  const auto after = Row(id);
  EXPECT_EQ(after.status, storage::JobStatus::kFailed);
  EXPECT_EQ(after.updated_at_ms, before.updated_at_ms);
}

TEST_F(JobRunnerTest, ProducerJobWithInvalidDataFailsInTheQueueOnlyWithoutARow) {
  const std::string file = storage_dir_ + "/from-node.txt";
  std::ofstream(file) << kText;
  const std::string bad_session = NewUuid();
  const std::string not_json = NewUuid();
  const std::string not_uuid = "job-from-node";
  Lease(bad_session, 0,
        queue::EncodeJobPayload({bad_session, "u-node", std::string(300, 's'), file, "a.txt",
                                 "text/plain", 10, ""}));
  Lease(not_json, 0, "{\"userId\":");
  Lease(not_uuid, 0,
        queue::EncodeJobPayload({not_uuid, "u-node", "s-node", file, "a.txt", "text/plain", 10, ""}));
  for (const auto& id : {bad_session, not_json, not_uuid}) {
    SCOPED_TRACE(id);
    auto job = Queued(id).job;
    Outcome outcome = Run(job);
    ASSERT_TRUE(std::holds_alternative<Fail>(outcome)) << OutcomeName(outcome);
    EXPECT_FALSE(std::get<Fail>(outcome).has_row);
    EXPECT_TRUE(Apply(job, std::move(outcome)).finished);
    EXPECT_EQ(Queued(id).state, FakeConsumer::State::kFailed);
    EXPECT_TRUE(Queued(id).dead_lettered);
    EXPECT_FALSE(store_.GetJob(id)->has_value());
  }
  EXPECT_EQ(store_.size(), 0u);
  EXPECT_EQ(extract_calls_, 0);
  EXPECT_TRUE(fs::exists(file));  // never adopted
}

TEST_F(JobRunnerTest, ProducerJobIsAdoptedRecordedAndCompleted) {
  const std::string file = storage_dir_ + "/node/report.txt";
  fs::create_directories(fs::path(file).parent_path());
  std::ofstream(file) << kText;
  const std::string id = NewUuid();
  queue::ActiveJob job = Lease(
      id, 0, queue::EncodeJobPayload({id, "u-node", "s-node", file, "a.txt", "text/plain", 10, ""}));
  Outcome outcome = Run(job);
  ASSERT_TRUE(std::holds_alternative<Completed>(outcome)) << OutcomeName(outcome);
  EXPECT_TRUE(Apply(job, std::move(outcome)).finished);
  auto row = Row(id);
  EXPECT_EQ(row.status, storage::JobStatus::kCompleted);
  EXPECT_EQ(row.user_id, "u-node");
  EXPECT_EQ(row.storage_path, blobs_->Location(id));
  EXPECT_FALSE(fs::exists(file));
  EXPECT_FALSE(UploadExists(id));
}

TEST_F(JobRunnerTest, DeferredFailureFailsAtOnce) {
  std::string id = ApiUpload(kText);
  queue::ActiveJob job = Lease(id);
  job.deferred_failure = "job stalled more than allowable limit";
  Outcome outcome = Run(job);
  ASSERT_TRUE(std::holds_alternative<Fail>(outcome)) << OutcomeName(outcome);
  EXPECT_TRUE(Apply(job, std::move(outcome)).finished);
  EXPECT_EQ(extract_calls_, 0);
  EXPECT_EQ(Row(id).status, storage::JobStatus::kFailed);
  EXPECT_EQ(Row(id).error, "job stalled more than allowable limit");
  EXPECT_TRUE(Queued(id).dead_lettered);
}

TEST_F(JobRunnerTest, StopDuringTheJobAbandonsItUntouched) {
  settings_.processing_delay_ms = 60000;
  env_.pause = [](int64_t) { return true; };  // Stop() ran out of grace meanwhile
  std::string id = ApiUpload(kText);
  queue::ActiveJob job = Lease(id);
  Outcome outcome = Run(job);
  ASSERT_TRUE(std::holds_alternative<Abandoned>(outcome)) << OutcomeName(outcome);
  EXPECT_FALSE(Apply(job, std::move(outcome)).finished);
  EXPECT_EQ(extract_calls_, 0);
  EXPECT_EQ(Queued(id).state, FakeConsumer::State::kActive);
  EXPECT_TRUE(UploadExists(id));
  EXPECT_EQ(queue_.counts.Get("Fail") + queue_.counts.Get("Complete"), 0);
}

TEST_F(JobRunnerTest, DatabaseDownIsRetried) {
  std::string id = ApiUpload(kText);
  queue::ActiveJob job = Lease(id);
  store_.fail_claim = Errc::kUnavailable;
  Outcome outcome = Run(job);
  ASSERT_TRUE(std::holds_alternative<Retry>(outcome)) << OutcomeName(outcome);
  store_.fail_claim = Errc::kOk;
  // A row that cannot be completed: retried, nothing half-recorded.
  Outcome done = Run(job);
  ASSERT_TRUE(std::holds_alternative<Completed>(done)) << OutcomeName(done);
  store_.fail_complete = Errc::kUnavailable;
  EXPECT_FALSE(Apply(job, std::move(done)).finished);
  EXPECT_EQ(Row(id).status, storage::JobStatus::kPending);
  EXPECT_EQ(Queued(id).state, FakeConsumer::State::kDelayed);
  EXPECT_TRUE(store_.SearchMemory("alice", "s1", "wicks", 10)->empty());
  EXPECT_TRUE(UploadExists(id));
}

// On the last attempt, an outage (the database down while the result is
// recorded) that the caller may wait out is not recorded at all: no attempt is
// used, the row is not failed, the upload stays; once the database is back
// the same lease completes the job.
TEST_F(JobRunnerTest, AnOutageWaitedOutUsesNoAttempt) {
  std::string id = ApiUpload(kText);
  queue::ActiveJob job = Lease(id, /*attempts_made=*/2);  // of 3
  Outcome done = Run(job);
  ASSERT_TRUE(std::holds_alternative<Completed>(done)) << OutcomeName(done);
  store_.fail_complete = Errc::kUnavailable;
  auto applied = Apply(job, std::move(done), nullptr, /*wait_outage=*/true);
  EXPECT_TRUE(applied.outage);
  EXPECT_FALSE(applied.finished);
  EXPECT_EQ(Row(id).status, storage::JobStatus::kProcessing);
  EXPECT_EQ(Queued(id).state, FakeConsumer::State::kActive);
  EXPECT_FALSE(Queued(id).dead_lettered);
  EXPECT_TRUE(UploadExists(id));

  // A permanent error is never waited out, outage or not.
  EXPECT_FALSE(Apply(job, Fail{InvalidArgument("Invalid file format")}, nullptr, true).outage);
  EXPECT_EQ(Row(id).status, storage::JobStatus::kFailed);
}

TEST_F(JobRunnerTest, AnOutageRunsAgainUnderTheSameLeaseAndCompletes) {
  std::string id = ApiUpload(kText);
  queue::ActiveJob job = Lease(id, /*attempts_made=*/2);  // of 3
  store_.fail_claim = Errc::kUnavailable;
  EXPECT_TRUE(Apply(job, Run(job), nullptr, /*wait_outage=*/true).outage);
  store_.fail_claim = Errc::kOk;
  Outcome done = Run(job);
  ASSERT_TRUE(std::holds_alternative<Completed>(done)) << OutcomeName(done);
  EXPECT_TRUE(Apply(job, std::move(done), nullptr, /*wait_outage=*/true).finished);
  EXPECT_EQ(Row(id).status, storage::JobStatus::kCompleted);
  EXPECT_EQ(Queued(id).state, FakeConsumer::State::kCompleted);
}

// Two runs of one job whose leases overlapped (the first run's lock lapsed
// and the job was taken again): the one that finishes first records it; the
// other, failing afterwards, must not reopen the row, or it would stay pending
// for good with its job final in the queue and its upload gone.
TEST_F(JobRunnerTest, ARunFailingAfterAnotherFinishedTheJobLeavesTheRowFinal) {
  std::string id = ApiUpload(kText);
  queue::ActiveJob job = Lease(id);
  Outcome late = Run(job);
  Outcome first = Run(job);
  ASSERT_TRUE(std::holds_alternative<Completed>(first)) << OutcomeName(first);
  EXPECT_TRUE(Apply(job, std::move(first)).finished);
  ASSERT_EQ(Row(id).status, storage::JobStatus::kCompleted);
  ASSERT_FALSE(UploadExists(id));

  // The late run's commit fails for a reason of its own (a collision with
  // the first run's chunks is kAborted: the next test).
  store_.fail_complete = Errc::kInvalidArgument;
  ASSERT_TRUE(std::holds_alternative<Completed>(late)) << OutcomeName(late);
  EXPECT_FALSE(Apply(job, std::move(late)).finished);
  EXPECT_EQ(Row(id).status, storage::JobStatus::kCompleted);
  EXPECT_EQ(Row(id).progress, 100);
  EXPECT_EQ(Queued(id).state, FakeConsumer::State::kCompleted);
  EXPECT_FALSE(Queued(id).dead_lettered);
}

TEST_F(JobRunnerTest, ACommitCollidingWithAnotherRunsCompletionEndsAsThatCompletion) {
  std::string id = ApiUpload(kText);
  queue::ActiveJob job = Lease(id);
  Outcome late = Run(job);
  Outcome first = Run(job);
  ASSERT_TRUE(std::holds_alternative<Completed>(first)) << OutcomeName(first);
  const std::string first_result = std::get<Completed>(first).completion.result_json;
  // The first run's row is committed; its queue call has not happened yet.
  ASSERT_TRUE(store_.CompleteJob(std::get<Completed>(first).completion).ok());

  // The late run's commit meets the first run's chunks (PostgreSQL's
  // kAborted): it ends as the first run's completion, not as a retry.
  store_.fail_complete = Errc::kAborted;
  ASSERT_TRUE(std::holds_alternative<Completed>(late)) << OutcomeName(late);
  EXPECT_TRUE(Apply(job, std::move(late)).finished);
  EXPECT_EQ(Row(id).status, storage::JobStatus::kCompleted);
  EXPECT_EQ(Queued(id).state, FakeConsumer::State::kCompleted);
  EXPECT_EQ(Queued(id).return_json, first_result);
  EXPECT_TRUE(Queued(id).failed_reason.empty());  // never put back for a retry
  EXPECT_FALSE(UploadExists(id));
}

TEST_F(JobRunnerTest, AnAbortedCommitWithTheRowStillOpenIsRetried) {
  std::string id = ApiUpload(kText);
  queue::ActiveJob job = Lease(id);
  Outcome run = Run(job);
  store_.fail_complete = Errc::kAborted;
  ASSERT_TRUE(std::holds_alternative<Completed>(run)) << OutcomeName(run);
  EXPECT_FALSE(Apply(job, std::move(run)).finished);
  EXPECT_EQ(Row(id).status, storage::JobStatus::kPending);
  EXPECT_EQ(Queued(id).state, FakeConsumer::State::kDelayed);
  EXPECT_TRUE(UploadExists(id));
}

TEST_F(JobRunnerTest, CompletionLeasesTheNextJobInTheSameRoundTrip) {
  std::string first = ApiUpload(kText);
  std::string second = ApiUpload(kText);
  queue::ActiveJob job = Lease(first);
  queue::ActiveJob waiting;
  waiting.id = second;
  queue_.Push(waiting);
  OutcomeApplier::NextLease lease{"token-next", 30000};
  auto applied = Apply(job, Run(job), &lease);
  EXPECT_TRUE(applied.finished);
  ASSERT_TRUE(applied.next);
  EXPECT_EQ(applied.next->id, second);
  EXPECT_EQ(applied.next->token, "token-next");
  EXPECT_EQ(Queued(first).state, FakeConsumer::State::kCompleted);
  EXPECT_EQ(Queued(second).state, FakeConsumer::State::kActive);
  EXPECT_EQ(queue_.counts.Get("CompleteAndFetch"), 1);
  EXPECT_EQ(queue_.counts.Get("Complete"), 0);
  EXPECT_EQ(queue_.counts.Get("Fetch"), 1);  // the first lease only
}

TEST_F(JobRunnerTest, LostLockLeavesTheRecordedRowAndIsOnlyLogged) {
  std::string id = ApiUpload(kText);
  queue::ActiveJob job = Lease(id);
  queue_.fail_finish = Errc::kFailedPrecondition;
  EXPECT_TRUE(Apply(job, Run(job)).finished);
  EXPECT_EQ(Row(id).status, storage::JobStatus::kCompleted);  // row before queue
  EXPECT_EQ(Queued(id).state, FakeConsumer::State::kActive);
}

}  // namespace
}  // namespace conveyor::worker
