// TusStore: partial tus uploads as <id>.bin + <id>.info in one private
// directory, every record also in memory. See tus_store.h for the layout and
// the order that keeps a recorded offset honest (data fsync, then record).
#include "uploads/tus_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <future>
#include <nlohmann/json.hpp>
#include <vector>

#include "core/files.h"
#include "core/ids.h"
#include "storage/blob_store.h"
#include "uploads/group_commit.h"
#include "uploads/uploads.h"

namespace conveyor::uploads {
namespace {

using nlohmann::json;

constexpr std::string_view kDataSuffix = ".bin";
constexpr std::string_view kInfoSuffix = ".info";
constexpr std::string_view kTempSuffix = ".info.tmp";
// Completion reads the data file into the blob in pieces of this size.
constexpr size_t kCopyBytes = 1 << 20;

Status Errno(std::string_view what, const std::string& path, int err) {
  return Unavailable(std::string(what) + " " + path + ": " + std::strerror(err));
}

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

Status WriteAllAt(int fd, std::string_view bytes, int64_t at, const std::string& path) {
  while (!bytes.empty()) {
    ssize_t n = ::pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(at));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Errno("write", path, errno);
    }
    bytes.remove_prefix(static_cast<size_t>(n));
    at += n;
  }
  return OkStatus();
}

std::string InfoJson(const TusUpload& u) {
  json j = {{"id", u.id},
            {"user", u.user_id},
            {"length", u.length},
            {"offset", u.offset},
            {"metadata",
             {{"session_id", u.metadata.session_id},
              {"filename", u.metadata.filename},
              {"filetype", u.metadata.filetype},
              {"message", u.metadata.message}}},
            {"created", u.created_ms},
            {"expires", u.expires_ms},
            {"jobId", u.job_id}};
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

Result<TusUpload> ParseInfo(std::string_view text) {
  json j = json::parse(text, nullptr, false);
  if (!j.is_object()) return InvalidArgument("not a JSON object");
  try {
    TusUpload u;
    u.id = j.at("id").get<std::string>();
    u.user_id = j.at("user").get<std::string>();
    u.length = j.at("length").get<int64_t>();
    u.offset = j.at("offset").get<int64_t>();
    const json& m = j.at("metadata");
    u.metadata.session_id = m.value("session_id", "");
    u.metadata.filename = m.value("filename", "");
    u.metadata.filetype = m.value("filetype", "");
    u.metadata.message = m.value("message", "");
    u.created_ms = j.at("created").get<int64_t>();
    u.expires_ms = j.at("expires").get<int64_t>();
    u.job_id = j.value("jobId", "");
    if (!IsUuid(u.id) || u.length <= 0 || u.offset < 0 || u.offset > u.length) {
      return InvalidArgument("fields out of range");
    }
    return u;
  } catch (const json::exception& e) {
    return InvalidArgument(e.what());
  }
}

Result<std::string> ReadFile(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd.valid()) return Errno("open", path, errno);
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Errno("read", path, errno);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

}  // namespace

TusStore::TusStore(TusStoreOptions options, const Clock& clock)
    : options_(std::move(options)), clock_(clock) {}

TusStore::~TusStore() = default;

Result<std::unique_ptr<TusStore>> TusStore::Open(TusStoreOptions options, const Clock& clock) {
  if (Status s = CreatePrivateDirs(options.dir); !s.ok()) return s;
  std::unique_ptr<TusStore> store(new TusStore(std::move(options), clock));
  store->dir_fd_.reset(::open(store->options_.dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!store->dir_fd_.valid()) return Errno("open", store->options_.dir, errno);
  if (Status s = store->Load(); !s.ok()) return s;
  return store;
}

std::string TusStore::DataPath(const std::string& id) const {
  return options_.dir + "/" + id + std::string(kDataSuffix);
}
std::string TusStore::InfoPath(const std::string& id) const {
  return options_.dir + "/" + id + std::string(kInfoSuffix);
}

size_t TusStore::size() const {
  std::lock_guard lock(mu_);
  return uploads_.size();
}

Status TusStore::Load() {
  DIR* d = ::fdopendir(::dup(dir_fd_.get()));
  if (d == nullptr) return Errno("opendir", options_.dir, errno);
  std::vector<std::string> infos, datas, temps;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (EndsWith(name, kTempSuffix)) {
      temps.push_back(name);
    } else if (EndsWith(name, kInfoSuffix) && IsUuid(name.substr(0, name.size() - kInfoSuffix.size()))) {
      infos.push_back(name.substr(0, name.size() - kInfoSuffix.size()));
    } else if (EndsWith(name, kDataSuffix) && IsUuid(name.substr(0, name.size() - kDataSuffix.size()))) {
      datas.push_back(name.substr(0, name.size() - kDataSuffix.size()));
    }
  }
  ::closedir(d);
  // A record write cut off by a crash: the old record (if any) stands.
  for (const std::string& t : temps) ::unlinkat(dir_fd_.get(), t.c_str(), 0);
  for (const std::string& id : infos) {
    auto text = ReadFile(InfoPath(id));
    Result<TusUpload> u = text ? ParseInfo(*text) : Result<TusUpload>(text.status());
    if (!u || u->id != id) {
      spdlog::warn("tus: skipping the record of upload {}: {}", id,
                   u ? std::string("id mismatch") : u.status().ToString());
      continue;
    }
    if (u->job_id.empty()) {
      // The file holds at least the recorded offset (data fsync before the
      // record); bytes past it were never recorded and are dropped.
      const std::string data = DataPath(id);
      struct stat st {};
      if (::stat(data.c_str(), &st) != 0) {
        UniqueFd created(::open(data.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
        if (!created.valid()) return Errno("create", data, errno);
        st.st_size = 0;
      }
      if (st.st_size < u->offset) {
        spdlog::warn("tus: upload {} holds {} bytes, its record says {}; resuming from the file",
                     id, static_cast<int64_t>(st.st_size), u->offset);
        u->offset = st.st_size;
      }
      if (st.st_size != u->offset && ::truncate(data.c_str(), u->offset) != 0) {
        return Errno("truncate", data, errno);
      }
    }
    Entry e;
    e.upload = std::move(*u);
    uploads_.emplace(id, std::move(e));
  }
  // Data without a record: a creation cut off before its record.
  for (const std::string& id : datas) {
    if (uploads_.count(id) == 0) ::unlink(DataPath(id).c_str());
  }
  if (!uploads_.empty()) spdlog::info("tus: {} uploads in {}", uploads_.size(), options_.dir);
  return OkStatus();
}

Status TusStore::SyncDir() {
  if (!options_.fsync) return OkStatus();
  if (::fsync(dir_fd_.get()) != 0) return Errno("fsync", options_.dir, errno);
  return OkStatus();
}

Status TusStore::WriteInfo(const TusUpload& u) {
  const std::string path = InfoPath(u.id);
  const std::string tmp = options_.dir + "/" + u.id + std::string(kTempSuffix);
  const std::string text = InfoJson(u);
  {
    UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!fd.valid()) return Errno("create", tmp, errno);
    Status s = WriteAllAt(fd.get(), text, 0, tmp);
    if (s.ok() && options_.fsync && ::fsync(fd.get()) != 0) s = Errno("fsync", tmp, errno);
    if (!s.ok()) {
      ::unlink(tmp.c_str());
      return s;
    }
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    Status s = Errno("rename", tmp, errno);
    ::unlink(tmp.c_str());
    return s;
  }
  return SyncDir();
}

bool TusStore::Expired(const Entry& e) const { return clock_.EpochMs() >= e.upload.expires_ms; }

Result<TusUpload> TusStore::Create(const std::string& id, const std::string& user,
                                   int64_t length, TusMetadata metadata) {
  if (length <= 0) return InvalidArgument("an upload needs a length above 0");
  if (!IsUuid(id)) return InvalidArgument("an upload id is a UUID");
  TusUpload u;
  u.id = id;
  u.user_id = user;
  u.length = length;
  u.metadata = std::move(metadata);
  u.created_ms = clock_.EpochMs();
  u.expires_ms = u.created_ms + options_.expiration_ms;
  const std::string data = DataPath(u.id);
  {
    UniqueFd fd(::open(data.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (!fd.valid()) return Errno("create", data, errno);
  }
  if (Status s = WriteInfo(u); !s.ok()) {
    ::unlink(data.c_str());
    return s;
  }
  std::lock_guard lock(mu_);
  Entry e;
  e.upload = u;
  uploads_.emplace(u.id, std::move(e));
  return u;
}

std::optional<TusUpload> TusStore::Find(const std::string& id, const std::string& user) const {
  std::lock_guard lock(mu_);
  auto it = uploads_.find(id);
  if (it == uploads_.end() || it->second.upload.user_id != user || Expired(it->second)) {
    return std::nullopt;
  }
  return it->second.upload;
}

void TusStore::Unlock(const std::string& id) {
  std::lock_guard lock(mu_);
  if (auto it = uploads_.find(id); it != uploads_.end()) it->second.locked = false;
}

Result<TusUpload> TusStore::SettleLocked(const std::string& id) {
  TusUpload u;
  int64_t pending = 0;
  {
    std::lock_guard lock(mu_);
    auto it = uploads_.find(id);
    if (it == uploads_.end()) return NotFound("upload not found");
    u = it->second.upload;
    pending = it->second.pending;
  }
  if (pending == 0 || !u.job_id.empty()) return u;
  const std::string data = DataPath(id);
  UniqueFd fd(::open(data.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd.valid()) return Errno("open", data, errno);
  if (::ftruncate(fd.get(), u.offset) != 0) return Errno("truncate", data, errno);
  if (options_.fsync && ::fdatasync(fd.get()) != 0) return Errno("fsync", data, errno);
  if (Status s = WriteInfo(u); !s.ok()) return s;
  std::lock_guard lock(mu_);
  if (auto it = uploads_.find(id); it != uploads_.end()) it->second.pending -= pending;
  return u;
}

Result<TusUpload> TusStore::Settle(const std::string& id, const std::string& user) {
  {
    std::lock_guard lock(mu_);
    auto it = uploads_.find(id);
    if (it == uploads_.end() || it->second.upload.user_id != user || Expired(it->second)) {
      return NotFound("upload not found");
    }
    if (it->second.locked || it->second.pending == 0) return it->second.upload;
    it->second.locked = true;
  }
  auto r = SettleLocked(id);
  Unlock(id);
  return r;
}

Result<std::unique_ptr<TusStore::Patch>> TusStore::BeginPatch(const std::string& id,
                                                             const std::string& user,
                                                             int64_t offset) {
  std::lock_guard lock(mu_);
  auto it = uploads_.find(id);
  if (it == uploads_.end() || it->second.upload.user_id != user || Expired(it->second)) {
    return NotFound("upload not found");
  }
  Entry& e = it->second;
  if (e.locked) return Status(Errc::kAborted, "another request is writing this upload");
  if (offset != e.upload.offset) {
    return FailedPrecondition("Upload-Offset " + std::to_string(offset) +
                              " is not the upload's offset " + std::to_string(e.upload.offset));
  }
  e.locked = true;
  return std::unique_ptr<Patch>(new Patch(this, e.upload));
}

Status TusStore::Patch::Open() {
  const std::string data = store_->DataPath(upload_.id);
  fd_.reset(::open(data.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd_.valid()) return Errno("open", data, errno);
  // Whatever lies past the offset (a refused chunk, a failed write) goes.
  if (::ftruncate(fd_.get(), upload_.offset) != 0) return Errno("truncate", data, errno);
  return OkStatus();
}

Status TusStore::Patch::Write(std::string_view bytes) {
  if (ended_ || failed_) return Internal("write after the PATCH ended");
  if (static_cast<int64_t>(bytes.size()) > upload_.length - upload_.offset - written_) {
    return InvalidArgument("the body goes past Upload-Length");
  }
  if (!fd_.valid()) {
    if (Status s = Open(); !s.ok()) {
      failed_ = true;
      return s;
    }
  }
  Status s = WriteAllAt(fd_.get(), bytes, upload_.offset + written_, store_->DataPath(upload_.id));
  if (!s.ok()) {
    failed_ = true;
    return s;
  }
  written_ += static_cast<int64_t>(bytes.size());
  return OkStatus();
}

Result<TusUpload> TusStore::Patch::Commit() {
  if (ended_ || failed_) return Internal("commit after the PATCH ended");
  if (!fd_.valid()) {
    if (Status s = Open(); !s.ok()) return s;
  }
  // The bytes first, then the record that counts them.
  if (store_->options_.fsync && ::fdatasync(fd_.get()) != 0) {
    return Errno("fsync", store_->DataPath(upload_.id), errno);
  }
  TusUpload u = upload_;
  u.offset += written_;
  u.expires_ms = store_->clock_.EpochMs() + store_->options_.expiration_ms;
  if (Status s = store_->WriteInfo(u); !s.ok()) return s;  // the bytes stay pending
  ended_ = true;
  std::lock_guard lock(store_->mu_);
  if (auto it = store_->uploads_.find(u.id); it != store_->uploads_.end()) {
    it->second.upload = u;
    it->second.pending = 0;
  }
  upload_ = u;
  written_ = 0;
  return u;
}

void TusStore::Patch::Discard() {
  ended_ = true;
  written_ = 0;
}

TusStore::Patch::~Patch() {
  std::lock_guard lock(store_->mu_);
  auto it = store_->uploads_.find(upload_.id);
  if (it == store_->uploads_.end()) return;
  if (!ended_ && !failed_ && written_ > 0) {
    // Cut off midway: what was written stays, counted now and made durable
    // by the next Settle or PATCH (no I/O on this thread).
    it->second.upload.offset += written_;
    it->second.pending += written_;
  }
  it->second.locked = false;
}

Result<TusUpload> TusStore::SetJobId(const std::string& id, const std::string& job_id) {
  TusUpload u;
  {
    std::lock_guard lock(mu_);
    auto it = uploads_.find(id);
    if (it == uploads_.end()) return NotFound("upload not found");
    u = it->second.upload;
  }
  if (!u.complete()) return FailedPrecondition("the upload is not complete");
  u.job_id = job_id;
  u.expires_ms = clock_.EpochMs() + options_.expiration_ms;
  if (Status s = WriteInfo(u); !s.ok()) return s;
  {
    std::lock_guard lock(mu_);
    if (auto it = uploads_.find(id); it != uploads_.end()) {
      it->second.upload = u;
      it->second.pending = 0;
    }
  }
  ::unlink(DataPath(id).c_str());  // the blob store has the bytes now
  return u;
}

Result<TusUpload> TusStore::Remove(const std::string& id, const std::string& user) {
  TusUpload u;
  {
    std::lock_guard lock(mu_);
    auto it = uploads_.find(id);
    if (it == uploads_.end() || it->second.upload.user_id != user || Expired(it->second)) {
      return NotFound("upload not found");
    }
    if (it->second.locked) return Status(Errc::kAborted, "another request is writing this upload");
    it->second.locked = true;
    u = it->second.upload;
  }
  // The record first: without it a leftover data file is removed at open.
  if (::unlink(InfoPath(id).c_str()) != 0 && errno != ENOENT) {
    Status s = Errno("unlink", InfoPath(id), errno);
    Unlock(id);
    return s;
  }
  ::unlink(DataPath(id).c_str());
  (void)SyncDir();
  std::lock_guard lock(mu_);
  uploads_.erase(id);
  return u;
}

int TusStore::SweepExpired() {
  std::vector<std::string> expired;
  {
    std::lock_guard lock(mu_);
    for (auto& [id, e] : uploads_) {
      if (!e.locked && Expired(e)) {
        e.locked = true;
        expired.push_back(id);
      }
    }
  }
  int removed = 0;
  for (const std::string& id : expired) {
    if (::unlink(InfoPath(id).c_str()) != 0 && errno != ENOENT) {
      spdlog::warn("tus: removing expired upload {}: {}", id, std::strerror(errno));
      Unlock(id);
      continue;
    }
    ::unlink(DataPath(id).c_str());
    std::lock_guard lock(mu_);
    uploads_.erase(id);
    ++removed;
  }
  if (removed > 0) (void)SyncDir();
  return removed;
}

Result<std::string> CompleteTusUpload(const TusStore& store, const TusUpload& u,
                                      storage::BlobStore& blobs, GroupCommitter& committer,
                                      int64_t max_bytes, bool fsync, const QueueOrder& order,
                                      const std::string& request_id) {
  if (!u.complete()) return FailedPrecondition("the upload is not complete");
  FileSink sink(blobs, u.id, max_bytes);
  {
    const std::string data = store.DataPath(u.id);
    UniqueFd fd(::open(data.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!fd.valid()) return Errno("open", data, errno);
    auto buf = std::make_unique_for_overwrite<char[]>(kCopyBytes);
    int64_t left = u.length;
    while (left > 0) {
      ssize_t n = ::read(fd.get(), buf.get(), static_cast<size_t>(std::min<int64_t>(left, kCopyBytes)));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Errno("read", data, errno);
      if (n == 0) return DataLoss("upload " + u.id + " holds fewer bytes than its offset");
      if (Status s = sink.Append(std::string_view(buf.get(), static_cast<size_t>(n))); !s.ok()) {
        return s;
      }
      left -= n;
    }
  }
  AcceptedUpload up{.user_id = u.user_id,
                    .session_id = u.metadata.session_id,
                    .original_name = u.metadata.filename,
                    .mime_type = u.metadata.filetype,
                    .message = u.metadata.message};
  auto row = Seal(std::move(up), sink, fsync);
  if (!row) return row.status();
  row->request_id = request_id;
  std::promise<Result<AcceptOutcome>> promise;
  auto outcome = promise.get_future();
  committer.Submit(
      std::move(*row), [&promise](Result<AcceptOutcome> r) { promise.set_value(std::move(r)); },
      order);
  Result<AcceptOutcome> r = outcome.get();
  if (!r) return r.status();
  if (!r->enqueued) spdlog::info("tus upload {}: job left to the reconciler", r->job_id);
  return r->job_id;
}

TusSweeper::~TusSweeper() { Stop(); }

void TusSweeper::Start() {
  RunPass();
  if (interval_ms_ <= 0) return;
  std::lock_guard lock(mu_);
  if (stopping_ || thread_.joinable()) return;
  thread_ = std::thread([this] {
    std::unique_lock lock(mu_);
    while (!stopping_) {
      if (cv_.wait_for(lock, std::chrono::milliseconds(interval_ms_), [this] { return stopping_; })) {
        break;
      }
      lock.unlock();
      RunPass();
      lock.lock();
    }
  });
}

void TusSweeper::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void TusSweeper::RunPass() {
  int removed = store_->SweepExpired();
  if (removed > 0) spdlog::info("tus sweep: removed {} expired uploads", removed);
}

}  // namespace conveyor::uploads
