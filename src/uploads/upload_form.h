// File: uploads/upload_form.h
//
// The multipart/form-data body of one upload, parsed as it streams in: the
// `file` part goes through a FileSink (SHA-256 and size on the way, bytes to
// a temp blob), `session_id` and `message` are kept within their limits,
// other fields are skipped within a budget. Nothing here knows about sockets
// or HTTP types: the caller feeds each piece of the body, in order, then
// finishes, and gets the form's fields or an error with a client-facing code.
//
// One code path for every piece: Feed() parses, hashes and writes whatever
// arrived, whether it is the first of many buffers or a whole small body;
// Finish() only checks what the form held. Feed() blocks (file writes):
// call it where blocking is allowed (the server's pool).
//
//   UploadForm form(blobs, boundary, NewUuid(), max_file_bytes);
//   for (each body buffer) if (Status s = form.Feed(buf); !s.ok()) refuse(s, form.error_code());
//   Result<AcceptedUpload> up = form.Finish(user_id);   // error_code() when !up
//   Result<storage::NewJob> row = Seal(std::move(*up), form.sink(), fsync);   // uploads.h
//
// Limits (400 unless said): session_id kMaxSessionIdBytes, message
// kMaxMessageBytes, unknown fields kMaxIgnoredFieldBytes in all, 16 parts,
// part headers 16 KiB, the file max_file_bytes (413 payload_too_large).
//
// Threads: one thread at a time (the caller serialises Feed/Finish).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/error.h"
#include "http/multipart.h"
#include "uploads/uploads.h"

namespace conveyor::uploads {

// Form fields other than file/session_id/message are skipped, up to this total.
inline constexpr size_t kMaxIgnoredFieldBytes = 64 * 1024;
// A part's header block may be this long: room for a long (10 KB) file name,
// which is accepted and shortened for display rather than refused.
inline constexpr size_t kMaxPartHeaderBytes = 16 * 1024;

class UploadForm {
 public:
  // `boundary` from the request's Content-Type; the file part becomes the
  // blob `job_id` (created on its first byte) of at most `max_file_bytes`.
  UploadForm(storage::BlobStore& blobs, std::string boundary, std::string job_id,
             int64_t max_file_bytes);
  UploadForm(const UploadForm&) = delete;
  UploadForm& operator=(const UploadForm&) = delete;

  // Parses the next piece of the body (any size, split anywhere). The file
  // part's bytes are counted against the limit, hashed and written. An error
  // refuses the body: kInvalidArgument (malformed, a field too long),
  // kResourceExhausted (the file is too large), kUnavailable (the disk);
  // error_code() names it for the client.
  Status Feed(std::string_view bytes);

  // Ends the body: the closing delimiter must have been seen and the form
  // must hold a non-empty `file`, a valid `session_id` (CheckSessionId) and a
  // valid UTF-8 `message` (optional). Returns the fields (moved out; call
  // once) with `user_id`, or kInvalidArgument with error_code() set.
  Result<AcceptedUpload> Finish(std::string user_id);

  // The client-facing code of the last error ("malformed_body",
  // "payload_too_large", "missing_file", "missing_session_id",
  // "invalid_session_id", "invalid_message", "message_too_long",
  // "empty_file"); empty when the Status's own code says enough (I/O).
  std::string_view error_code() const { return error_code_; }

  // The file part's sink: sealed by uploads::Seal once Finish succeeded.
  // Destroying the form without sealing deletes the temp file.
  FileSink& sink() { return sink_; }

 private:
  enum class Part { kNone, kFile, kSessionId, kMessage, kIgnored };

  Status OnBegin(const http::PartHeaders& h);
  Status OnData(std::string_view d);
  Status Refuse(Status s, std::string_view code);

  FileSink sink_;
  http::MultipartParser parser_;
  Part part_ = Part::kNone;
  bool file_seen_ = false;
  size_t ignored_bytes_ = 0;
  std::string session_id_, message_, filename_, mime_type_;
  std::string_view error_code_;
};

}  // namespace conveyor::uploads
