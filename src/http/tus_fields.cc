// The tus request fields (see internal/tus_fields.h).
#include "http/internal/tus_fields.h"

#include "core/ids.h"
#include "uploads/uploads.h"

namespace conveyor::http {
namespace {

// Longest `filetype` kept (a MIME type); longer metadata is refused.
constexpr size_t kMaxFileTypeBytes = 255;

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

// Upload-Metadata: "key base64,key base64,key" into the upload's fields.
// Unknown keys are ignored (clients add their own); `name` and `type` stand
// for filename and filetype when those are absent (Uppy sends both).
Result<uploads::TusMetadata> ParseUploadMetadata(std::string_view header, std::string_view* code) {
  uploads::TusMetadata m;
  std::optional<std::string> name, type;
  bool have_session = false;
  *code = "invalid_metadata";
  while (!Trim(header).empty()) {
    size_t comma = header.find(',');
    std::string_view pair = Trim(header.substr(0, comma));
    header = comma == std::string_view::npos ? std::string_view() : header.substr(comma + 1);
    size_t space = pair.find(' ');
    std::string_view key = pair.substr(0, space);
    std::string_view encoded =
        space == std::string_view::npos ? std::string_view() : Trim(pair.substr(space + 1));
    if (key.empty()) return InvalidArgument("Upload-Metadata has an empty key");
    auto value = Base64Decode(encoded);
    if (!value) return InvalidArgument("Upload-Metadata value of `" + std::string(key) +
                                       "` is not base64");
    if (key == "session_id") {
      m.session_id = std::move(*value);
      have_session = true;
    } else if (key == "filename") {
      m.filename = std::move(*value);
    } else if (key == "filetype") {
      m.filetype = std::move(*value);
    } else if (key == "message") {
      m.message = std::move(*value);
    } else if (key == "name") {
      name = std::move(*value);
    } else if (key == "type") {
      type = std::move(*value);
    }
  }
  if (m.filename.empty() && name) m.filename = std::move(*name);
  if (m.filetype.empty() && type) m.filetype = std::move(*type);
  if (!have_session) {
    *code = "missing_session_id";
    return InvalidArgument("Upload-Metadata needs session_id");
  }
  if (Status s = CheckSessionId(m.session_id); !s.ok()) {
    *code = "invalid_session_id";
    return s;
  }
  if (m.message.size() > uploads::kMaxMessageBytes) {
    *code = "message_too_long";
    return InvalidArgument("message is longer than " + std::to_string(uploads::kMaxMessageBytes) +
                           " bytes");
  }
  if (!IsValidUtf8(m.message)) {
    *code = "invalid_message";
    return InvalidArgument("message is not valid UTF-8");
  }
  if (!IsValidUtf8(m.filename) || !IsValidUtf8(m.filetype) ||
      m.filetype.size() > kMaxFileTypeBytes) {
    return InvalidArgument("filename or filetype is not valid UTF-8 or too long");
  }
  return m;
}

// Upload-Checksum: "sha256 <base64 of 32 bytes>"; nullopt without one.
Result<std::optional<std::string>> ParseUploadChecksum(std::string_view header) {
  header = Trim(header);
  if (header.empty()) return std::optional<std::string>();
  size_t space = header.find(' ');
  std::string_view algorithm = header.substr(0, space);
  if (algorithm != "sha256") {
    return InvalidArgument("Upload-Checksum algorithm must be sha256");
  }
  auto digest = Base64Decode(space == std::string_view::npos ? "" : Trim(header.substr(space + 1)));
  if (!digest || digest->size() != 32) {
    return InvalidArgument("Upload-Checksum needs the base64 of a SHA-256 digest");
  }
  return std::optional<std::string>(std::move(*digest));
}

}  // namespace conveyor::http
