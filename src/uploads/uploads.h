// File: uploads/uploads.h
//
// Accepting an upload, without any HTTP: the bytes of the file part are
// streamed into a BlobWriter through a FileSink (SHA-256 and size on the way;
// upload_form.h drives it from a multipart body), then the upload is made
// durable and visible in the order DESIGN.md promises:
//
//   Seal: Commit(fsync) -> MetadataStore::InsertJob (pending) -> Queue::Add
//
// The row is the source of truth. If Queue::Add still fails after a couple of
// quick retries the upload is accepted anyway: the row is committed and the
// reconciler (worker side) re-adds every pending row that has no job, which is
// idempotent because the job id is the row id. If InsertJob fails the blob is
// removed and the error (kUnavailable) is returned: nothing was accepted.
//
// Accept() runs the three steps for one upload. The server instead seals each
// upload on its own and hands the row to a GroupCommitter (group_commit.h),
// which inserts the rows of uploads that finish together in one transaction
// and adds their jobs in one pipelined round trip, in the same order.
//
// Threads: everything here blocks (file I/O, fsync, SQL, Redis). Call it on a
// blocking pool, never on a socket-serving thread. A FileSink is used by one
// thread at a time.
//
//   uploads::FileSink sink(blobs, job_id, max_bytes);
//   sink.Append(bytes) ...                 // any number of times
//   uploads::AcceptedUpload up{...};       // fields from the form
//   Result<AcceptOutcome> r = uploads::Accept(std::move(up), sink, store, queue, opts);
#pragma once

#include <openssl/evp.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/error.h"
#include "core/ids.h"
#include "storage/blob_store.h"
#include "storage/job_record.h"

namespace conveyor::storage {
class MetadataStore;
}
namespace conveyor::queue {
class Queue;
struct JobToAdd;
}

namespace conveyor::uploads {

// Longest session_id accepted (bytes of the form field); see CheckSessionId.
using conveyor::kMaxSessionIdBytes;  // core/ids.h
// Longest `message` field accepted.
inline constexpr size_t kMaxMessageBytes = 64 * 1024;
// The client's file name is kept (display only) up to this many bytes.
inline constexpr size_t kMaxOriginalNameBytes = 255;

// Streams one file into a new blob named `job_id`, computing SHA-256 and the
// size. The blob is created on the first Append. Small pieces are coalesced
// in a 64 KiB staging buffer so a parser that hands over many small slices
// does not cost one write() each. Destroying an uncommitted sink deletes the
// temp file.
class FileSink {
 public:
  FileSink(storage::BlobStore& blobs, std::string job_id, int64_t max_bytes);
  ~FileSink();
  FileSink(const FileSink&) = delete;
  FileSink& operator=(const FileSink&) = delete;

  // Hashes and stores `bytes`. kResourceExhausted once the total passes
  // max_bytes (nothing more is stored), kUnavailable for an I/O error.
  // Equivalent to Count + Hash + Write.
  Status Append(std::string_view bytes);

  // The three steps of Append, for callers that hash and write the same
  // pieces on two threads at once (big uploads). Count (limit check and size)
  // comes first for each piece; then Hash and Write may run concurrently with
  // each other (they share no state), each seeing the pieces in order.
  Status Count(size_t n);
  Status Hash(std::string_view bytes);
  Status Write(std::string_view bytes);

  int64_t size() const { return size_; }
  const std::string& job_id() const { return job_id_; }
  storage::BlobStore& blobs() { return blobs_; }
  bool created() const { return writer_ != nullptr; }

  // Flushes, finalises the hash and commits the blob (the file fsynced when
  // `fsync`) under its final name; returns that path. The name is durable
  // only after the blob store's SyncNames() (BlobWriter::CommitNameLater),
  // which Accept and the GroupCommitter call before the row is inserted.
  Result<std::string> Commit(bool fsync);
  const std::string& sha256_hex() const { return sha256_hex_; }

  // Deletes the temp file (idempotent).
  void Abort();

 private:
  Status Flush();
  Status EnsureWriter();

  storage::BlobStore& blobs_;
  std::string job_id_;
  int64_t max_bytes_;
  int64_t size_ = 0;
  std::unique_ptr<storage::BlobWriter> writer_;
  EVP_MD_CTX* sha_ = nullptr;
  std::unique_ptr<char[]> staging_;
  size_t staged_ = 0;
  std::string sha256_hex_;
  bool finished_ = false;
};

// What the form said about the upload (everything except the bytes).
struct AcceptedUpload {
  std::string user_id;        // JWT `sub`
  std::string session_id;     // 1..kMaxSessionIdBytes
  std::string original_name;  // as sent; cleaned by Accept (see CleanFileName)
  std::string mime_type;      // the part's Content-Type, a hint only
  std::string message;        // optional, <= kMaxMessageBytes
};

struct AcceptOptions {
  bool fsync = true;                  // fsync the blob before the row is written
  int queue_add_attempts = 3;         // Queue::Add tries on kUnavailable
  int64_t queue_retry_delay_ms = 20;  // wait between those tries
};

struct AcceptOutcome {
  std::string job_id;
  std::string storage_path;
  bool enqueued = false;  // false: left to the reconciler (row is pending)
};

// Validates the fields (kInvalidArgument: invalid session_id, message too
// long, empty file; nothing stored), then commits the blob (FileSink::Commit:
// the file fsynced when `fsync`, its name made durable by the next
// SyncNames() of the blob store) and returns the row that describes it (id =
// the sink's job id, the client's file name cleaned by CleanFileName). Errors
// of the blob commit (kUnavailable, kInternal) leave no file behind.
Result<storage::NewJob> Seal(AcceptedUpload upload, FileSink& sink, bool fsync);

// Where a job goes in the queue (uploads/priority.h): its BullMQ priority
// (0: none, the `wait` list) and aging time (queue::JobOptions).
struct QueueOrder {
  int priority = 0;
  int64_t aging_ms = 0;
};

// The queue job of a row: id = the row's id, name queue::kJobName, data
// JobDataJson(row), default options with `order`'s priority and aging.
queue::JobToAdd JobFor(const storage::NewJob& row, QueueOrder order = {});

// Validates the fields (kInvalidArgument: empty/too long session_id, message
// too long, empty file), commits the blob, inserts the row and adds the job
// `queue::kJobName` with data {"jobId","userId","sessionId","storagePath",
// "originalName","mimeType","size","message"}.
// Errors: kInvalidArgument (nothing stored), kUnavailable/kInternal from the
// blob commit or InsertJob (the blob is deleted). Queue failures are logged
// and reported through `enqueued == false`, not as errors.
Result<AcceptOutcome> Accept(AcceptedUpload upload, FileSink& sink, storage::MetadataStore& store,
                             queue::Queue& queue, const AcceptOptions& options);

// The display name kept for a client's file name: the part after the last
// '/' or '\\', control characters replaced by '_', cut to
// kMaxOriginalNameBytes on a UTF-8 boundary. Never used as a path.
std::string CleanFileName(std::string_view name);

// The job's `data` JSON (DESIGN.md §1 "Queue").
std::string JobDataJson(const storage::NewJob& job);

}  // namespace conveyor::uploads
