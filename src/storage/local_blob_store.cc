// Local-directory BlobStore.
//
// Layout: "<dir>/<uuid>" committed blobs, "<dir>/tmp/<uuid>.part" uploads in
// progress. tmp/ lives inside <dir> so the commit rename never crosses a file
// system and is atomic. The order in Commit (write, fsync file, rename, fsync
// directory) is LevelDB's SetCurrentFile: after it returns, a power loss
// leaves either no blob or the whole blob under its final name.
// CommitNameLater stops before the directory fsync; SyncNames() does it once
// for every blob renamed before it (the uploads' group commit).
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <vector>

#include "core/files.h"
#include "core/ids.h"
#include "storage/blob_store.h"
#include "storage/write_behind.h"

namespace conveyor::storage {
namespace {

namespace fs = std::filesystem;

// Appends smaller than this are gathered into one write(2); larger ones go
// straight to the file. 1 MiB keeps syscalls rare for the typical 64 KiB
// network reads without holding much memory per upload.
constexpr size_t kWriteBufferBytes = 1 << 20;
// An append of at least this much with nothing buffered is written directly
// (large enough that the write(2) is not the cost).
constexpr size_t kDirectWriteBytes = 64 * 1024;
constexpr std::string_view kTempSuffix = ".part";
constexpr char kTempDirName[] = "tmp";
// The one message a refused path gets: it says nothing about the file system.
constexpr char kInvalidStoragePath[] = "Invalid storage path";

Status ErrnoStatus(std::string_view what, const std::string& path, int err) {
  std::string msg = std::string(what) + " " + path + ": " + std::strerror(err);
  // Disk full, quota, I/O errors: the caller may retry later.
  return Unavailable(std::move(msg));
}

Result<void> WriteAll(int fd, std::string_view bytes, const std::string& path) {
  while (!bytes.empty()) {
    ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus("write", path, errno);
    }
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return {};
}

Result<void> FsyncDir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus("open", dir, errno);
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return ErrnoStatus("fsync", dir, err);
  return {};
}

int64_t MtimeMs(const struct stat& st) {
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1000 + st.st_mtim.tv_nsec / 1000000;
}

// Opens `name` in directory `dirfd` read-only, never following a symlink,
// and keeps it only when it is a regular file with a single link (a second
// link would be another name for someone else's file).
Result<OpenedBlob> OpenRegularAt(int dirfd, const std::string& name, const std::string& shown) {
  // O_NONBLOCK: opening a FIFO must not hang the worker (it is refused below).
  int fd = ::openat(dirfd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT) return NotFound("open " + shown + ": " + std::strerror(err));
    if (err == ELOOP || err == ENOTDIR || err == EISDIR || err == ENXIO || err == EACCES) {
      return InvalidArgument(kInvalidStoragePath);
    }
    return ErrnoStatus("open", shown, err);
  }
  UniqueFd owned(fd);
  struct stat st {};
  if (::fstat(fd, &st) != 0) return ErrnoStatus("stat", shown, errno);
  if (!S_ISREG(st.st_mode) || st.st_nlink != 1) return InvalidArgument(kInvalidStoragePath);
  (void)::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  OpenedBlob out;
  out.fd = std::move(owned);
  out.path = shown;
  out.size_bytes = static_cast<int64_t>(st.st_size);
  return out;
}

class LocalBlobWriter final : public BlobWriter {
 public:
  LocalBlobWriter(int fd, std::string temp_path, std::string final_path, std::string dir,
                  int64_t write_behind_bytes)
      : fd_(fd),
        temp_path_(std::move(temp_path)),
        final_path_(std::move(final_path)),
        dir_(std::move(dir)),
        behind_(write_behind_bytes) {}
  ~LocalBlobWriter() override { Abort(); }
  LocalBlobWriter(const LocalBlobWriter&) = delete;
  LocalBlobWriter& operator=(const LocalBlobWriter&) = delete;

  Result<void> Append(std::string_view bytes) override {
    if (state_ != State::kOpen) return FailedPrecondition("blob writer is closed");
    if (buffer_.empty() && bytes.size() >= kDirectWriteBytes) {
      // Nothing to keep in order with: write it as it is. Saves a copy, and
      // a small upload that arrives in one piece never allocates the buffer.
      CONVEYOR_RETURN_IF_ERROR(Write(bytes));
    } else if (buffer_.size() + bytes.size() <= kWriteBufferBytes) {
      if (buffer_.capacity() < kWriteBufferBytes) buffer_.reserve(kWriteBufferBytes);
      buffer_.append(bytes);
    } else {
      CONVEYOR_RETURN_IF_ERROR(Flush());
      if (bytes.size() >= kWriteBufferBytes) {
        CONVEYOR_RETURN_IF_ERROR(Write(bytes));
      } else {
        buffer_.append(bytes);
      }
    }
    size_ += static_cast<int64_t>(bytes.size());
    return {};
  }

  int64_t size() const override { return size_; }

  Result<std::string> Commit(bool fsync) override {
    auto path = CommitNameLater(fsync);
    if (path && fsync) CONVEYOR_RETURN_IF_ERROR(FsyncDir(dir_));
    return path;
  }

  Result<std::string> CommitNameLater(bool fsync) override {
    if (state_ != State::kOpen) return FailedPrecondition("blob writer is closed");
    CONVEYOR_RETURN_IF_ERROR(Flush());
    if (fsync && ::fsync(fd_) != 0) return ErrnoStatus("fsync", temp_path_, errno);
    int rc = ::close(fd_);
    fd_ = -1;
    if (rc != 0) return ErrnoStatus("close", temp_path_, errno);
    // NOREPLACE: a blob name is never reused; finding one there is a bug
    // upstream, and overwriting would destroy another upload.
    if (::renameat2(AT_FDCWD, temp_path_.c_str(), AT_FDCWD, final_path_.c_str(),
                    RENAME_NOREPLACE) != 0) {
      int err = errno;
      if (err == EEXIST) return AlreadyExists("blob " + final_path_ + " already exists");
      if (err != EINVAL && err != ENOSYS) return ErrnoStatus("rename", temp_path_, err);
      // File systems without RENAME_NOREPLACE: check, then plain rename.
      if (::access(final_path_.c_str(), F_OK) == 0) {
        return AlreadyExists("blob " + final_path_ + " already exists");
      }
      if (::rename(temp_path_.c_str(), final_path_.c_str()) != 0) {
        return ErrnoStatus("rename", temp_path_, errno);
      }
    }
    state_ = State::kCommitted;
    buffer_ = std::string();
    return final_path_;
  }

  void Abort() override {
    if (state_ != State::kOpen) return;
    state_ = State::kAborted;
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    ::unlink(temp_path_.c_str());
    buffer_ = std::string();
  }

 private:
  enum class State { kOpen, kCommitted, kAborted };

  Result<void> Flush() {
    if (buffer_.empty()) return {};
    auto st = Write(buffer_);
    buffer_.clear();
    return st;
  }

  Result<void> Write(std::string_view bytes) {
    CONVEYOR_RETURN_IF_ERROR(WriteAll(fd_, bytes, temp_path_));
    auto range = behind_.Wrote(static_cast<int64_t>(bytes.size()));
    // Only a start: an error here shows again in the fsync, which reports it.
    if (range.length > 0) {
      (void)::sync_file_range(fd_, range.offset, range.length, SYNC_FILE_RANGE_WRITE);
    }
    return {};
  }

  int fd_;
  const std::string temp_path_;
  const std::string final_path_;
  const std::string dir_;
  std::string buffer_;
  WriteBehind behind_;
  int64_t size_ = 0;
  State state_ = State::kOpen;
};

class LocalBlobStore final : public BlobStore {
 public:
  LocalBlobStore(std::string dir, LocalBlobOptions options)
      : dir_(std::move(dir)), tmp_dir_(dir_ + "/" + kTempDirName), options_(options) {}

  Result<std::unique_ptr<BlobWriter>> Create(const std::string& id) override {
    if (!IsUuid(id)) return InvalidArgument("blob id must be a UUID");
    std::string temp_path = tmp_dir_ + "/" + id + std::string(kTempSuffix);
    int fd = ::open(temp_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
      if (errno == EEXIST) return AlreadyExists("blob " + id + " is already being written");
      return ErrnoStatus("create", temp_path, errno);
    }
    return std::unique_ptr<BlobWriter>(
        new LocalBlobWriter(fd, std::move(temp_path), PathFor(id), dir_,
                            options_.write_behind_bytes));
  }

  std::string Location(const std::string& id) const override { return PathFor(id); }

  Result<void> Remove(const std::string& id) override {
    if (!IsUuid(id)) return InvalidArgument("blob id must be a UUID");
    const std::string path = PathFor(id);
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) return ErrnoStatus("unlink", path, errno);
    return {};
  }

  Result<OpenedBlob> OpenBlob(const std::string& id) override {
    if (!IsUuid(id)) return InvalidArgument(kInvalidStoragePath);
    auto root = OpenRoot();
    if (!root) return root.status();
    return OpenRegularAt(root->get(), id, PathFor(id));
  }

  Result<OpenedBlob> Adopt(const std::string& path, const std::string& id) override {
    if (!IsUuid(id)) return InvalidArgument(kInvalidStoragePath);
    // Lexically inside the directory, with plain components only.
    const std::string prefix = dir_ + "/";
    if (!path.starts_with(prefix)) return InvalidArgument(kInvalidStoragePath);
    std::vector<std::string> parts;
    std::string_view rest = std::string_view(path).substr(prefix.size());
    for (;;) {
      size_t slash = rest.find('/');
      std::string_view part = rest.substr(0, slash);
      if (part.empty() || part == "." || part == "..") return InvalidArgument(kInvalidStoragePath);
      parts.emplace_back(part);
      if (slash == std::string_view::npos) break;
      rest.remove_prefix(slash + 1);
    }
    if (parts.front() == kTempDirName) return InvalidArgument(kInvalidStoragePath);
    const bool top_level = parts.size() == 1;
    if (top_level && IsUuid(parts[0]) && parts[0] != id) return InvalidArgument(kInvalidStoragePath);

    auto root = OpenRoot();
    if (!root) return root.status();
    // Walk the directories one at a time; O_NOFOLLOW refuses a symlink at
    // every step, not only the last.
    UniqueFd parent;
    int at = root->get();
    for (size_t i = 0; i + 1 < parts.size(); ++i) {
      int fd = ::openat(at, parts[i].c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0) {
        int err = errno;
        if (err == ENOENT) return AdoptedEarlier(root->get(), path, id);
        if (err == ELOOP || err == ENOTDIR || err == EACCES) return InvalidArgument(kInvalidStoragePath);
        return ErrnoStatus("open", path, err);
      }
      parent.reset(fd);
      at = parent.get();
    }
    auto opened = OpenRegularAt(at, parts.back(), path);
    if (!opened && opened.code() == Errc::kNotFound) return AdoptedEarlier(root->get(), path, id);
    if (!opened) return opened;
    if (top_level && parts[0] == id) return opened;
    // Claim it: from now on it is blob `id`. NOREPLACE: never overwrite a blob.
    if (::renameat2(at, parts.back().c_str(), root->get(), id.c_str(), RENAME_NOREPLACE) != 0) {
      int err = errno;
      if (err == EEXIST || err == EXDEV) return InvalidArgument(kInvalidStoragePath);
      return ErrnoStatus("rename", path, err);
    }
    // The name must still have been the file we opened (nobody swapped it
    // between the open and the rename).
    struct stat renamed {}, held {};
    if (::fstatat(root->get(), id.c_str(), &renamed, AT_SYMLINK_NOFOLLOW) != 0 ||
        ::fstat(opened->fd.get(), &held) != 0 || renamed.st_ino != held.st_ino ||
        renamed.st_dev != held.st_dev) {
      return InvalidArgument(kInvalidStoragePath);
    }
    // Its age now counts from the adoption: the storage sweeper
    // (uploads/sweeper.h) takes a blob without a row for an orphan only once
    // it is STORAGE_ORPHAN_MIN_AGE_MS old, and the row of an adopted file is
    // written just after this (or by the next attempt, after a crash). Best
    // effort: a file of another account we may not write keeps its time.
    (void)::futimens(opened->fd.get(), nullptr);
    opened->path = PathFor(id);
    return opened;
  }

  Result<void> SyncNames() override { return FsyncDir(dir_); }

  int RemoveStaleTemps(int64_t older_than_ms) override {
    DIR* d = ::opendir(tmp_dir_.c_str());
    if (d == nullptr) return 0;
    int removed = 0;
    while (dirent* e = ::readdir(d)) {
      std::string_view name = e->d_name;
      if (!name.ends_with(kTempSuffix)) continue;
      struct stat st {};
      if (::fstatat(::dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
      if (!S_ISREG(st.st_mode)) continue;
      if (MtimeMs(st) >= older_than_ms) continue;
      if (::unlinkat(::dirfd(d), e->d_name, 0) == 0) ++removed;
    }
    ::closedir(d);
    return removed;
  }

  int CountTemps() const override {
    DIR* d = ::opendir(tmp_dir_.c_str());
    if (d == nullptr) return 0;
    int count = 0;
    while (dirent* e = ::readdir(d)) {
      if (std::string_view(e->d_name).ends_with(kTempSuffix)) ++count;
    }
    ::closedir(d);
    return count;
  }

  Result<std::vector<StoredBlob>> ListBlobs() const override {
    DIR* d = ::opendir(dir_.c_str());
    if (d == nullptr) return ErrnoStatus("opendir", dir_, errno);
    std::vector<StoredBlob> blobs;
    while (dirent* e = ::readdir(d)) {
      if (!IsUuid(e->d_name)) continue;
      struct stat st {};
      if (::fstatat(::dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
      if (!S_ISREG(st.st_mode)) continue;
      blobs.push_back({e->d_name, MtimeMs(st)});
    }
    ::closedir(d);
    return blobs;
  }

 private:
  std::string PathFor(const std::string& id) const { return dir_ + "/" + id; }

  Result<UniqueFd> OpenRoot() const {
    int fd = ::open(dir_.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return ErrnoStatus("open", dir_, errno);
    return UniqueFd(fd);
  }

  // `path` is gone: an earlier attempt of job `id` may have adopted it.
  Result<OpenedBlob> AdoptedEarlier(int root, const std::string& path, const std::string& id) {
    auto blob = OpenRegularAt(root, id, PathFor(id));
    if (blob || blob.code() != Errc::kNotFound) return blob;
    return NotFound("open " + path + ": " + std::strerror(ENOENT));
  }

  const std::string dir_;      // canonical, absolute
  const std::string tmp_dir_;  // dir_ + "/tmp"
  const LocalBlobOptions options_;
};

}  // namespace

Result<std::unique_ptr<BlobStore>> OpenLocalBlobStore(const std::string& dir,
                                                      LocalBlobOptions options) {
  if (dir.empty()) return InvalidArgument("blob store directory is empty");
  // Uploads are private to the service account: new directories are 0700
  // (an existing STORAGE_DIR keeps its mode: a Node.js producer running as
  // another account may need to write into it), tmp/ always is.
  if (Status s = CreatePrivateDirs((fs::path(dir) / kTempDirName).string()); !s.ok()) return s;
  std::error_code ec;
  fs::path canonical = fs::canonical(fs::path(dir), ec);
  if (ec) return Unavailable("resolve " + dir + ": " + ec.message());
  ::chmod((canonical / kTempDirName).c_str(), 0700);
  return std::unique_ptr<BlobStore>(new LocalBlobStore(canonical.string(), options));
}

}  // namespace conveyor::storage
