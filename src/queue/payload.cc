#include "queue/payload.h"

#include <cstdio>
#include <nlohmann/json.hpp>

#include "core/ids.h"

namespace conveyor::queue {

namespace {

// Appends `s` as a JSON string, byte for byte what nlohmann's dump (no ASCII
// escaping) writes: \" \\ \b \f \n \r \t, other control bytes as \u00xx.
// Text that is not valid UTF-8 (a client's file name or part type may be
// anything) goes through nlohmann, which replaces the bad bytes.
void AppendJsonString(std::string& out, const std::string& s) {
  if (!IsValidUtf8(s)) {
    out += nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    return;
  }
  out.push_back('"');
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char esc[8];
          std::snprintf(esc, sizeof esc, "\\u%04x", static_cast<unsigned>(c));
          out += esc;
        } else {
          out.push_back(c);
        }
    }
  }
  out.push_back('"');
}

}  // namespace

// Written by hand (an upload's job is encoded on the API's hot path); the
// keys come in nlohmann's order (sorted), so the text is the same as
// nlohmann::json's dump of the same object.
std::string EncodeJobPayload(const JobPayload& p) {
  std::string out;
  out.reserve(160 + p.job_id.size() + p.user_id.size() + p.session_id.size() +
              p.storage_path.size() + p.original_name.size() + p.mime_type.size() +
              p.message.size());
  out += "{\"jobId\":";
  AppendJsonString(out, p.job_id);
  out += ",\"message\":";
  AppendJsonString(out, p.message);
  out += ",\"mimeType\":";
  AppendJsonString(out, p.mime_type);
  out += ",\"originalName\":";
  AppendJsonString(out, p.original_name);
  if (!p.request_id.empty()) {
    out += ",\"requestId\":";
    AppendJsonString(out, p.request_id);
  }
  out += ",\"sessionId\":";
  AppendJsonString(out, p.session_id);
  out += ",\"size\":";
  out += std::to_string(p.size);
  out += ",\"storagePath\":";
  AppendJsonString(out, p.storage_path);
  out += ",\"userId\":";
  AppendJsonString(out, p.user_id);
  out += "}";
  return out;
}

Result<JobPayload> DecodeJobPayload(const std::string& json) {
  nlohmann::json j = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return InvalidArgument("job data is not a JSON object");
  JobPayload p;
  auto required = [&](const char* key, std::string& out) -> Status {
    auto it = j.find(key);
    if (it == j.end() || !it->is_string() || it->get_ref<const std::string&>().empty()) {
      return InvalidArgument(std::string("job data field \"") + key +
                             "\" is missing or not a non-empty string");
    }
    out = it->get<std::string>();
    return OkStatus();
  };
  auto optional = [&](const char* key, std::string& out) {
    auto it = j.find(key);
    if (it != j.end() && it->is_string()) out = it->get<std::string>();
  };
  for (auto [key, out] : {std::pair{"jobId", &p.job_id}, std::pair{"userId", &p.user_id},
                          std::pair{"sessionId", &p.session_id},
                          std::pair{"storagePath", &p.storage_path}}) {
    if (Status s = required(key, *out); !s.ok()) return s;
  }
  optional("originalName", p.original_name);
  optional("mimeType", p.mime_type);
  optional("message", p.message);
  optional("requestId", p.request_id);
  if (auto it = j.find("size"); it != j.end() && it->is_number_integer()) p.size = it->get<int64_t>();
  return p;
}

}  // namespace conveyor::queue
