#include "queue/payload.h"

#include <nlohmann/json.hpp>

namespace conveyor::queue {

std::string EncodeJobPayload(const JobPayload& p) {
  nlohmann::json j = {{"jobId", p.job_id},           {"userId", p.user_id},
                      {"sessionId", p.session_id},   {"storagePath", p.storage_path},
                      {"originalName", p.original_name}, {"mimeType", p.mime_type},
                      {"size", p.size},              {"message", p.message}};
  // Invalid UTF-8 in client-supplied strings is replaced, never fatal.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
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
  if (auto it = j.find("size"); it != j.end() && it->is_number_integer()) p.size = it->get<int64_t>();
  return p;
}

}  // namespace conveyor::queue
