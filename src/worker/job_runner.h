// File: worker/job_runner.h
//
// JobRunner: runs one leased job to an Outcome (outcome.h). It reads and
// writes the job's row and blob, runs the sandboxed extraction and the
// analysis, and makes no queue call: OutcomeApplier records what it returns.
//
//   deferred failure (the job stalled too often)       -> Fail
//   ClaimJob: the row, now processing                  -> row completed/failed: AlreadyFinished
//     no row: a Node.js producer's job: its data is checked (invalid -> Fail
//     without a row), its file adopted as blob <job id>, the row written
//   open blob <job id>                                 -> "Uploaded file is missing": Fail
//   PROCESSING_DELAY_MS pause (tests)                  -> Stop() meanwhile: Abandoned
//   JOB_TIMEOUT_MS used up                             -> Retry "Job timed out ..."
//   extraction in the sandbox (RunSandboxed), its
//   timeout cut to what is left of JOB_TIMEOUT_MS
//   analysis (Analyzer); references (best effort)
//   -> Completed{memory chunks, result}
//
// The row decides whose job it is and which file it reads: a job with a row
// reads blob <job id> for the row's user and session, whatever its data says.
// A job without a row (a Node.js producer) names its file in `storagePath`;
// the file is adopted (BlobStore::Adopt: under STORAGE_DIR, no symlink, not
// another job's) and becomes blob <job id> before the row is written.
//
// Errors are told apart by code only: transient codes (IsTransient) give
// Retry, the others Fail. A sandbox timeout (kDeadlineExceeded, sandbox.h) is
// the job's when JOB_TIMEOUT_MS had cut the sandbox's time short (Retry with
// the job-timeout message), else the file's (Fail "File took too long to
// parse").
//
// Progress: every stage (the child's detect 5, extract 20, analyse 50, chunk
// 75; the runner's analyse 80 and store 90) goes to the ProgressSink (the
// worker turns it into the queue's progress event and log line, one round
// trip). The row's progress, which the status endpoint shows, is written only
// where a phase that may take long begins: the child's extract (parsing) and
// the runner's analyse (possibly a remote provider); the other stages follow
// within milliseconds.
//
// Threads: Run is blocking and may be called from several threads at once
// (the store, blob store and analyzer are thread-safe); the sink is called on
// the calling thread.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "core/clock.h"
#include "core/error.h"
#include "processing/analyzer.h"
#include "processing/processing.h"
#include "queue/job.h"
#include "worker/outcome.h"
#include "worker/sandbox.h"
#include "worker/worker.h"

namespace conveyor::storage {
class BlobStore;
class MetadataStore;
struct OpenedBlob;
}  // namespace conveyor::storage

namespace conveyor::worker {

// What the runner depends on besides the store, the blobs and the analyzer;
// the defaults are the production ones.
struct RunnerEnv {
  // Extracts one file (RunSandboxed: a `conveyor extract` child).
  std::function<Result<processing::Output>(const SandboxSettings&, const processing::Input&,
                                           const processing::Limits&,
                                           const processing::ProgressFn&)>
      extract = RunSandboxed;
  // PROCESSING_DELAY_MS: waits `ms` unless the worker stops first; true when
  // it stopped (the job is then abandoned). Empty: no wait.
  std::function<bool(int64_t ms)> pause;
  // Measures JOB_TIMEOUT_MS. Not owned; must outlive the runner.
  const Clock* clock = &SystemClock();
};

class JobRunner {
 public:
  // Receives each stage of a job as it starts.
  using ProgressSink = std::function<void(const std::string& stage, int percent)>;

  // `store`, `blobs` and `analyzer` are not owned and must outlive the runner.
  JobRunner(WorkerSettings settings, storage::MetadataStore* store, storage::BlobStore* blobs,
            processing::Analyzer* analyzer, RunnerEnv env = {});

  // Runs `job` (as fetched) to its outcome; see the file comment.
  Outcome Run(const queue::ActiveJob& job, const ProgressSink& progress) const;

 private:
  struct JobFacts;
  std::optional<Outcome> AdoptProducerJob(const queue::ActiveJob& job, JobFacts* facts,
                                          storage::OpenedBlob* blob) const;
  Outcome Process(const queue::ActiveJob& job, const JobFacts& facts,
                  const storage::OpenedBlob& blob, int64_t started_ms,
                  const ProgressSink& progress) const;

  const WorkerSettings settings_;
  storage::MetadataStore* const store_;
  storage::BlobStore* const blobs_;
  processing::Analyzer* const analyzer_;
  const RunnerEnv env_;
};

}  // namespace conveyor::worker
