#include "worker/job_runner.h"

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>
#include <utility>
#include <vector>

#include "core/ids.h"
#include "core/metrics.h"
#include "worker/job_metrics.h"
#include "queue/payload.h"
#include "storage/blob_store.h"
#include "storage/metadata_store.h"
#include "worker/references.h"

namespace conveyor::worker {
namespace {

// Client-facing messages of storage trouble (details go to the log only).
constexpr const char* kInvalidStoragePath = "Invalid storage path";
constexpr const char* kInputUnreadableMessage = "Uploaded file could not be read";

// The child's stage whose start is also written to the row (see the file
// comment of job_runner.h); the runner's own stages say so where they report.
constexpr const char* kRowStageOfChild = "extract";

std::string FileIdFor(const std::string& job_id) { return "file_" + job_id; }

// A storage error as the client may see it; the detail goes to the log.
Status PublicStorageError(const queue::ActiveJob& job, const Status& why) {
  spdlog::warn("worker: job {}: upload: {}", job.id, why.ToString());
  switch (why.code()) {
    case Errc::kNotFound: return FailedPrecondition(kInputMissingMessage);
    case Errc::kInvalidArgument: return InvalidArgument(kInvalidStoragePath);
    default: return Unavailable(kInputUnreadableMessage);
  }
}

// A failed step: retried when its code says it may pass.
Outcome FailureOf(const Status& why) {
  if (IsTransient(why.code())) return Retry{why};
  return Fail{why};
}

}  // namespace

// What a job is about, from its row (the source of truth) or, for a job a
// Node.js producer added without a row, from its data once checked.
struct JobRunner::JobFacts {
  std::string user_id;
  std::string session_id;
  std::string original_name;
  std::string message;
};

JobRunner::JobRunner(WorkerSettings settings, storage::MetadataStore* store,
                     storage::BlobStore* blobs, processing::Analyzer* analyzer, RunnerEnv env)
    : settings_(std::move(settings)),
      store_(store),
      blobs_(blobs),
      analyzer_(analyzer),
      env_(std::move(env)) {}

Outcome JobRunner::Run(const queue::ActiveJob& job, const ProgressSink& progress) const {
  ScopedLogContext log_context(job_metrics::JobLogContext(job));
  if (job.deferred_failure) return Fail{FailedPrecondition(*job.deferred_failure)};
  const int64_t started_ms = env_.clock->MonotonicMs();

  // One statement reads the row and marks it processing.
  auto row = store_->ClaimJob(job.id, job.attempts_started);
  if (!row) return Retry{row.status()};
  JobFacts facts;
  storage::OpenedBlob blob;
  if (row->has_value()) {
    const storage::JobRecord& r = **row;
    if (r.status == storage::JobStatus::kCompleted) {
      return AlreadyFinished{
          .completed = true, .result_json = r.result_json.value_or("null"), .error = ""};
    }
    if (r.status == storage::JobStatus::kFailed) {
      return AlreadyFinished{
          .completed = false, .result_json = "", .error = r.error.value_or("failed")};
    }
    facts = {r.user_id, r.session_id, r.original_name, r.message};
    auto opened = blobs_->OpenBlob(job.id);
    if (!opened) return FailureOf(PublicStorageError(job, opened.status()));
    blob = std::move(*opened);
  } else if (auto refused = AdoptProducerJob(job, &facts, &blob)) {
    return std::move(*refused);
  }
  // One line per run that took its row (the chaos test checks that no run
  // takes a row after the job's completion was committed).
  spdlog::info("worker: job {} claimed (attempt {})", job.id, job.attempts_started);
  return Process(job, facts, blob, started_ms, progress);
}

// A job without a row, from a Node.js producer: checks its data, adopts its
// file as blob <job id> and writes the row, marked processing. nullopt when
// it is ready to process; else how it ended.
std::optional<Outcome> JobRunner::AdoptProducerJob(const queue::ActiveJob& job, JobFacts* facts,
                                                   storage::OpenedBlob* blob) const {
  auto payload = queue::DecodeJobPayload(job.data_json);
  if (!payload) return Fail{payload.status(), /*has_row=*/false};
  if (!payload->job_id.empty() && payload->job_id != job.id) {
    spdlog::warn("worker: job {} carries jobId {} in its data", job.id, payload->job_id);
  }
  // The rules the upload path applies (core/ids.h), so that a session means
  // the same bytes whichever way a file arrived. Without a row to record it
  // in, such a job fails in the queue only.
  Status invalid;
  if (!IsUuid(job.id)) invalid = InvalidArgument("Invalid job id (must be a UUID)");
  else if (payload->user_id.empty() || !IsValidUtf8(payload->user_id)) invalid = InvalidArgument("Invalid userId");
  else invalid = CheckSessionId(payload->session_id);
  if (!invalid.ok()) return Fail{invalid, /*has_row=*/false};
  *facts = {payload->user_id, payload->session_id, payload->original_name, payload->message};

  // Adopt first, then the row: a crash in between leaves blob <job id>,
  // which the next attempt's Adopt finds.
  auto adopted = blobs_->Adopt(payload->storage_path, job.id);
  Status failure;
  if (!adopted) failure = PublicStorageError(job, adopted.status());
  if (!failure.ok() && IsTransient(failure.code())) return Retry{failure};
  storage::NewJob nj;
  nj.id = job.id;
  nj.user_id = payload->user_id;
  nj.session_id = payload->session_id;
  nj.original_name = payload->original_name;
  nj.mime_type = payload->mime_type;
  nj.size_bytes = adopted ? adopted->size_bytes : payload->size;
  nj.storage_path = blobs_->Location(job.id);
  nj.message = payload->message;
  auto inserted = store_->InsertJob(nj);
  if (!inserted && inserted.code() != Errc::kAlreadyExists) return Retry{inserted.status()};
  // Recorded in the row too, so the producer's user sees why.
  if (!failure.ok()) return Fail{failure};
  auto marked = store_->MarkProcessing(job.id, job.attempts_started);
  if (!marked && marked.code() != Errc::kFailedPrecondition) return Retry{marked.status()};
  *blob = std::move(*adopted);
  return std::nullopt;
}

Outcome JobRunner::Process(const queue::ActiveJob& job, const JobFacts& facts,
                           const storage::OpenedBlob& blob, int64_t started_ms,
                           const ProgressSink& progress) const {
  // A stage starts: the sink always hears of it, the row at coarse stages.
  auto report = [&](const std::string& stage, int percent, bool to_row) {
    if (to_row) (void)store_->SetProgress(job.id, percent);
    if (progress) progress(stage, percent);
  };

  if (settings_.processing_delay_ms > 0 && env_.pause) {
    // Tests use this window to kill or stop the worker while it holds the
    // job. A Stop() whose grace ran out has released the job already.
    if (env_.pause(settings_.processing_delay_ms)) return Abandoned{};
  }

  // JOB_TIMEOUT_MS bounds the whole job: what is left of it bounds the
  // sandboxed extraction, and a job out of time fails with a timeout, which
  // the queue retries like any other transient error.
  const Status timed_out = DeadlineExceeded(
      "Job timed out after " + std::to_string(settings_.job_timeout_ms) + " ms (JOB_TIMEOUT_MS)");
  SandboxSettings sandbox = settings_.sandbox;
  bool job_deadline_binds = false;
  if (settings_.job_timeout_ms > 0) {
    const int64_t left = started_ms + settings_.job_timeout_ms - env_.clock->MonotonicMs();
    if (left <= 0) return Retry{timed_out};
    if (left < sandbox.timeout_ms) {
      sandbox.timeout_ms = left;
      job_deadline_binds = true;
    }
  }

  // Stage timings (job_metrics.h): detect runs from the child's "detect" to
  // its "extract", extract from there until the child's answer.
  int64_t detect_ns = 0, extract_ns = 0;
  processing::Input input{blob.path, facts.original_name, facts.message, blob.fd.get()};
  auto out = env_.extract(sandbox, input, settings_.limits,
                          [&](const std::string& stage, int percent) {
                            if (stage == "detect") detect_ns = metrics::SteadyNowNs();
                            if (stage == "extract" && extract_ns == 0) {
                              extract_ns = metrics::SteadyNowNs();
                              if (detect_ns) {
                                job_metrics::ObserveStage("detect", (extract_ns - detect_ns) / 1e9);
                              }
                            }
                            report(stage, percent, stage == kRowStageOfChild);
                          });
  if (extract_ns) job_metrics::ObserveStage("extract", metrics::SecondsSince(extract_ns));
  if (out.code() == Errc::kDeadlineExceeded) {
    // The sandbox's timeout: the job's own when JOB_TIMEOUT_MS cut it short,
    // else the file's (it takes too long to parse, every time).
    if (job_deadline_binds) return Retry{timed_out};
    return Fail{out.status()};
  }
  if (!out) return FailureOf(out.status());

  report("analyse", 80, /*to_row=*/true);
  const int64_t analyse_ns = metrics::SteadyNowNs();
  processing::AnalysisInput ain;
  ain.text = out->text;
  ain.kind = out->kind;
  ain.message = facts.message;
  ain.extract_summary = out->summary;
  ain.name_hint = facts.original_name;
  ain.words = out->words;
  ain.pages = out->pages;
  ain.tables = out->tables;
  auto analysis = analyzer_->Analyze(ain);
  if (!analysis) return FailureOf(analysis.status());

  const std::string file_id = FileIdFor(job.id);
  // The file's index terms: stored with its chunks, and its top ones find
  // earlier files of the session holding them (best effort).
  std::vector<std::string> index_terms = IndexTerms(out->text);
  nlohmann::json references = nlohmann::json::array();
  if (auto refs = FindReferences(*store_, facts.user_id, facts.session_id, file_id, index_terms,
                                 settings_.references)) {
    for (const auto& r : *refs) {
      references.push_back(
          {{"fileId", r.file_id}, {"jobId", r.job_id}, {"snippet", r.snippet}, {"terms", r.terms}});
    }
  } else {
    spdlog::warn("worker: references of {}: {}", job.id, refs.status().ToString());
  }
  job_metrics::ObserveStage("analyse", metrics::SecondsSince(analyse_ns));
  report("store", 90, /*to_row=*/false);
  storage::JobCompletion done;
  storage::FileMemory& memory = done.memory;
  memory.job_id = job.id;
  memory.user_id = facts.user_id;
  memory.session_id = facts.session_id;
  memory.file_id = file_id;
  memory.terms = std::move(index_terms);
  memory.chunks.reserve(out->chunks.size());
  for (size_t i = 0; i < out->chunks.size(); ++i) {
    memory.chunks.push_back({static_cast<int>(i), std::move(out->chunks[i])});
  }
  nlohmann::json result = {
      {"aiResponse", {{"text", analysis->summary}}},
      {"fileId", file_id},
      {"kind", std::string(processing::FileKindName(out->kind))},
      {"words", out->words},
      {"pages", out->pages},
      {"tables", out->tables},
      {"chunks", memory.chunks.size()},
      {"keywords", analysis->keywords},
      {"language", analysis->language},
      {"provider", analysis->provider},
      {"references", references},
  };
  done.result_json = result.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return Completed{std::move(done)};
}

}  // namespace conveyor::worker
