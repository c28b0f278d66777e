// File: app/tus_client.h
//
// The client side of `conveyor upload --resumable`: one file sent with the
// tus 1.0 protocol to /api/chat/upload/tus (libcurl; the file is streamed
// from disk, never held in memory).
//
// Resuming. Each file's upload URL is remembered in a small state file,
// $XDG_CACHE_HOME/conveyor/tus-uploads.json (else ~/.cache/conveyor/...;
// directory 0700, file 0600, rewritten atomically), keyed by the server URL,
// the file's absolute path, its size and its modification time, so a file
// that changed starts over. A run that finds a URL asks HEAD for the
// server's offset and sends only the rest; an upload the server no longer
// knows (expired, terminated) starts again. The entry goes once the upload
// is complete (the answer carries Upload-Job-Id).
//
// One PATCH carries the rest of the file: if the connection drops, the
// server keeps what arrived, and the next run resumes from there.
#pragma once

#include <cstdint>
#include <string>

namespace conveyor::app {

struct TusClientOptions {
  std::string base_url;  // "http://host:port", no trailing '/'
  std::string token;     // bearer token
  std::string session_id;
  std::string message;
  bool progress = false;       // draw a progress bar on stderr
  int64_t max_send_bytes_per_s = 0;  // --limit-rate; 0: unlimited
  long connect_timeout_s = 10;
};

struct TusClientResult {
  long status = 0;     // the last HTTP status (0: transport error)
  std::string job_id;  // set when the upload is complete
  std::string error;   // why not, for the user
  int64_t resumed_at = -1;  // the offset a remembered upload resumed from (-1: a new upload)
};

// Uploads `file` (resuming a remembered upload of it), returns its job id or
// why not. Call curl_global_init first.
TusClientResult TusUploadFile(const TusClientOptions& options, const std::string& file);

// The state file's path (see the file comment).
std::string TusStatePath();

}  // namespace conveyor::app
