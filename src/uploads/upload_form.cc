#include "uploads/upload_form.h"

#include <utility>

#include "core/ids.h"

namespace conveyor::uploads {
namespace {

http::MultipartLimits FormLimits() {
  http::MultipartLimits l;
  l.max_header_bytes = kMaxPartHeaderBytes;
  return l;
}

}  // namespace

UploadForm::UploadForm(storage::BlobStore& blobs, std::string boundary, std::string job_id,
                       int64_t max_file_bytes)
    : sink_(blobs, std::move(job_id), max_file_bytes),
      parser_(std::move(boundary), FormLimits(),
              http::MultipartCallbacks{[this](const http::PartHeaders& h) { return OnBegin(h); },
                                       [this](std::string_view d) { return OnData(d); },
                                       [this] {
                                         part_ = Part::kNone;
                                         return OkStatus();
                                       }}) {}

Status UploadForm::Feed(std::string_view bytes) {
  if (parser_.Feed(bytes)) return OkStatus();
  const Status& s = parser_.status();
  // Our own refusals carry their code; I/O errors speak for themselves.
  if (!error_code_.empty() || s.code() == Errc::kUnavailable || s.code() == Errc::kInternal) {
    return s;
  }
  // The parser's own errors (bad syntax, too many parts, huge part headers)
  // are all a malformed body as far as the client is concerned.
  return Refuse(InvalidArgument("malformed multipart body: " + s.message()), "malformed_body");
}

Result<AcceptedUpload> UploadForm::Finish(std::string user_id) {
  if (Status s = parser_.Finish(); !s.ok()) {
    return Refuse(InvalidArgument("malformed multipart body: " + s.message()), "malformed_body");
  }
  if (!file_seen_) return Refuse(InvalidArgument("the form has no `file` part"), "missing_file");
  if (session_id_.empty()) {
    return Refuse(InvalidArgument("session_id is required"), "missing_session_id");
  }
  if (Status s = CheckSessionId(session_id_); !s.ok()) {
    return Refuse(std::move(s), "invalid_session_id");
  }
  if (!IsValidUtf8(message_)) {
    return Refuse(InvalidArgument("message is not valid UTF-8"), "invalid_message");
  }
  if (sink_.size() == 0) return Refuse(InvalidArgument("the file is empty"), "empty_file");
  AcceptedUpload up;
  up.user_id = std::move(user_id);
  up.session_id = std::move(session_id_);
  up.original_name = std::move(filename_);
  up.mime_type = std::move(mime_type_);
  up.message = std::move(message_);
  return up;
}

Status UploadForm::OnBegin(const http::PartHeaders& h) {
  if (h.name == "file") {
    if (file_seen_) return Refuse(InvalidArgument("more than one `file` part"), "malformed_body");
    file_seen_ = true;
    filename_ = h.filename.value_or("");
    mime_type_ = h.content_type;
    part_ = Part::kFile;
  } else if (h.name == "session_id") {
    session_id_.clear();
    part_ = Part::kSessionId;
  } else if (h.name == "message") {
    message_.clear();
    part_ = Part::kMessage;
  } else {
    part_ = Part::kIgnored;
  }
  return OkStatus();
}

Status UploadForm::OnData(std::string_view d) {
  switch (part_) {
    case Part::kFile: {
      Status s = sink_.Append(d);
      if (s.code() == Errc::kResourceExhausted) return Refuse(std::move(s), "payload_too_large");
      return s;
    }
    case Part::kSessionId:
      if (session_id_.size() + d.size() > kMaxSessionIdBytes) {
        return Refuse(InvalidArgument("session_id is longer than " +
                                      std::to_string(kMaxSessionIdBytes) + " bytes"),
                      "invalid_session_id");
      }
      session_id_.append(d);
      return OkStatus();
    case Part::kMessage:
      if (message_.size() + d.size() > kMaxMessageBytes) {
        return Refuse(InvalidArgument("message is longer than " +
                                      std::to_string(kMaxMessageBytes) + " bytes"),
                      "message_too_long");
      }
      message_.append(d);
      return OkStatus();
    case Part::kIgnored:
      ignored_bytes_ += d.size();
      if (ignored_bytes_ > kMaxIgnoredFieldBytes) {
        return Refuse(InvalidArgument("unknown form fields are too large"), "malformed_body");
      }
      return OkStatus();
    case Part::kNone:
      break;
  }
  return OkStatus();
}

Status UploadForm::Refuse(Status s, std::string_view code) {
  error_code_ = code;
  return s;
}

}  // namespace conveyor::uploads
