#include "fakes.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "core/ids.h"

namespace conveyor::testing {
namespace fs = std::filesystem;

// ---- FakeMetadataStore ----

Result<void> FakeMetadataStore::InsertJob(const storage::NewJob& job) {
  return InsertJobs({job});
}

Result<void> FakeMetadataStore::InsertJobs(const std::vector<storage::NewJob>& jobs) {
  if (Errc e = fail_insert.load(); e != Errc::kOk) return Status(e, "injected insert failure");
  std::lock_guard lock(mu_);
  // All or none: every id is checked before any row goes in.
  for (size_t i = 0; i < jobs.size(); ++i) {
    const storage::NewJob& job = jobs[i];
    if (rows_.count(job.id)) return AlreadyExists("job " + job.id);
    for (size_t k = 0; k < i; ++k) {
      if (jobs[k].id == job.id) return AlreadyExists("job " + job.id);
    }
  }
  for (const storage::NewJob& job : jobs) {
    storage::JobRecord r;
    r.id = job.id;
    r.user_id = job.user_id;
    r.session_id = job.session_id;
    r.status = storage::JobStatus::kPending;
    r.created_at_ms = r.updated_at_ms = NowMs();
    r.original_name = job.original_name;
    r.mime_type = job.mime_type;
    r.size_bytes = job.size_bytes;
    r.sha256_hex = job.sha256_hex;
    r.storage_path = job.storage_path;
    r.message = job.message;
    rows_[job.id] = std::move(r);
  }
  return {};
}

Result<std::optional<storage::JobRecord>> FakeMetadataStore::GetJob(const std::string& id) {
  std::lock_guard lock(mu_);
  auto it = rows_.find(id);
  if (it == rows_.end()) return std::optional<storage::JobRecord>();
  return std::optional<storage::JobRecord>(it->second);
}

Result<std::optional<storage::JobRecord>> FakeMetadataStore::GetJobForUser(
    const std::string& id, const std::string& user_id) {
  std::lock_guard lock(mu_);
  auto it = rows_.find(id);
  if (it == rows_.end() || it->second.user_id != user_id) {
    return std::optional<storage::JobRecord>();
  }
  return std::optional<storage::JobRecord>(it->second);
}

Result<void> FakeMetadataStore::MarkProcessing(const std::string& id, int attempts) {
  std::lock_guard lock(mu_);
  auto it = rows_.find(id);
  if (it == rows_.end()) return NotFound(id);
  auto& r = it->second;
  if (r.status == storage::JobStatus::kCompleted || r.status == storage::JobStatus::kFailed) {
    return FailedPrecondition("job already finished");
  }
  r.status = storage::JobStatus::kProcessing;
  r.progress = 0;
  r.attempts = attempts;
  r.updated_at_ms = NowMs();
  return {};
}

Result<std::optional<storage::JobRecord>> FakeMetadataStore::ClaimJob(const std::string& id,
                                                                      int attempts) {
  if (Errc e = fail_claim.load(); e != Errc::kOk) return Status(e, "injected claim failure");
  return MetadataStore::ClaimJob(id, attempts);
}

Result<void> FakeMetadataStore::CompleteJob(const storage::JobCompletion& c) {
  if (Errc e = fail_complete.load(); e != Errc::kOk) return Status(e, "injected completion failure");
  return MetadataStore::CompleteJob(c);
}

Result<void> FakeMetadataStore::SetProgress(const std::string& id, int percent) {
  std::lock_guard lock(mu_);
  auto it = rows_.find(id);
  if (it == rows_.end()) return NotFound(id);
  if (it->second.status == storage::JobStatus::kProcessing) it->second.progress = percent;
  return {};
}

Result<void> FakeMetadataStore::MarkCompleted(const std::string& id, const std::string& file_id,
                                              const std::string& result_json) {
  std::lock_guard lock(mu_);
  auto it = rows_.find(id);
  if (it == rows_.end()) return NotFound(id);
  it->second.status = storage::JobStatus::kCompleted;
  it->second.file_id = file_id;
  it->second.result_json = result_json;
  it->second.progress = 100;
  it->second.updated_at_ms = NowMs();
  return {};
}

Result<void> FakeMetadataStore::MarkFailed(const std::string& id, const std::string& error) {
  std::lock_guard lock(mu_);
  auto it = rows_.find(id);
  if (it == rows_.end()) return NotFound(id);
  if (it->second.status == storage::JobStatus::kCompleted) return FailedPrecondition(id);
  it->second.status = storage::JobStatus::kFailed;
  it->second.error = error;
  it->second.updated_at_ms = NowMs();
  return {};
}

Result<void> FakeMetadataStore::MarkPending(const std::string& id) {
  std::lock_guard lock(mu_);
  auto it = rows_.find(id);
  if (it == rows_.end()) return NotFound(id);
  if (it->second.status != storage::JobStatus::kPending &&
      it->second.status != storage::JobStatus::kProcessing) {
    return FailedPrecondition(id);
  }
  it->second.status = storage::JobStatus::kPending;
  it->second.updated_at_ms = NowMs();
  return {};
}

Result<std::vector<storage::JobRecord>> FakeMetadataStore::ListPending(int64_t older_than_ms,
                                                                       int limit) {
  std::lock_guard lock(mu_);
  std::vector<storage::JobRecord> out;
  for (const auto& [id, r] : rows_) {
    if (r.status == storage::JobStatus::kPending && r.created_at_ms < older_than_ms) {
      out.push_back(r);
    }
  }
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return a.created_at_ms < b.created_at_ms; });
  if (static_cast<int>(out.size()) > limit) out.resize(limit);
  return out;
}

Result<void> FakeMetadataStore::StoreFileMemory(const storage::FileMemory& m) {
  std::lock_guard lock(mu_);
  std::erase_if(chunks_, [&](const Chunk& c) { return c.file_id == m.file_id || c.job_id == m.job_id; });
  for (const auto& c : m.chunks) chunks_.push_back({m.user_id, m.session_id, m.job_id, m.file_id, c});
  std::erase_if(files_, [&](const storage::FileMemory& f) {
    return f.file_id == m.file_id || f.job_id == m.job_id;
  });
  storage::FileMemory entry = m;
  entry.chunks.clear();
  files_.push_back(std::move(entry));
  return {};
}

// The contract without the bounds: every file of the scope is looked at.
Result<std::vector<storage::RelatedFile>> FakeMetadataStore::FindRelatedFiles(
    const storage::RelatedQuery& q) {
  std::lock_guard lock(mu_);
  struct Found {
    storage::RelatedFile file;
    size_t order;  // position in files_: newer is larger
  };
  std::vector<Found> found;
  for (size_t i = 0; i < files_.size(); ++i) {
    const auto& f = files_[i];
    if (f.user_id != q.user_id || f.session_id != q.session_id || f.file_id == q.exclude_file_id) {
      continue;
    }
    storage::RelatedFile r{f.file_id, f.job_id, {}, {}};
    for (const auto& t : q.terms) {
      if (std::find(f.terms.begin(), f.terms.end(), t) != f.terms.end()) r.terms.push_back(t);
    }
    if (r.terms.empty()) continue;
    for (const auto& c : chunks_) {
      if (c.file_id == f.file_id) {
        r.snippet = c.chunk.text.substr(0, 80);
        break;
      }
    }
    found.push_back({std::move(r), i});
  }
  std::sort(found.begin(), found.end(), [](const Found& a, const Found& b) {
    if (a.file.terms.size() != b.file.terms.size()) return a.file.terms.size() > b.file.terms.size();
    return a.order > b.order;
  });
  std::vector<storage::RelatedFile> out;
  for (auto& f : found) {
    if (static_cast<int>(out.size()) >= q.limit) break;
    out.push_back(std::move(f.file));
  }
  return out;
}

Result<std::vector<storage::MemoryHit>> FakeMetadataStore::SearchMemory(
    const std::string& user_id, const std::string& session_id, const std::string& query,
    int limit) {
  std::lock_guard lock(mu_);
  std::vector<storage::MemoryHit> out;
  for (const auto& c : chunks_) {
    if (c.user_id != user_id || c.session_id != session_id) continue;
    auto pos = c.chunk.text.find(query);
    if (pos == std::string::npos) continue;
    storage::MemoryHit h;
    h.file_id = c.file_id;
    h.job_id = c.job_id;
    h.chunk_index = c.chunk.index;
    h.snippet = c.chunk.text.substr(pos > 20 ? pos - 20 : 0, 80);
    h.score = 1.0;
    out.push_back(std::move(h));
    if (static_cast<int>(out.size()) >= limit) break;
  }
  return out;
}

Result<void> FakeMetadataStore::Ping() {
  if (Errc e = fail_ping.load(); e != Errc::kOk) return Status(e, "injected ping failure");
  return {};
}

size_t FakeMetadataStore::size() const {
  std::lock_guard lock(mu_);
  return rows_.size();
}

std::vector<storage::JobRecord> FakeMetadataStore::All() const {
  std::lock_guard lock(mu_);
  std::vector<storage::JobRecord> out;
  for (const auto& [id, r] : rows_) out.push_back(r);
  return out;
}

// ---- FakeQueue ----

Result<bool> FakeQueue::Add(const std::string& id, const std::string& name,
                            const std::string& data_json, const queue::JobOptions&) {
  ++add_calls;
  if (Errc e = fail_add.load(); e != Errc::kOk) return Status(e, "injected add failure");
  std::lock_guard lock(mu_);
  return jobs_.emplace(id, Added{name, data_json}).second;
}

Result<bool> FakeQueue::Exists(const std::string& id) {
  std::lock_guard lock(mu_);
  return jobs_.count(id) > 0;
}

Result<queue::JobCounts> FakeQueue::Counts() {
  std::lock_guard lock(mu_);
  queue::JobCounts c;
  c.wait = static_cast<int64_t>(jobs_.size());
  return c;
}

Result<void> FakeQueue::Ping() {
  if (Errc e = fail_ping.load(); e != Errc::kOk) return Status(e, "injected ping failure");
  return {};
}

size_t FakeQueue::size() const {
  std::lock_guard lock(mu_);
  return jobs_.size();
}

std::optional<FakeQueue::Added> FakeQueue::Get(const std::string& id) const {
  std::lock_guard lock(mu_);
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return std::nullopt;
  return it->second;
}

// ---- FakeConsumer ----

void FakeConsumer::Push(queue::ActiveJob job) {
  std::lock_guard lock(mu_);
  std::string id = job.id;
  Job j;
  j.job = std::move(job);
  jobs_[id] = std::move(j);
  wait_.push_back(id);
}

void FakeConsumer::Promote(const std::string& id) {
  std::lock_guard lock(mu_);
  auto it = jobs_.find(id);
  if (it == jobs_.end() || it->second.state != State::kDelayed) return;
  it->second.state = State::kWait;
  wait_.push_back(id);
}

std::optional<FakeConsumer::Job> FakeConsumer::Get(const std::string& id) const {
  std::lock_guard lock(mu_);
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return std::nullopt;
  return it->second;
}

Result<bool> FakeConsumer::WaitForWork(int64_t) {
  counts.Add("WaitForWork");
  std::lock_guard lock(mu_);
  return !wait_.empty();
}

std::optional<queue::ActiveJob> FakeConsumer::FetchLocked(const std::string& token) {
  if (wait_.empty()) return std::nullopt;
  Job& j = jobs_[wait_.front()];
  wait_.erase(wait_.begin());
  j.state = State::kActive;
  j.job.token = token;
  j.job.attempts_started++;
  return j.job;
}

Result<std::optional<queue::ActiveJob>> FakeConsumer::Fetch(const std::string& token, int64_t) {
  counts.Add("Fetch");
  std::lock_guard lock(mu_);
  return FetchLocked(token);
}

Result<std::vector<queue::ActiveJob*>> FakeConsumer::ExtendLocks(
    const std::vector<queue::ActiveJob*>&, int64_t) {
  counts.Add("ExtendLocks");
  return std::vector<queue::ActiveJob*>{};
}

Result<FakeConsumer::Job*> FakeConsumer::HeldLocked(const queue::ActiveJob& job) {
  if (Errc e = fail_finish.load(); e != Errc::kOk) return Status(e, "injected finish failure");
  auto it = jobs_.find(job.id);
  if (it == jobs_.end()) return NotFound("no job " + job.id);
  if (it->second.state != State::kActive || it->second.job.token != job.token) {
    return FailedPrecondition("job " + job.id + " is not held with this token");
  }
  return &it->second;
}

Result<void> FakeConsumer::Complete(const queue::ActiveJob& job, const std::string& return_json) {
  counts.Add("Complete");
  std::lock_guard lock(mu_);
  auto held = HeldLocked(job);
  if (!held) return held.status();
  (*held)->state = State::kCompleted;
  (*held)->return_json = return_json;
  (*held)->job.attempts_made++;
  return {};
}

queue::Consumer::CompleteAndFetchResult FakeConsumer::CompleteAndFetch(
    const queue::ActiveJob& job, const std::string& return_json, const std::string& next_token,
    int64_t) {
  counts.Add("CompleteAndFetch");
  std::lock_guard lock(mu_);
  Result<void> completed;
  if (auto held = HeldLocked(job); !held) {
    completed = held.status();
  } else {
    (*held)->state = State::kCompleted;
    (*held)->return_json = return_json;
    (*held)->job.attempts_made++;
  }
  return {std::move(completed), FetchLocked(next_token)};
}

Result<void> FakeConsumer::Fail(const queue::ActiveJob& job, const std::string& reason,
                                const std::string& stack, bool retry) {
  counts.Add("Fail");
  std::lock_guard lock(mu_);
  auto held = HeldLocked(job);
  if (!held) return held.status();
  Job& j = **held;
  const bool will_retry = retry && !j.job.deferred_failure &&
                          static_cast<int64_t>(j.job.attempts_made) + 1 < j.job.options.attempts;
  j.failed_reason = reason;
  if (!stack.empty()) j.stacktrace.push_back(stack);
  j.job.attempts_made++;
  j.state = will_retry ? State::kDelayed : State::kFailed;
  j.dead_lettered = !will_retry;
  return {};
}

Result<void> FakeConsumer::UpdateProgress(const std::string& id, const std::string& progress_json) {
  counts.Add("UpdateProgress");
  std::lock_guard lock(mu_);
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return NotFound("no job " + id);
  it->second.progress.push_back(progress_json);
  return {};
}

Result<void> FakeConsumer::AddLog(const std::string& id, const std::string& line) {
  counts.Add("AddLog");
  std::lock_guard lock(mu_);
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return NotFound("no job " + id);
  it->second.logs.push_back(line);
  return {};
}

Result<void> FakeConsumer::ReportProgress(const std::string& id, const std::string& progress_json,
                                          const std::string& log_line) {
  counts.Add("ReportProgress");
  std::lock_guard lock(mu_);
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return NotFound("no job " + id);
  it->second.progress.push_back(progress_json);
  it->second.logs.push_back(log_line);
  return {};
}

Result<std::vector<std::string>> FakeConsumer::RecoverStalled(int64_t) {
  counts.Add("RecoverStalled");
  return std::vector<std::string>{};
}

Result<void> FakeConsumer::Release(const queue::ActiveJob& job) {
  counts.Add("Release");
  std::lock_guard lock(mu_);
  auto held = HeldLocked(job);
  if (!held) return held.status();
  (*held)->state = State::kWait;
  wait_.insert(wait_.begin(), job.id);
  return {};
}

// ---- DirBlobStore ----

namespace {

class DirBlobWriter : public storage::BlobWriter {
 public:
  DirBlobWriter(int fd, std::string temp, std::string final_path)
      : fd_(fd), temp_(std::move(temp)), final_(std::move(final_path)) {}
  ~DirBlobWriter() override { Abort(); }

  Result<void> Append(std::string_view bytes) override {
    if (fd_ < 0) return Internal("writer closed");
    while (!bytes.empty()) {
      ssize_t n = ::write(fd_, bytes.data(), bytes.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        return Unavailable("write failed");
      }
      bytes.remove_prefix(static_cast<size_t>(n));
      size_ += n;
    }
    return {};
  }
  int64_t size() const override { return size_; }
  Result<std::string> Commit(bool fsync) override {
    if (fd_ < 0) return Internal("writer closed");
    if (fsync && ::fsync(fd_) != 0) return Unavailable("fsync failed");
    ::close(fd_);
    fd_ = -1;
    if (::rename(temp_.c_str(), final_.c_str()) != 0) {
      ::unlink(temp_.c_str());
      return Unavailable("rename failed");
    }
    committed_ = true;
    return final_;
  }
  void Abort() override {
    if (fd_ >= 0) {
      ::close(fd_);
      fd_ = -1;
    }
    if (!committed_ && !temp_.empty()) {
      ::unlink(temp_.c_str());
      temp_.clear();
    }
  }

 private:
  int fd_;
  std::string temp_, final_;
  int64_t size_ = 0;
  bool committed_ = false;
};

}  // namespace

DirBlobStore::DirBlobStore(std::string dir) : dir_(std::move(dir)) {
  fs::create_directories(dir_ + "/tmp");
}

Result<std::unique_ptr<storage::BlobWriter>> DirBlobStore::Create(const std::string& id) {
  if (!IsUuid(id)) return InvalidArgument("blob id is not a UUID");
  std::string temp = dir_ + "/tmp/" + id + ".part";
  int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return Unavailable("cannot create " + temp);
  return std::unique_ptr<storage::BlobWriter>(new DirBlobWriter(fd, temp, Location(id)));
}

std::string DirBlobStore::Location(const std::string& id) const { return dir_ + "/" + id; }

Result<void> DirBlobStore::Remove(const std::string& id) {
  if (!IsUuid(id)) return InvalidArgument("blob id is not a UUID");
  ::unlink(Location(id).c_str());
  return {};
}

Result<storage::OpenedBlob> DirBlobStore::OpenBlob(const std::string& id) {
  if (!IsUuid(id)) return InvalidArgument("blob id is not a UUID");
  int fd = ::open(Location(id).c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return NotFound("no blob " + id);
  storage::OpenedBlob out;
  out.fd = UniqueFd(fd);
  out.path = Location(id);
  struct stat st {};
  if (::fstat(fd, &st) == 0) out.size_bytes = st.st_size;
  return out;
}

int DirBlobStore::RemoveStaleTemps(int64_t) {
  int n = 0;
  for (const auto& e : fs::directory_iterator(dir_ + "/tmp")) {
    std::error_code ec;
    if (fs::remove(e.path(), ec)) ++n;
  }
  return n;
}

std::vector<std::string> DirBlobStore::ListFiles(const std::string& root) {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, ec);
       it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) break;
    if (it->is_regular_file()) out.push_back(it->path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace conveyor::testing
