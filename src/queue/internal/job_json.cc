#include "queue/internal/job_json.h"

#include <nlohmann/json.hpp>

#include <algorithm>

namespace conveyor::queue::internal {
namespace {

using nlohmann::json;

json RetentionToJson(int keep) {
  if (keep < 0) return false;
  if (keep == 0) return true;
  return keep;
}

int RetentionFromJson(const json& j) {
  if (j.is_boolean()) return j.get<bool>() ? 0 : -1;
  if (j.is_number()) return std::max(-1, static_cast<int>(j.get<double>()));
  if (j.is_object()) {
    auto count = j.find("count");
    if (count != j.end() && count->is_number()) {
      return std::max(-1, static_cast<int>(count->get<double>()));
    }
  }
  return -1;
}

}  // namespace

std::string JobOptionsToJson(const std::string& job_id, const JobOptions& opts) {
  json j = {
      {"attempts", opts.attempts},
      {"backoff",
       {{"type", opts.backoff_type == BackoffType::kFixed ? "fixed" : "exponential"},
        {"delay", opts.backoff_delay_ms}}},
      {"removeOnComplete", RetentionToJson(opts.remove_on_complete)},
      {"removeOnFail", RetentionToJson(opts.remove_on_fail)},
      {"jobId", job_id},
  };
  if (opts.delay_ms > 0) j["delay"] = opts.delay_ms;
  return j.dump();
}

JobOptions ParseJobOptions(std::string_view opts_json) {
  JobOptions o;
  o.attempts = 0;
  o.backoff_type = BackoffType::kFixed;
  o.backoff_delay_ms = 0;
  o.remove_on_complete = -1;
  o.remove_on_fail = -1;
  o.delay_ms = 0;
  json j = json::parse(opts_json.begin(), opts_json.end(), nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return o;
  if (auto it = j.find("attempts"); it != j.end() && it->is_number()) {
    o.attempts = static_cast<int>(it->get<double>());
  }
  if (auto it = j.find("backoff"); it != j.end()) {
    if (it->is_number()) {  // a bare number is a fixed delay
      o.backoff_delay_ms = static_cast<int64_t>(it->get<double>());
    } else if (it->is_object()) {
      auto type = it->find("type");
      if (type != it->end() && type->is_string() && *type == "exponential") {
        o.backoff_type = BackoffType::kExponential;
      }
      auto delay = it->find("delay");
      if (delay != it->end() && delay->is_number()) {
        o.backoff_delay_ms = static_cast<int64_t>(delay->get<double>());
      }
    }
  }
  if (auto it = j.find("removeOnComplete"); it != j.end()) {
    o.remove_on_complete = RetentionFromJson(*it);
  }
  if (auto it = j.find("removeOnFail"); it != j.end()) o.remove_on_fail = RetentionFromJson(*it);
  if (auto it = j.find("delay"); it != j.end() && it->is_number()) {
    o.delay_ms = static_cast<int64_t>(it->get<double>());
  }
  return o;
}

}  // namespace conveyor::queue::internal
