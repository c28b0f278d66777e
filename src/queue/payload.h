// File: queue/payload.h
//
// The data of a `file-upload` job, as conveyor writes it and as a Node.js
// producer must write it (DESIGN.md §1 "Queue"; README "Job payload"):
//
//   {"jobId":"<uuid>","userId":"u1","sessionId":"s1",
//    "storagePath":"/abs/path/in/STORAGE_DIR/<uuid>","originalName":"a.txt",
//    "mimeType":"text/plain","size":123,"message":"optional",
//    "requestId":"optional"}
//
// `requestId` is the X-Request-Id of the upload that made the job, so the
// worker's log lines for the job carry it; Node.js producers may leave it out.
#pragma once

#include <cstdint>
#include <string>

#include "core/error.h"

namespace conveyor::queue {

struct JobPayload {
  std::string job_id;
  std::string user_id;
  std::string session_id;
  std::string storage_path;
  std::string original_name;
  std::string mime_type;
  int64_t size = 0;
  std::string message;
  std::string request_id = {};  // written only when non-empty (a default, so aggregate inits may omit it)
};

std::string EncodeJobPayload(const JobPayload& p);

// Lenient about extra fields and a missing `message`/`mimeType`/`originalName`/
// `size`; kInvalidArgument naming the field when jobId, userId, sessionId or
// storagePath is missing or not a non-empty string.
Result<JobPayload> DecodeJobPayload(const std::string& json);

}  // namespace conveyor::queue
