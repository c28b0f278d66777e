// File: storage/blob_store.h
//
// BlobStore: where uploaded files wait for the worker. Names are chosen by the
// server (a UUID), never derived from client input, so nothing can be written
// outside the store's directory.
//
// Reading is by descriptor: the worker opens a blob itself (OpenBlob, Adopt)
// and hands the open descriptor to the sandboxed parser, so nothing between
// a check and an open can swap the file, and the parser needs no path.
//
// Writing is two-phase: Create() opens a temp file ("<dir>/tmp/<uuid>.part"),
// the caller appends to it, then Commit() optionally fsyncs it, renames it to
// "<dir>/<uuid>" and fsyncs the directory (or CommitNameLater() leaves the
// directory fsync to a later SyncNames(), shared by many blobs). Abort() (or
// destroying an uncommitted writer) deletes the temp file.
//
// Threads: a BlobWriter is used by one thread at a time; the BlobStore itself
// is thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "core/fd.h"

namespace conveyor::storage {

class BlobWriter {
 public:
  virtual ~BlobWriter() = default;
  // Appends bytes. kUnavailable on an I/O error (disk full...).
  virtual Result<void> Append(std::string_view bytes) = 0;
  // Bytes appended so far.
  virtual int64_t size() const = 0;
  // Makes the file durable (fsync when `fsync`) and visible under its final
  // name; returns that absolute path.
  virtual Result<std::string> Commit(bool fsync) = 0;
  // Commit, except that the new name is not made durable yet (no directory
  // fsync): that takes BlobStore::SyncNames(), which covers every blob
  // committed this way before it. For callers that share one directory
  // fsync among many blobs (the uploads' group commit). The default is
  // Commit(fsync).
  virtual Result<std::string> CommitNameLater(bool fsync) { return Commit(fsync); }
  // Deletes the temp file. Idempotent; also done by the destructor if neither
  // Commit nor Abort ran.
  virtual void Abort() = 0;
};

// A committed blob as the directory lists it (StorageSweeper, uploads/sweeper.h).
struct StoredBlob {
  std::string id;        // its name, a UUID: the job id of an API upload
  int64_t mtime_ms = 0;  // last write (epoch ms); the commit rename keeps it
};

// A blob opened for reading.
struct OpenedBlob {
  UniqueFd fd;             // O_RDONLY; a regular file with a single link
  std::string path;        // where it is now (for the log, never for clients)
  int64_t size_bytes = 0;
};

class BlobStore {
 public:
  virtual ~BlobStore() = default;
  // A writer for a new blob named `id` (must be a UUID: kInvalidArgument else).
  virtual Result<std::unique_ptr<BlobWriter>> Create(const std::string& id) = 0;
  // Absolute path of a committed blob named `id` (whether or not it exists).
  virtual std::string PathFor(const std::string& id) const = 0;
  // True when `path` is a committed blob path inside this store.
  virtual bool Owns(const std::string& path) const = 0;
  // Deletes a committed blob; missing is not an error.
  virtual Result<void> Remove(const std::string& path) = 0;
  // Opens the committed blob `id` for reading, never through a symlink.
  // kNotFound when it is missing; kInvalidArgument when `id` is not a UUID or
  // the name is not a regular file with one link; kUnavailable on I/O errors.
  virtual Result<OpenedBlob> OpenBlob(const std::string& id) {
    (void)id;
    return Internal("this blob store cannot open blobs");
  }
  // Takes a file another producer (a Node.js service) wrote under the store's
  // directory for job `id` (a UUID): opens the regular file at absolute
  // `path` walking each component with O_NOFOLLOW (no symlink anywhere), then
  // renames it to the blob `id`, so that from here on it is that job's blob
  // and no other job can claim it. When `path` is gone but blob `id` exists (an
  // earlier attempt adopted it), that blob is opened.
  // Refused with kInvalidArgument ("Invalid storage path"): a path outside the
  // directory or with ".", ".." or empty components; a symlink or a non-regular
  // file; a file with more than one link; anything under tmp/ (uploads in
  // progress); a UUID-named file directly in the directory other than `id`
  // (the API's uploads: another job's file). kNotFound when missing.
  virtual Result<OpenedBlob> Adopt(const std::string& path, const std::string& id) {
    (void)path;
    (void)id;
    return Internal("this blob store cannot adopt files");
  }
  // Deletes temp files left by a crash (older than `older_than_ms` epoch ms).
  virtual int RemoveStaleTemps(int64_t older_than_ms) = 0;
  // Temp files ("tmp/*.part") there are now, whatever their age.
  virtual int CountTemps() const { return 0; }
  // The committed blobs: UUID-named regular files directly in the directory
  // (never a producer's file under another name), in no order. kUnavailable
  // when the directory cannot be read. The default has none.
  virtual Result<std::vector<StoredBlob>> ListBlobs() const { return std::vector<StoredBlob>{}; }
  // Makes the names of the blobs committed so far with CommitNameLater
  // durable (one fsync of the directory). kUnavailable on an I/O error.
  // The default has nothing to do (its CommitNameLater syncs at once).
  virtual Result<void> SyncNames() { return {}; }
};

// A store in the local directory `dir` (created if missing, with tmp/, both
// mode 0700; blobs are written 0600).
Result<std::unique_ptr<BlobStore>> OpenLocalBlobStore(const std::string& dir);

}  // namespace conveyor::storage
