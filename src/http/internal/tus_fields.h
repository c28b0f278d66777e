// File: http/internal/tus_fields.h
//
// The request fields of the tus routes that carry structure, parsed without
// I/O (tus_fields.cc; fuzzed by tests/fuzz/tus_fields_fuzz.cc):
//
//   Upload-Metadata  "key base64,key base64,key": session_id (required,
//                    CheckSessionId), filename, filetype (<= 255 bytes),
//                    message (<= uploads::kMaxMessageBytes, UTF-8); `name`
//                    and `type` stand for filename and filetype when those
//                    are absent; other keys are ignored.
//   Upload-Checksum  "sha256 <base64 of the 32-byte digest>".
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/error.h"
#include "core/ids.h"  // Base64Decode, Base64Encode
#include "uploads/tus_store.h"

namespace conveyor::http {

// kInvalidArgument with *code set to the client-facing code
// (invalid_metadata, missing_session_id, invalid_session_id,
// message_too_long, invalid_message).
Result<uploads::TusMetadata> ParseUploadMetadata(std::string_view header, std::string_view* code);

// The expected digest (32 bytes), nullopt for an empty field, or
// kInvalidArgument (another algorithm, not base64, not 32 bytes).
Result<std::optional<std::string>> ParseUploadChecksum(std::string_view header);

}  // namespace conveyor::http
