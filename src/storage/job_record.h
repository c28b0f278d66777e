// File: storage/job_record.h
//
// The FileUploadJob row (DESIGN.md §1 "Database") and the memory chunk row.
// `status` values are persisted as text and never change meaning.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace conveyor::storage {

enum class JobStatus { kPending, kProcessing, kCompleted, kFailed };

// "pending" | "processing" | "completed" | "failed".
std::string_view JobStatusName(JobStatus s);
std::optional<JobStatus> ParseJobStatus(std::string_view s);

// What the API knows when it accepts an upload.
struct NewJob {
  std::string id;            // UUIDv4; also the BullMQ job id
  std::string user_id;       // JWT `sub`
  std::string session_id;
  std::string original_name; // client-supplied name, display only (never a path)
  std::string mime_type;     // client-supplied Content-Type of the part, a hint only
  int64_t size_bytes = 0;
  std::string sha256_hex;    // of the stored bytes
  std::string storage_path;  // absolute path chosen by the server
  std::string message;       // optional accompanying text
};

struct JobRecord {
  std::string id;
  std::string user_id;
  std::string session_id;
  JobStatus status = JobStatus::kPending;
  std::optional<std::string> file_id;      // "file_<uuid>" once processed
  std::optional<std::string> result_json;  // JSON text once completed
  std::optional<std::string> error;        // message once failed
  int64_t created_at_ms = 0;
  int64_t updated_at_ms = 0;
  std::string original_name;
  std::string mime_type;
  int64_t size_bytes = 0;
  std::string sha256_hex;
  std::string storage_path;
  std::string message;
  int progress = 0;   // 0..100, meaningful while processing
  int attempts = 0;   // attempts started by workers
};

// One searchable piece of extracted text.
struct MemoryChunk {
  int index = 0;      // position within the file, from 0
  std::string text;
};

struct MemoryHit {
  std::string file_id;
  std::string job_id;
  int chunk_index = 0;
  std::string snippet;  // a short excerpt around the match
  double score = 0;     // higher is better
};

}  // namespace conveyor::storage
