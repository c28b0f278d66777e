// The MetadataStore behaviours shared by every backend; see metadata_store_contract.h.
#include "storage/metadata_store_contract.h"

#include <atomic>
#include <thread>
#include <vector>

#include "core/ids.h"

namespace conveyor::storage {

std::unique_ptr<MetadataStore> OpenStore(const StoreBackend& backend, const std::string& url,
                                         bool migrate) {
  auto s = backend.open(url, migrate);
  EXPECT_TRUE(s.ok()) << url << ": " << s.status().ToString();
  return s.ok() ? std::move(*s) : nullptr;
}

NewJob MakeJob(const std::string& user, const std::string& session) {
  NewJob j;
  j.id = NewUuid();
  j.user_id = user;
  j.session_id = session;
  j.original_name = "notes.txt";
  j.mime_type = "text/plain";
  j.size_bytes = 42;
  j.sha256_hex = std::string(64, 'a');
  j.storage_path = "/data/" + j.id;
  j.message = "please summarise";
  return j;
}

namespace {

TEST_P(MetadataStoreContract, InsertThenGetReturnsAllFields) {
  auto store = Open();
  NewJob j = MakeJob();
  int64_t before = NowMs();
  ASSERT_TRUE(store->InsertJob(j).ok());
  auto got = store->GetJob(j.id);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ASSERT_TRUE(got->has_value());
  const JobRecord& r = **got;
  EXPECT_EQ(r.id, j.id);
  EXPECT_EQ(r.user_id, "alice");
  EXPECT_EQ(r.session_id, "s1");
  EXPECT_EQ(r.status, JobStatus::kPending);
  EXPECT_FALSE(r.file_id.has_value());
  EXPECT_FALSE(r.result_json.has_value());
  EXPECT_FALSE(r.error.has_value());
  EXPECT_GE(r.created_at_ms, before);
  EXPECT_EQ(r.created_at_ms, r.updated_at_ms);
  EXPECT_EQ(r.original_name, "notes.txt");
  EXPECT_EQ(r.mime_type, "text/plain");
  EXPECT_EQ(r.size_bytes, 42);
  EXPECT_EQ(r.sha256_hex, j.sha256_hex);
  EXPECT_EQ(r.storage_path, j.storage_path);
  EXPECT_EQ(r.message, "please summarise");
  EXPECT_EQ(r.progress, 0);
  EXPECT_EQ(r.attempts, 0);
}

TEST_P(MetadataStoreContract, MissingJobIsNullopt) {
  auto store = Open();
  auto got = store->GetJob(NewUuid());
  ASSERT_TRUE(got.ok());
  EXPECT_FALSE(got->has_value());
}

TEST_P(MetadataStoreContract, DuplicateIdIsAlreadyExists) {
  auto store = Open();
  NewJob j = MakeJob();
  ASSERT_TRUE(store->InsertJob(j).ok());
  EXPECT_EQ(store->InsertJob(j).code(), Errc::kAlreadyExists);
}

TEST_P(MetadataStoreContract, InsertJobsInsertsEveryRowWithAllFields) {
  auto store = Open();
  std::vector<NewJob> jobs;
  for (int i = 0; i < 40; ++i) jobs.push_back(MakeJob("alice", "s" + std::to_string(i)));
  jobs[7].message = "it's a \"quote\" and a ;";  // text parameters, never SQL
  ASSERT_TRUE(store->InsertJobs(jobs).ok());
  EXPECT_TRUE(store->InsertJobs({}).ok());
  for (const NewJob& j : jobs) {
    auto got = store->GetJob(j.id);
    ASSERT_TRUE(got.ok() && got->has_value()) << j.id;
    const JobRecord& r = **got;
    EXPECT_EQ(r.session_id, j.session_id);
    EXPECT_EQ(r.status, JobStatus::kPending);
    EXPECT_EQ(r.size_bytes, 42);
    EXPECT_EQ(r.sha256_hex, j.sha256_hex);
    EXPECT_EQ(r.storage_path, j.storage_path);
    EXPECT_EQ(r.message, j.message);
    EXPECT_EQ(r.created_at_ms, r.updated_at_ms);
  }
}

TEST_P(MetadataStoreContract, InsertJobsIsAllOrNothing) {
  auto store = Open();
  NewJob taken = MakeJob();
  ASSERT_TRUE(store->InsertJob(taken).ok());
  std::vector<NewJob> jobs = {MakeJob(), taken, MakeJob()};
  EXPECT_EQ(store->InsertJobs(jobs).code(), Errc::kAlreadyExists);
  // The same id twice in one list is refused as well.
  NewJob twice = MakeJob();
  EXPECT_EQ(store->InsertJobs({MakeJob(), twice, twice}).code(), Errc::kAlreadyExists);
  EXPECT_EQ(store->InsertJobs({MakeJob(), MakeJob("")}).code(), Errc::kInvalidArgument);
  for (const NewJob& j : {jobs[0], jobs[2], twice}) {
    auto got = store->GetJob(j.id);
    ASSERT_TRUE(got.ok());
    EXPECT_FALSE(got->has_value()) << "a row of a refused batch was inserted";
  }
  // The store is still usable after the rolled-back batches.
  EXPECT_TRUE(store->InsertJobs({jobs[0], jobs[2]}).ok());
}

TEST_P(MetadataStoreContract, InsertWithoutUserIsInvalidArgument) {
  auto store = Open();
  NewJob j = MakeJob("");
  EXPECT_EQ(store->InsertJob(j).code(), Errc::kInvalidArgument);
}

TEST_P(MetadataStoreContract, GetJobForAnotherUserIsNullopt) {
  auto store = Open();
  NewJob j = MakeJob("alice");
  ASSERT_TRUE(store->InsertJob(j).ok());
  auto mine = store->GetJobForUser(j.id, "alice");
  ASSERT_TRUE(mine.ok());
  EXPECT_TRUE(mine->has_value());
  auto theirs = store->GetJobForUser(j.id, "mallory");
  ASSERT_TRUE(theirs.ok());
  EXPECT_FALSE(theirs->has_value());
}

TEST_P(MetadataStoreContract, LifecycleUpdatesStatusAndUpdatedAt) {
  auto store = Open();
  NewJob j = MakeJob();
  ASSERT_TRUE(store->InsertJob(j).ok());
  int64_t last = (*store->GetJob(j.id))->updated_at_ms;
  auto expect_bumped = [&](JobStatus want) {
    auto r = store->GetJob(j.id);
    ASSERT_TRUE(r.ok() && r->has_value());
    EXPECT_EQ((*r)->status, want);
    EXPECT_GT((*r)->updated_at_ms, last);
    last = (*r)->updated_at_ms;
  };

  ASSERT_TRUE(store->MarkProcessing(j.id, 1).ok());
  expect_bumped(JobStatus::kProcessing);
  EXPECT_EQ((*store->GetJob(j.id))->attempts, 1);

  ASSERT_TRUE(store->SetProgress(j.id, 40).ok());
  expect_bumped(JobStatus::kProcessing);
  EXPECT_EQ((*store->GetJob(j.id))->progress, 40);
  ASSERT_TRUE(store->SetProgress(j.id, 250).ok());
  EXPECT_EQ((*store->GetJob(j.id))->progress, 100);
  last = (*store->GetJob(j.id))->updated_at_ms;

  ASSERT_TRUE(store->MarkPending(j.id).ok());
  expect_bumped(JobStatus::kPending);
  EXPECT_EQ((*store->GetJob(j.id))->progress, 0);

  ASSERT_TRUE(store->MarkProcessing(j.id, 2).ok());
  expect_bumped(JobStatus::kProcessing);

  ASSERT_TRUE(store->MarkCompleted(j.id, "file_x", R"({"aiResponse":{"text":"hi"}})").ok());
  expect_bumped(JobStatus::kCompleted);
  auto done = **store->GetJob(j.id);
  EXPECT_EQ(done.file_id, "file_x");
  EXPECT_EQ(done.result_json, R"({"aiResponse":{"text":"hi"}})");
  EXPECT_EQ(done.progress, 100);
  EXPECT_EQ(done.attempts, 2);
  EXPECT_FALSE(done.error.has_value());
}

TEST_P(MetadataStoreContract, MarkProcessingOnFinalRowIsFailedPrecondition) {
  auto store = Open();
  NewJob a = MakeJob(), b = MakeJob();
  ASSERT_TRUE(store->InsertJob(a).ok());
  ASSERT_TRUE(store->InsertJob(b).ok());
  ASSERT_TRUE(store->MarkFailed(a.id, "Invalid file format").ok());
  ASSERT_TRUE(store->MarkCompleted(b.id, "file_b", "{}").ok());
  EXPECT_EQ(store->MarkProcessing(a.id, 2).code(), Errc::kFailedPrecondition);
  EXPECT_EQ(store->MarkProcessing(b.id, 2).code(), Errc::kFailedPrecondition);
  auto failed = **store->GetJob(a.id);
  EXPECT_EQ(failed.status, JobStatus::kFailed);
  EXPECT_EQ(failed.error, "Invalid file format");
}

TEST_P(MetadataStoreContract, MarkFailedDoesNotUndoCompletion) {
  auto store = Open();
  NewJob j = MakeJob();
  ASSERT_TRUE(store->InsertJob(j).ok());
  ASSERT_TRUE(store->MarkCompleted(j.id, "file_j", "{}").ok());
  EXPECT_EQ(store->MarkFailed(j.id, "late").code(), Errc::kFailedPrecondition);
  EXPECT_EQ((**store->GetJob(j.id)).status, JobStatus::kCompleted);
}

// A run that fails after another run of the same job finished it (their
// leases overlapped) puts nothing back: the job is final in the queue too, so
// a reopened row would stay pending for good.
TEST_P(MetadataStoreContract, MarkPendingDoesNotReopenAFinalRow) {
  auto store = Open();
  NewJob a = MakeJob(), b = MakeJob();
  ASSERT_TRUE(store->InsertJob(a).ok());
  ASSERT_TRUE(store->InsertJob(b).ok());
  ASSERT_TRUE(store->MarkCompleted(a.id, "file_a", R"({"ok":1})").ok());
  ASSERT_TRUE(store->MarkFailed(b.id, "Invalid file format").ok());
  EXPECT_EQ(store->MarkPending(a.id).code(), Errc::kFailedPrecondition);
  EXPECT_EQ(store->MarkPending(b.id).code(), Errc::kFailedPrecondition);
  auto completed = **store->GetJob(a.id);
  EXPECT_EQ(completed.status, JobStatus::kCompleted);
  EXPECT_EQ(completed.result_json, R"({"ok":1})");
  EXPECT_EQ(completed.progress, 100);
  auto failed = **store->GetJob(b.id);
  EXPECT_EQ(failed.status, JobStatus::kFailed);
  EXPECT_EQ(failed.error, "Invalid file format");
  // Neither is offered to the reconciler.
  auto listed = store->ListPending(NowMs() + 1000, 10);
  ASSERT_TRUE(listed.ok());
  EXPECT_TRUE(listed->empty());
  // A pending row stays pending: putting it back twice is no error.
  NewJob c = MakeJob();
  ASSERT_TRUE(store->InsertJob(c).ok());
  EXPECT_TRUE(store->MarkPending(c.id).ok());
}

TEST_P(MetadataStoreContract, UpdatesOfMissingRowAreNotFound) {
  auto store = Open();
  std::string id = NewUuid();
  EXPECT_EQ(store->MarkProcessing(id, 1).code(), Errc::kNotFound);
  EXPECT_EQ(store->SetProgress(id, 5).code(), Errc::kNotFound);
  EXPECT_EQ(store->MarkCompleted(id, "f", "{}").code(), Errc::kNotFound);
  EXPECT_EQ(store->MarkFailed(id, "e").code(), Errc::kNotFound);
  EXPECT_EQ(store->MarkPending(id).code(), Errc::kNotFound);
}

TEST_P(MetadataStoreContract, ClaimJobTakesAPendingOrProcessingRowAndReturnsIt) {
  auto store = Open();
  NewJob j = MakeJob();
  ASSERT_TRUE(store->InsertJob(j).ok());
  ASSERT_TRUE(store->MarkProcessing(j.id, 1).ok());
  ASSERT_TRUE(store->MarkPending(j.id).ok());  // an earlier attempt, put back
  int64_t before = (**store->GetJob(j.id)).updated_at_ms;

  auto claimed = store->ClaimJob(j.id, 2);
  ASSERT_TRUE(claimed.ok()) << claimed.status().ToString();
  ASSERT_TRUE(claimed->has_value());
  const JobRecord& r = **claimed;
  EXPECT_EQ(r.id, j.id);
  EXPECT_EQ(r.user_id, "alice");
  EXPECT_EQ(r.session_id, "s1");
  EXPECT_EQ(r.original_name, "notes.txt");
  EXPECT_EQ(r.message, "please summarise");
  EXPECT_EQ(r.status, JobStatus::kProcessing);
  EXPECT_EQ(r.attempts, 2);
  EXPECT_EQ(r.progress, 0);
  EXPECT_FALSE(r.error.has_value());
  EXPECT_GT(r.updated_at_ms, before);
  // What was returned is what was written.
  auto stored = **store->GetJob(j.id);
  EXPECT_EQ(stored.status, JobStatus::kProcessing);
  EXPECT_EQ(stored.attempts, 2);
  EXPECT_EQ(stored.updated_at_ms, r.updated_at_ms);

  // A processing row (a stalled attempt's) is taken again.
  ASSERT_TRUE(store->SetProgress(j.id, 40).ok());
  auto again = store->ClaimJob(j.id, 3);
  ASSERT_TRUE(again.ok() && again->has_value());
  EXPECT_EQ((*again)->status, JobStatus::kProcessing);
  EXPECT_EQ((*again)->attempts, 3);
  EXPECT_EQ((*again)->progress, 0);
}

TEST_P(MetadataStoreContract, ClaimJobLeavesFinishedRowsAloneAndReturnsThem) {
  auto store = Open();
  NewJob failed = MakeJob(), done = MakeJob();
  ASSERT_TRUE(store->InsertJob(failed).ok());
  ASSERT_TRUE(store->InsertJob(done).ok());
  ASSERT_TRUE(store->MarkFailed(failed.id, "Invalid file format").ok());
  ASSERT_TRUE(store->MarkCompleted(done.id, "file_d", R"({"fileId":"file_d"})").ok());
  auto failed_before = **store->GetJob(failed.id);
  auto done_before = **store->GetJob(done.id);

  auto f = store->ClaimJob(failed.id, 2);
  ASSERT_TRUE(f.ok() && f->has_value());
  EXPECT_EQ((*f)->status, JobStatus::kFailed);
  EXPECT_EQ((*f)->error, "Invalid file format");
  auto d = store->ClaimJob(done.id, 2);
  ASSERT_TRUE(d.ok() && d->has_value());
  EXPECT_EQ((*d)->status, JobStatus::kCompleted);
  EXPECT_EQ((*d)->result_json, R"({"fileId":"file_d"})");
  EXPECT_EQ((*d)->file_id, "file_d");
  // Untouched.
  EXPECT_EQ((**store->GetJob(failed.id)).updated_at_ms, failed_before.updated_at_ms);
  EXPECT_EQ((**store->GetJob(done.id)).updated_at_ms, done_before.updated_at_ms);
  EXPECT_EQ((**store->GetJob(done.id)).attempts, done_before.attempts);
}

TEST_P(MetadataStoreContract, ClaimJobOfMissingRowIsNullopt) {
  auto store = Open();
  auto got = store->ClaimJob(NewUuid(), 1);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_FALSE(got->has_value());
}

TEST_P(MetadataStoreContract, SetProgressIsNoOpUnlessProcessing) {
  auto store = Open();
  NewJob j = MakeJob();
  ASSERT_TRUE(store->InsertJob(j).ok());
  EXPECT_TRUE(store->SetProgress(j.id, 50).ok());
  EXPECT_EQ((**store->GetJob(j.id)).progress, 0);
}

TEST_P(MetadataStoreContract, ListPendingReturnsOldestFirstWithinCutoff) {
  auto store = Open();
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    NewJob j = MakeJob();
    ids.push_back(j.id);
    ASSERT_TRUE(store->InsertJob(j).ok());
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  ASSERT_TRUE(store->MarkProcessing(ids[1], 1).ok());
  auto all = store->ListPending(NowMs() + 1, 10);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 4u);
  EXPECT_EQ((*all)[0].id, ids[0]);
  EXPECT_EQ((*all)[1].id, ids[2]);
  EXPECT_EQ((*all)[3].id, ids[4]);
  auto two = store->ListPending(NowMs() + 1, 2);
  ASSERT_TRUE(two.ok());
  EXPECT_EQ(two->size(), 2u);
  auto none = store->ListPending((*store->GetJob(ids[0]))->created_at_ms, 10);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

TEST_P(MetadataStoreContract, ConcurrentInsertsFromEightThreads) {
  auto store = Open();
  constexpr int kThreads = 8, kPerThread = 200;
  std::atomic<int> failures{0};
  std::vector<std::string> ids(kThreads * kPerThread);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        NewJob j = MakeJob("user" + std::to_string(t));
        ids[t * kPerThread + i] = j.id;
        if (!store->InsertJob(j).ok()) ++failures;
        // Reads interleave with writes on other connections.
        auto r = store->GetJobForUser(j.id, j.user_id);
        if (!r.ok() || !r->has_value()) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  auto pending = store->ListPending(NowMs() + 1, kThreads * kPerThread + 10);
  ASSERT_TRUE(pending.ok());
  EXPECT_EQ(pending->size(), static_cast<size_t>(kThreads * kPerThread));
}


TEST_P(MemoryContract, SearchRanksBestMatchFirst) {
  std::vector<MemoryChunk> chunks = {
      {0, "The invoice lists shipping costs for March."},
      {1, "Kangaroo kangaroo kangaroo: the kangaroo report covers kangaroo habitats."},
      {2, "A single kangaroo appears here among many other unrelated words about weather."},
  };
  ASSERT_TRUE(store_->StoreMemory("alice", "s1", job_, "file_1", chunks).ok());
  auto hits = Search("alice", "s1", "kangaroo");
  ASSERT_EQ(hits.size(), 2u);
  EXPECT_EQ(hits[0].chunk_index, 1);
  EXPECT_EQ(hits[1].chunk_index, 2);
  EXPECT_GT(hits[0].score, hits[1].score);
  EXPECT_EQ(hits[0].file_id, "file_1");
  EXPECT_EQ(hits[0].job_id, job_);
  EXPECT_NE(hits[0].snippet.find("**"), std::string::npos) << hits[0].snippet;
  // Stemming: "invoices" finds "invoice".
  auto stem = Search("alice", "s1", "invoices shipping");
  ASSERT_EQ(stem.size(), 1u);
  EXPECT_EQ(stem[0].chunk_index, 0);
  // Limit.
  EXPECT_EQ(Search("alice", "s1", "kangaroo", 1).size(), 1u);
}

TEST_P(MemoryContract, RelatedFilesShareIndexTermsMostSharedThenNewestFirst) {
  std::string j2 = AddJob("alice", "s1"), j3 = AddJob("alice", "s1"), j4 = AddJob("alice", "s1");
  std::string bob = AddJob("bob", "s1"), other = AddJob("alice", "s2");
  auto store = [&](const std::string& user, const std::string& session, const std::string& job,
                   const std::string& file, const std::string& text,
                   std::vector<std::string> terms) {
    ASSERT_TRUE(store_->StoreFileMemory({user, session, job, file, {{0, text}}, std::move(terms)}).ok());
  };
  store("alice", "s1", job_, "file_budget", "The warehouse budget and the forklift lease.",
        {"warehouse", "budget", "forklift", "lease"});
  store("alice", "s1", j2, "file_old_lease", "An older forklift contract.", {"forklift", "contract"});
  store("alice", "s1", j3, "file_new_lease", "A newer forklift contract.", {"forklift", "contract"});
  store("alice", "s1", j4, "file_current", "Warehouse budget: forklift.", {"warehouse", "budget", "forklift"});
  store("bob", "s1", bob, "file_bob", "Warehouse budget forklift.", {"warehouse", "budget", "forklift"});
  store("alice", "s2", other, "file_other", "Warehouse budget forklift.", {"warehouse", "budget", "forklift"});

  RelatedQuery q{"alice", "s1", "file_current", {"warehouse", "budget", "forklift", "warehouse", ""}};
  auto r = store_->FindRelatedFiles(q);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->size(), 3u);
  EXPECT_EQ((*r)[0].file_id, "file_budget");
  EXPECT_EQ((*r)[0].job_id, job_);
  EXPECT_EQ((*r)[0].terms, (std::vector<std::string>{"warehouse", "budget", "forklift"}));
  EXPECT_NE((*r)[0].snippet.find("**"), std::string::npos) << (*r)[0].snippet;
  // Same number of shared terms: the newest first.
  EXPECT_EQ((*r)[1].file_id, "file_new_lease");
  EXPECT_EQ((*r)[2].file_id, "file_old_lease");
  EXPECT_EQ((*r)[2].terms, (std::vector<std::string>{"forklift"}));
  EXPECT_NE((*r)[2].snippet.find("**forklift**"), std::string::npos) << (*r)[2].snippet;

  // The limit, and the per-term bound: with one file read per term, the
  // forklift arm sees only the newest file holding it (the asking file is
  // excluded before the bound).
  q.limit = 1;
  r = store_->FindRelatedFiles(q);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ((*r)[0].file_id, "file_budget");
  q.limit = 5;
  q.terms = {"forklift"};
  q.per_term_limit = 1;
  r = store_->FindRelatedFiles(q);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ((*r)[0].file_id, "file_new_lease");

  // A retry of a job replaces its terms; no terms, no files.
  store("alice", "s1", j3, "file_new_lease", "Now about gardening.", {"gardening"});
  q.per_term_limit = 200;
  r = store_->FindRelatedFiles(q);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0].file_id, "file_old_lease");
  q.terms = {};
  r = store_->FindRelatedFiles(q);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->empty());
}

TEST_P(MemoryContract, SearchRanksOnlyTheNewestCandidates) {
  // kSearchCandidates + 10 chunks mention "orbit"; the oldest ten mention it
  // most often, so a ranking over every match would put them first.
  std::vector<MemoryChunk> old_chunks, new_chunks;
  for (int i = 0; i < 10; ++i) old_chunks.push_back({i, "orbit orbit orbit orbit orbit old"});
  for (int i = 0; i < kSearchCandidates; ++i) {
    new_chunks.push_back({i, "one orbit among many other words in chunk " + std::to_string(i)});
  }
  ASSERT_TRUE(store_->StoreMemory("alice", "s1", job_, "file_old", old_chunks).ok());
  std::string later = AddJob("alice", "s1");
  ASSERT_TRUE(store_->StoreMemory("alice", "s1", later, "file_new", new_chunks).ok());
  auto hits = Search("alice", "s1", "orbit", 5);
  ASSERT_EQ(hits.size(), 5u);
  for (const auto& h : hits) EXPECT_EQ(h.file_id, "file_new");
  // Remove the newer file: the older chunks are candidates again and rank first.
  ASSERT_TRUE(store_->StoreMemory("alice", "s1", later, "file_new", {{0, "nothing here"}}).ok());
  hits = Search("alice", "s1", "orbit", 5);
  ASSERT_EQ(hits.size(), 5u);
  EXPECT_EQ(hits[0].file_id, "file_old");
}

TEST_P(MemoryContract, StoreMemoryReplacesChunksIdempotently) {
  ASSERT_TRUE(store_->StoreMemory("alice", "s1", job_, "file_1",
                                  {{0, "alpha bravo"}, {1, "charlie delta"}})
                  .ok());
  ASSERT_TRUE(store_->StoreMemory("alice", "s1", job_, "file_1",
                                  {{0, "alpha bravo"}, {1, "charlie delta"}})
                  .ok());
  EXPECT_EQ(Search("alice", "s1", "alpha").size(), 1u);
  // A retry with different text replaces the old chunks in the index too.
  ASSERT_TRUE(store_->StoreMemory("alice", "s1", job_, "file_1", {{0, "echo foxtrot"}}).ok());
  EXPECT_TRUE(Search("alice", "s1", "charlie").empty());
  EXPECT_EQ(Search("alice", "s1", "foxtrot").size(), 1u);
  // A retry under a new file id drops the earlier attempt's chunks.
  ASSERT_TRUE(store_->StoreMemory("alice", "s1", job_, "file_2", {{0, "echo golf"}}).ok());
  auto hits = Search("alice", "s1", "echo");
  ASSERT_EQ(hits.size(), 1u);
  EXPECT_EQ(hits[0].file_id, "file_2");
}

TEST_P(MemoryContract, StoreMemoryForUnknownJobIsNotFound) {
  EXPECT_EQ(store_->StoreMemory("alice", "s1", NewUuid(), "file_9", {{0, "x"}}).code(),
            Errc::kNotFound);
}

TEST_P(MemoryContract, SearchSeesOnlyOwnUserAndSession) {
  std::string bob_job = AddJob("bob", "s1");
  std::string other_session_job = AddJob("alice", "s2");
  ASSERT_TRUE(store_->StoreMemory("alice", "s1", job_, "file_a", {{0, "secret plans alpha"}}).ok());
  ASSERT_TRUE(store_->StoreMemory("bob", "s1", bob_job, "file_b", {{0, "secret plans bob"}}).ok());
  ASSERT_TRUE(store_->StoreMemory("alice", "s2", other_session_job, "file_c",
                                  {{0, "secret plans other session"}})
                  .ok());
  auto a = Search("alice", "s1", "secret plans");
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].file_id, "file_a");
  auto b = Search("bob", "s1", "secret");
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(b[0].file_id, "file_b");
  auto c = Search("alice", "s2", "secret");
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].file_id, "file_c");
  EXPECT_TRUE(Search("mallory", "s1", "secret").empty());
  // Ids that differ only in where the user/session boundary falls.
  EXPECT_TRUE(Search("alices", "1", "secret").empty());
}

TEST_P(MemoryContract, HostileQueriesNeverError) {
  ASSERT_TRUE(store_->StoreMemory("alice", "s1", job_, "file_1",
                                  {{0, "near the OR gate, a star * and quotes \" live; café Ünïcode 日本語"}})
                  .ok());
  const char* queries[] = {
      "\"", "\"\"", "*", "NEAR(", "NEAR(a b", "OR", "AND", "NOT", "-", "a -b", "^start",
      "text:near", "scope : x", "{text scope}: gate", "(", ")", "'", "\\", ":", "+",
      "café", "CAFE", "日本語", "😀", "\xff\xfe", "a\0b", "", "   ", "OR OR OR",
      "gate\" OR \"1\"=\"1", "col:\"x\" NOT y*", "NEAR(gate star, 2)"};
  for (const char* q : queries) Search("alice", "s1", q);
  EXPECT_FALSE(Search("alice", "s1", "NEAR(gate").empty());
  EXPECT_FALSE(Search("alice", "s1", "cafe").empty());  // diacritics folded
  EXPECT_FALSE(Search("alice", "s1", "日本語").empty());
  EXPECT_TRUE(Search("alice", "s1", "OR").size() == 1u);  // a word, not an operator
  std::string long_query(100000, 'x');
  Search("alice", "s1", long_query);
}

TEST_P(MetadataStoreContract, MigrateTwiceKeepsVersionAndRows) {
  std::string url = GetParam()->fresh_url();
  auto v1 = GetParam()->migrate(url);
  ASSERT_TRUE(v1.ok()) << v1.status().ToString();
  EXPECT_GE(*v1, 1);
  auto v2 = GetParam()->migrate(url);
  ASSERT_TRUE(v2.ok()) << v2.status().ToString();
  EXPECT_EQ(*v1, *v2);
  NewJob j = MakeJob();
  {
    auto store = OpenStore(*GetParam(), url, true);
    ASSERT_TRUE(store);
    ASSERT_TRUE(store->InsertJob(j).ok());
  }
  auto store = OpenStore(*GetParam(), url, false);
  ASSERT_TRUE(store);
  auto got = store->GetJob(j.id);
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_TRUE(store->Ping().ok());
}

TEST_P(MetadataStoreContract, OpenWithoutMigrateOnFreshDbIsFailedPrecondition) {
  auto store = GetParam()->open(GetParam()->fresh_url(), false);
  EXPECT_EQ(store.code(), Errc::kFailedPrecondition);
}

TEST_P(MemoryContract, SearchLimitIsClamped) {
  std::vector<MemoryChunk> chunks;
  for (int i = 0; i < 120; ++i) chunks.push_back({i, "zebra number " + std::to_string(i)});
  ASSERT_TRUE(store_->StoreMemory("alice", "s1", job_, "file_1", chunks).ok());
  EXPECT_EQ(Search("alice", "s1", "zebra", 0).size(), 1u);
  EXPECT_EQ(Search("alice", "s1", "zebra", -5).size(), 1u);
  EXPECT_EQ(Search("alice", "s1", "zebra", 1000).size(), 100u);
}

TEST_P(MemoryContract, CompleteJobStoresMemoryAndTheResultTogether) {
  ASSERT_TRUE(store_->ClaimJob(job_, 1).ok());
  ASSERT_TRUE(store_->StoreMemory("alice", "s1", job_, "file_old", {{0, "lima mike"}}).ok());
  JobCompletion c{.memory = {.user_id = "alice",
                             .session_id = "s1",
                             .job_id = job_,
                             .file_id = "file_1",
                             .chunks = {{0, "november oscar"}, {1, "papa quebec"}},
                             .terms = {"oscar", "quebec"}},
                  .result_json = R"({"fileId":"file_1"})"};
  auto done = store_->CompleteJob(c);
  ASSERT_TRUE(done.ok()) << done.status().ToString();
  auto row = **store_->GetJob(job_);
  EXPECT_EQ(row.status, JobStatus::kCompleted);
  EXPECT_EQ(row.file_id, "file_1");
  EXPECT_EQ(row.result_json, R"({"fileId":"file_1"})");
  EXPECT_EQ(row.progress, 100);
  EXPECT_EQ(Search("alice", "s1", "oscar").size(), 1u);
  EXPECT_EQ(Search("alice", "s1", "quebec").size(), 1u);
  EXPECT_TRUE(Search("alice", "s1", "lima").empty());  // the earlier attempt's chunks
  // The index terms went in with the chunks.
  RelatedQuery q{.user_id = "alice", .session_id = "s1", .exclude_file_id = "file_2",
                 .terms = {"quebec"}, .per_term_limit = 10, .limit = 5};
  auto related = store_->FindRelatedFiles(q);
  ASSERT_TRUE(related.ok()) << related.status().ToString();
  ASSERT_EQ(related->size(), 1u);
  EXPECT_EQ((*related)[0].file_id, "file_1");
  // Idempotent: a job run twice leaves the same rows behind.
  ASSERT_TRUE(store_->CompleteJob(c).ok());
  EXPECT_EQ(Search("alice", "s1", "oscar").size(), 1u);
}

TEST_P(MemoryContract, CompleteJobThatFailsLeavesNeitherMemoryNorResult) {
  ASSERT_TRUE(store_->ClaimJob(job_, 1).ok());
  ASSERT_TRUE(store_->StoreMemory("alice", "s1", job_, "file_1", {{0, "romeo sierra"}}).ok());
  JobCompletion repeated{.memory = {.user_id = "alice",
                                    .session_id = "s1",
                                    .job_id = job_,
                                    .file_id = "file_1",
                                    .chunks = {{0, "tango"}, {0, "uniform"}},
                                    .terms = {}},
                         .result_json = "{}"};
  EXPECT_EQ(store_->CompleteJob(repeated).code(), Errc::kInvalidArgument);
  EXPECT_EQ((**store_->GetJob(job_)).status, JobStatus::kProcessing);
  EXPECT_EQ(Search("alice", "s1", "romeo").size(), 1u);
  EXPECT_TRUE(Search("alice", "s1", "tango").empty());
  JobCompletion missing{.memory = {.user_id = "alice",
                                   .session_id = "s1",
                                   .job_id = NewUuid(),
                                   .file_id = "file_9",
                                   .chunks = {},
                                   .terms = {}},
                        .result_json = "{}"};
  EXPECT_EQ(store_->CompleteJob(missing).code(), Errc::kNotFound);
}

TEST_P(MemoryContract, RepeatedChunkIndexIsInvalidArgumentAndKeepsOldChunks) {
  ASSERT_TRUE(store_->StoreMemory("alice", "s1", job_, "file_1", {{0, "hotel india"}}).ok());
  EXPECT_EQ(store_->StoreMemory("alice", "s1", job_, "file_1", {{0, "juliet"}, {0, "kilo"}}).code(),
            Errc::kInvalidArgument);
  EXPECT_EQ(Search("alice", "s1", "hotel").size(), 1u);
  EXPECT_TRUE(Search("alice", "s1", "juliet").empty());
}

}  // namespace
}  // namespace conveyor::storage
