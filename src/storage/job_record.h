// File: storage/job_record.h
//
// The FileUploadJob row (DESIGN.md §1 "Database") and the memory chunk row.
// `status` values are persisted as text and never change meaning.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

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
  std::string request_id = {};  // not stored: the upload's X-Request-Id, for the job's data
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

// What one processed file leaves in memory: its chunks (searchable text) and
// its index terms (its most characteristic words, lower case), by which later
// files of the session find it as a reference.
struct FileMemory {
  std::string user_id;
  std::string session_id;
  std::string job_id;
  std::string file_id;
  std::vector<MemoryChunk> chunks;
  std::vector<std::string> terms;
};

// A question for MetadataStore::FindRelatedFiles: which files of the scope
// hold some of `terms` among their index terms.
struct RelatedQuery {
  std::string user_id;
  std::string session_id;
  std::string exclude_file_id;     // the asking file itself
  std::vector<std::string> terms;  // distinct; at most kMaxRelatedTerms are used
  int per_term_limit = 200;        // newest files read per term (the bound on cost)
  int limit = 5;                   // files returned at most
};

struct RelatedFile {
  std::string file_id;
  std::string job_id;
  std::vector<std::string> terms;  // the query's terms it holds, in query order
  std::string snippet;             // its best chunk excerpt for the terms, matches as **word**
};

inline constexpr int kMaxRelatedTerms = 16;
inline constexpr size_t kMaxFileTerms = 64;      // index terms kept per file
inline constexpr size_t kMaxIndexTermBytes = 64;  // longer terms are skipped

// `terms` as stored or searched: in order, without repeats, empty terms or
// terms over kMaxIndexTermBytes, at most `max`.
std::vector<std::string> CleanTerms(const std::vector<std::string>& terms, size_t max);

// The first chunk index that `chunks` gives twice, if any: a store refuses
// such a file before writing (kInvalidArgument), so that a unique-index
// conflict while writing can only mean another run of the same job.
std::optional<int> RepeatedChunkIndex(const std::vector<MemoryChunk>& chunks);
inline constexpr int kMaxRelatedPerTerm = 1000;
inline constexpr int kMaxRelatedFiles = 50;

}  // namespace conveyor::storage
