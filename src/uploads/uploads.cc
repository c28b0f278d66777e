#include "uploads/uploads.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <cstring>
#include <thread>

#include "core/ids.h"
#include "queue/job.h"
#include "queue/payload.h"
#include "queue/queue.h"
#include "storage/job_record.h"
#include "storage/metadata_store.h"

namespace conveyor::uploads {
namespace {

// Pieces smaller than this are copied into the staging buffer; larger ones
// are written straight from the caller's memory (no copy).
constexpr size_t kDirectWriteBytes = 16 * 1024;
constexpr size_t kStagingBytes = 64 * 1024;

}  // namespace

FileSink::FileSink(storage::BlobStore& blobs, std::string job_id, int64_t max_bytes)
    : blobs_(blobs), job_id_(std::move(job_id)), max_bytes_(max_bytes) {
  sha_ = EVP_MD_CTX_new();
  if (sha_ != nullptr) EVP_DigestInit_ex(sha_, EVP_sha256(), nullptr);
}

FileSink::~FileSink() {
  if (!finished_) Abort();
  EVP_MD_CTX_free(sha_);
}

Status FileSink::EnsureWriter() {
  if (writer_) return OkStatus();
  auto w = blobs_.Create(job_id_);
  if (!w) return w.status();
  writer_ = std::move(*w);
  return OkStatus();
}

Status FileSink::Flush() {
  if (staged_ == 0) return OkStatus();
  if (Status s = EnsureWriter(); !s.ok()) return s;
  auto r = writer_->Append(std::string_view(staging_.get(), staged_));
  staged_ = 0;
  return r.status();
}

Status FileSink::Count(size_t n) {
  if (finished_) return Internal("append after commit or abort");
  if (static_cast<int64_t>(n) > max_bytes_ - size_) {
    return ResourceExhausted("file exceeds " + std::to_string(max_bytes_) + " bytes");
  }
  size_ += static_cast<int64_t>(n);
  return OkStatus();
}

Status FileSink::Hash(std::string_view bytes) {
  if (sha_ == nullptr || EVP_DigestUpdate(sha_, bytes.data(), bytes.size()) != 1) {
    return Internal("SHA-256 update failed");
  }
  return OkStatus();
}

Status FileSink::Write(std::string_view bytes) {
  if (bytes.empty()) return OkStatus();
  if (bytes.size() < kDirectWriteBytes) {
    if (!staging_) staging_ = std::make_unique<char[]>(kStagingBytes);
    if (staged_ + bytes.size() > kStagingBytes) {
      if (Status s = Flush(); !s.ok()) return s;
    }
    std::memcpy(staging_.get() + staged_, bytes.data(), bytes.size());
    staged_ += bytes.size();
    return OkStatus();
  }
  if (Status s = Flush(); !s.ok()) return s;
  if (Status s = EnsureWriter(); !s.ok()) return s;
  return writer_->Append(bytes).status();
}

Status FileSink::Append(std::string_view bytes) {
  if (bytes.empty()) return OkStatus();
  if (Status s = Count(bytes.size()); !s.ok()) return s;
  if (Status s = Hash(bytes); !s.ok()) return s;
  return Write(bytes);
}

Result<std::string> FileSink::Commit(bool fsync) {
  if (finished_) return Internal("commit after commit or abort");
  if (Status s = Flush(); !s.ok()) return s;
  if (Status s = EnsureWriter(); !s.ok()) return s;  // an empty file still needs a blob
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (sha_ == nullptr || EVP_DigestFinal_ex(sha_, digest, &len) != 1) {
    return Internal("SHA-256 final failed");
  }
  sha256_hex_ = HexEncode(std::string_view(reinterpret_cast<const char*>(digest), len));
  auto path = writer_->CommitNameLater(fsync);
  if (!path) {
    writer_->Abort();
    finished_ = true;
    return path.status();
  }
  finished_ = true;
  return path;
}

void FileSink::Abort() {
  if (writer_) writer_->Abort();
  staged_ = 0;
  finished_ = true;
}

std::string CleanFileName(std::string_view name) {
  if (auto slash = name.find_last_of("/\\"); slash != std::string_view::npos) {
    name.remove_prefix(slash + 1);
  }
  std::string out;
  out.reserve(std::min(name.size(), kMaxOriginalNameBytes));
  for (char c : name) {
    auto u = static_cast<unsigned char>(c);
    out.push_back(u < 0x20 || u == 0x7f ? '_' : c);
  }
  if (out.size() > kMaxOriginalNameBytes) {
    size_t cut = kMaxOriginalNameBytes;
    // Back up over UTF-8 continuation bytes so a code point is never split.
    while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xC0) == 0x80) --cut;
    out.resize(cut);
  }
  if (out == "." || out == "..") out = "_";
  return out;
}

std::string JobDataJson(const storage::NewJob& job) {
  return queue::EncodeJobPayload({job.id, job.user_id, job.session_id, job.storage_path,
                                  job.original_name, job.mime_type, job.size_bytes,
                                  job.message, job.request_id});
}

Result<storage::NewJob> Seal(AcceptedUpload upload, FileSink& sink, bool fsync) {
  if (Status s = CheckSessionId(upload.session_id); !s.ok()) return s;
  if (upload.message.size() > kMaxMessageBytes) {
    return InvalidArgument("message is longer than " + std::to_string(kMaxMessageBytes) + " bytes");
  }
  if (sink.size() == 0) return InvalidArgument("the file is empty");

  auto path = sink.Commit(fsync);
  if (!path) return path.status();

  storage::NewJob job;
  job.id = sink.job_id();
  job.user_id = std::move(upload.user_id);
  job.session_id = std::move(upload.session_id);
  job.original_name = CleanFileName(upload.original_name);
  job.mime_type = std::move(upload.mime_type);
  job.size_bytes = sink.size();
  job.sha256_hex = sink.sha256_hex();
  job.storage_path = std::move(*path);
  job.message = std::move(upload.message);
  return job;
}

queue::JobToAdd JobFor(const storage::NewJob& row, QueueOrder order) {
  queue::JobOptions opts;
  opts.priority = order.priority;
  opts.aging_ms = order.aging_ms;
  return {row.id, queue::kJobName, JobDataJson(row), opts};
}

Result<AcceptOutcome> Accept(AcceptedUpload upload, FileSink& sink, storage::MetadataStore& store,
                             queue::Queue& queue, const AcceptOptions& options) {
  auto sealed = Seal(std::move(upload), sink, options.fsync);
  if (!sealed) return sealed.status();
  const storage::NewJob& job = *sealed;

  Result<void> inserted;
  if (options.fsync) inserted = sink.blobs().SyncNames();  // the blob's name before its row
  if (inserted) inserted = store.InsertJob(job);
  if (!inserted) {
    // Nothing refers to the blob yet: remove it so a refused upload leaves no
    // file (unless its id is another row's, whose blob this key names).
    if (inserted.code() == Errc::kAlreadyExists) return inserted.status();
    if (auto removed = sink.blobs().Remove(job.id); !removed) {
      spdlog::warn("upload {}: removing blob after failed insert: {}", job.id,
                   removed.status().ToString());
    }
    return inserted.status();
  }

  AcceptOutcome out;
  out.job_id = job.id;
  out.storage_path = job.storage_path;
  const queue::JobToAdd add = JobFor(job);
  for (int attempt = 1; attempt <= std::max(1, options.queue_add_attempts); ++attempt) {
    auto added = queue.Add(add.id, add.name, add.data_json, add.opts);
    if (added) {
      out.enqueued = true;
      break;
    }
    if (added.code() != Errc::kUnavailable && added.code() != Errc::kDeadlineExceeded) {
      // Not worth retrying now; the row is committed, the reconciler re-adds it.
      spdlog::error("upload {}: queue add failed: {}", job.id, added.status().ToString());
      break;
    }
    spdlog::warn("upload {}: queue add attempt {} failed: {}", job.id, attempt,
                 added.status().ToString());
    if (attempt < options.queue_add_attempts) {
      std::this_thread::sleep_for(std::chrono::milliseconds(options.queue_retry_delay_ms));
    }
  }
  return out;
}

}  // namespace conveyor::uploads
