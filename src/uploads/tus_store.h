// File: uploads/tus_store.h
//
// TusStore: the partial uploads of the tus 1.0 resumable-upload routes
// (http/tus_handler.cc), kept on disk so that they survive an API restart.
// No HTTP here: the handler parses the protocol, this keeps the bytes and
// the record of each upload, and CompleteTusUpload hands a finished one to
// the same path as a multipart upload (FileSink -> Seal -> group commit).
//
// Layout, under one private directory (mode 0700; files 0600):
//
//   <id>.bin   the bytes received so far (appended at the offset)
//   <id>.info  the record, JSON: {"id","user","length","offset","metadata":
//              {"session_id","filename","filetype","message"},"created",
//              "expires","jobId"} (times epoch ms). Written whole to
//              <id>.info.tmp, fsynced, renamed over <id>.info, directory
//              fsynced: a record is always an old one or a new one.
//
// The id is a UUID the server chooses (NewUuid): it is the future job id,
// the blob's name and these files' names, never anything a client sent.
//
// Offsets. `offset` in the record is what a restart believes. A PATCH's
// bytes are written to <id>.bin, then (Patch::Commit) the file is fsynced
// and only then the record with the new offset is written, so the record
// never claims bytes the file does not hold. At open, and before any write,
// the file is cut back to the offset the store knows, dropping bytes of a
// chunk that was refused (checksum) or whose record was never written.
// A PATCH cut off midway (the client went away) keeps what it wrote: those
// bytes are the upload's `pending` bytes, counted in its offset at once and
// made durable (fsync, record) by the next Settle (HEAD) or PATCH, which
// run on the blocking pool; the cut-off connection's thread does no I/O.
// A PATCH that carried a checksum keeps nothing it wrote unless the
// checksum matched (Patch::Discard).
//
// Ownership and locking. Every record is also held in memory (loaded by
// Open). An upload is visible only to the user who created it: another
// user's id is the same as an unknown one (kNotFound). One PATCH (or
// DELETE, Settle, completion) at a time per upload: BeginPatch takes the
// upload's lock without waiting; a second one gets kAborted (the handler
// answers 423).
//
// Expiration. An upload not completed expires `expiration_ms` after its
// creation or its last PATCH (Upload-Expires); a completed one (job id
// recorded) `expiration_ms` after its completion, so a HEAD keeps
// answering its job id until then. An expired upload is kNotFound at once,
// and SweepExpired (TusSweeper, every sweep_interval_ms) deletes its files.
//
// Threads: all methods are thread-safe. Open, Create, Patch::Write/Commit/
// Discard, Settle, SetJobId, Remove and SweepExpired do file I/O (call them
// on a blocking pool); Find, BeginPatch and Patch's destructor do none.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>

#include "core/clock.h"
#include "core/error.h"
#include "core/fd.h"

namespace conveyor::storage {
class BlobStore;
}

namespace conveyor::uploads {

class GroupCommitter;
struct QueueOrder;

struct TusStoreOptions {
  std::string dir;                   // TUS_DIR: created 0700 when missing
  int64_t expiration_ms = 86400000;  // TUS_EXPIRATION_MS
  bool fsync = true;                 // UPLOAD_FSYNC: fsync data and records
};

// The client's metadata (Upload-Metadata), checked by the handler.
struct TusMetadata {
  std::string session_id;  // required
  std::string filename;    // display only
  std::string filetype;    // a hint, like a multipart part's Content-Type
  std::string message;
};

// A snapshot of one upload.
struct TusUpload {
  std::string id;       // UUID: the future job id
  std::string user_id;  // its creator; nobody else sees it
  int64_t length = 0;   // Upload-Length: the whole upload's bytes
  int64_t offset = 0;   // bytes received (durable or pending)
  TusMetadata metadata;
  int64_t created_ms = 0;  // epoch ms
  int64_t expires_ms = 0;  // epoch ms (Upload-Expires)
  std::string job_id;      // set once completed (== id)

  bool complete() const { return offset == length; }
};

class TusStore {
 public:
  // Opens (creates) the directory and loads every record in it; records
  // that cannot be read are logged and skipped, data files without a record
  // are removed. kUnavailable when the directory cannot be made or read.
  static Result<std::unique_ptr<TusStore>> Open(TusStoreOptions options,
                                                const Clock& clock = SystemClock());
  ~TusStore();
  TusStore(const TusStore&) = delete;
  TusStore& operator=(const TusStore&) = delete;

  // A new upload `id` (a fresh UUID the caller chose: the future job id)
  // of `length` (> 0) bytes for `user`: empty data file, record written.
  // kInvalidArgument for a bad id or length; kUnavailable on an I/O error
  // (nothing left behind).
  Result<TusUpload> Create(const std::string& id, const std::string& user, int64_t length,
                           TusMetadata metadata);

  // The upload `id` of `user`, unless unknown, another user's or expired.
  std::optional<TusUpload> Find(const std::string& id, const std::string& user) const;

  // Makes an upload's pending bytes (those of a cut-off PATCH) durable: fsync
  // and record. Nothing to do (OK) when there are none or a PATCH holds the
  // upload. kNotFound as Find; kUnavailable on an I/O error.
  Result<TusUpload> Settle(const std::string& id, const std::string& user);

  // One PATCH's bytes, appended at the upload's offset. Holds the upload's
  // lock until destroyed. Write, Commit and Discard block (file I/O).
  class Patch {
   public:
    ~Patch();  // releases the lock; written bytes not committed or
               // discarded stay as pending bytes (see the file comment)
    Patch(const Patch&) = delete;
    Patch& operator=(const Patch&) = delete;

    // Appends `bytes` (never past the upload's length: kInvalidArgument).
    // kUnavailable on an I/O error (the written part is dropped).
    Status Write(std::string_view bytes);
    // fsync (with options.fsync) and the record with the new offset and a
    // later expiry; returns the upload as now recorded.
    Result<TusUpload> Commit();
    // Drops this PATCH's bytes: the offset stays what it was.
    void Discard();

    const TusUpload& upload() const { return upload_; }  // as at BeginPatch
    int64_t written() const { return written_; }

   private:
    friend class TusStore;
    Patch(TusStore* store, TusUpload upload) : store_(store), upload_(std::move(upload)) {}
    Status Open();

    TusStore* store_;
    TusUpload upload_;
    UniqueFd fd_;
    int64_t written_ = 0;  // bytes of this PATCH in the file
    bool failed_ = false;  // a write failed: the bytes past the offset are not trusted
    bool ended_ = false;   // committed or discarded
  };

  // Locks upload `id` of `user` for a PATCH at `offset`, without I/O.
  // kNotFound (unknown, another user's, expired), kAborted (another PATCH
  // or a DELETE holds it), kFailedPrecondition (`offset` is not the
  // upload's offset; the message says which it is). A complete upload can
  // be locked too (at its length): HEAD's recovery of a cut-off completion.
  Result<std::unique_ptr<Patch>> BeginPatch(const std::string& id, const std::string& user,
                                            int64_t offset);

  // Records that the upload became job `job_id` and deletes its data file
  // (the bytes are in the blob store now). The upload must be complete.
  Result<TusUpload> SetJobId(const std::string& id, const std::string& job_id);

  // Deletes upload `id` of `user` (termination). kNotFound as Find;
  // kAborted while a PATCH holds it. Returns the upload as it was.
  Result<TusUpload> Remove(const std::string& id, const std::string& user);

  // Deletes every expired upload not held by a PATCH; returns how many.
  int SweepExpired();

  // The data file of upload `id` (for CompleteTusUpload and tests).
  std::string DataPath(const std::string& id) const;
  std::string InfoPath(const std::string& id) const;
  int64_t expiration_ms() const { return options_.expiration_ms; }
  // Uploads held (expired ones not yet swept included).
  size_t size() const;

 private:
  struct Entry {
    TusUpload upload;    // upload.offset includes `pending`
    int64_t pending = 0; // bytes past the recorded offset, kept but not yet durable
    bool locked = false;
  };

  TusStore(TusStoreOptions options, const Clock& clock);
  Status Load();
  Status WriteInfo(const TusUpload& u);
  Status SyncDir();
  // Cuts the data file to what the store trusts, fsyncs pending bytes and
  // writes the record; with the entry locked by the caller.
  Result<TusUpload> SettleLocked(const std::string& id);
  void Unlock(const std::string& id);
  bool Expired(const Entry& e) const;

  const TusStoreOptions options_;
  const Clock& clock_;
  UniqueFd dir_fd_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, Entry> uploads_;  // guarded by mu_
};

// Hands complete upload `u` (bytes in its data file) to the multipart
// path: streams the file through a FileSink into blob `u.id` (SHA-256 and
// size), Seal (checks, fsync when `fsync`), then the row and job through
// `committer` (group commit, in `order`), and waits for that. Returns the
// job id. kInvalidArgument from Seal's checks; kAlreadyExists when the row
// exists (an earlier completion that was cut off before its record);
// kUnavailable from the disk, database or queue.
Result<std::string> CompleteTusUpload(const TusStore& store, const TusUpload& u,
                                      storage::BlobStore& blobs, GroupCommitter& committer,
                                      int64_t max_bytes, bool fsync, const QueueOrder& order,
                                      const std::string& request_id);

// Runs TusStore::SweepExpired every interval_ms on its own thread (the
// StorageSweeper's style: one pass at Start, then periodic; Stop joins).
class TusSweeper {
 public:
  TusSweeper(TusStore* store, int64_t interval_ms) : store_(store), interval_ms_(interval_ms) {}
  ~TusSweeper();  // Stop()
  TusSweeper(const TusSweeper&) = delete;
  TusSweeper& operator=(const TusSweeper&) = delete;
  void Start();
  void Stop();

 private:
  void RunPass();
  TusStore* const store_;
  const int64_t interval_ms_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace conveyor::uploads
