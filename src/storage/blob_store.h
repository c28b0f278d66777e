// File: storage/blob_store.h
//
// BlobStore: where uploaded files wait for the worker. A blob is addressed by
// its key, the job id (a UUID chosen by the server, never derived from client
// input): the API writes it (Create), the worker reads it (OpenBlob) and
// deletes it once the job is final (Remove), the storage sweeper lists and
// removes leftovers (ListBlobs, RemoveStaleTemps). No caller handles a path.
// Two backends: a local directory (OpenLocalBlobStore, below) and
// S3-compatible object storage (OpenS3BlobStore, storage/s3_blob_store.h).
//
// Location(id) is what a job's data carries as `storagePath` (BullMQ
// compatibility with Node.js producers and workers): an absolute path under
// the directory for the local store, "s3://bucket/key" for object storage.
// Only Adopt() reads such a location back, for a job a Node.js producer
// added without a row.
//
// Reading is by descriptor: the worker opens a blob itself (OpenBlob, Adopt)
// and hands the open descriptor to the sandboxed parser, so nothing between
// a check and an open can swap the file, and the parser needs no path. (The
// object store first copies the object into a private, already unlinked temp
// file on the worker's disk.)
//
// Writing is two-phase: Create() opens a temp file ("<dir>/tmp/<uuid>.part";
// for object storage, a part buffer feeding a multipart upload), the caller
// appends to it, then Commit() optionally fsyncs it, renames it to
// "<dir>/<uuid>" and fsyncs the directory (or CommitNameLater() leaves the
// directory fsync to a later SyncNames(), shared by many blobs). Abort() (or
// destroying an uncommitted writer) deletes the temp file (aborts the
// multipart upload).
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
  // name; returns its location (BlobStore::Location).
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

// A committed blob as the store lists it (StorageSweeper, uploads/sweeper.h).
struct StoredBlob {
  std::string id;        // its name, a UUID: the job id of an API upload
  int64_t mtime_ms = 0;  // last write (epoch ms); the commit rename keeps it
};

// A blob opened for reading.
struct OpenedBlob {
  UniqueFd fd;             // O_RDONLY; a regular file with a single link
  std::string path;        // its location (for the log, never for clients)
  int64_t size_bytes = 0;
};

class BlobStore {
 public:
  virtual ~BlobStore() = default;
  // A writer for a new blob named `id` (must be a UUID: kInvalidArgument else).
  virtual Result<std::unique_ptr<BlobWriter>> Create(const std::string& id) = 0;
  // The location of blob `id` (whether or not it exists), as a job's
  // `storagePath` carries it: the absolute path of the local file, or
  // "s3://bucket/key".
  virtual std::string Location(const std::string& id) const = 0;
  // Deletes the committed blob `id`; missing is not an error.
  // kInvalidArgument when `id` is not a UUID; kUnavailable on I/O errors.
  virtual Result<void> Remove(const std::string& id) = 0;
  // Opens the committed blob `id` for reading, never through a symlink.
  // kNotFound when it is missing; kInvalidArgument when `id` is not a UUID or
  // the name is not a regular file with one link; kUnavailable on I/O errors.
  virtual Result<OpenedBlob> OpenBlob(const std::string& id) = 0;
  // Local store: takes a file another producer (a Node.js service) wrote under the store's
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
  // Object store: the same for an object "s3://bucket/key" in its bucket
  // under its prefix (see storage/s3_blob_store.h).
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

struct LocalBlobOptions {
  // Every this many bytes a blob's writer starts the disk's write of what it
  // wrote since (storage/write_behind.h), so that an fsync at its commit has
  // at most this much left to write. 0: the kernel writes back when it likes.
  int64_t write_behind_bytes = 0;
};

// With UPLOAD_FSYNC: 8 MiB, so an upload smaller than that never starts one.
inline constexpr int64_t kUploadWriteBehindBytes = 8 << 20;

// A store in the local directory `dir` (created if missing, with tmp/, both
// mode 0700; blobs are written 0600).
Result<std::unique_ptr<BlobStore>> OpenLocalBlobStore(const std::string& dir,
                                                      LocalBlobOptions options = {});

}  // namespace conveyor::storage
