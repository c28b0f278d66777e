#include "queue/internal/job_json.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <utility>

namespace conveyor::queue::internal {
namespace {

using nlohmann::json;

// A JSON number as T, saturated at T's range: producers may write any
// number (1e10, -1e300), and casting a double outside the target's range is
// undefined behaviour. NaN (not valid JSON, but cheap to rule out) reads as 0.
template <class T>
T Saturate(double v) {
  constexpr T kMin = std::numeric_limits<T>::min();
  constexpr T kMax = std::numeric_limits<T>::max();
  if (std::isnan(v)) return 0;
  // -2^63 and 2^31-style bounds are exact doubles; kMax of int64 is not, so
  // compare against its successor 2^63.
  if (v <= static_cast<double>(kMin)) return kMin;
  if (v >= -static_cast<double>(kMin)) return kMax;
  return static_cast<T>(v);
}

json RetentionToJson(int keep) {
  if (keep < 0) return false;
  if (keep == 0) return true;
  return keep;
}

int RetentionFromJson(const json& j) {
  if (j.is_boolean()) return j.get<bool>() ? 0 : -1;
  if (j.is_number()) return std::max(-1, Saturate<int>(j.get<double>()));
  if (j.is_object()) {
    auto count = j.find("count");
    if (count != j.end() && count->is_number()) {
      return std::max(-1, Saturate<int>(count->get<double>()));
    }
  }
  return -1;
}

int ToInt(const std::string& s) {
  char* end = nullptr;
  long v = std::strtol(s.c_str(), &end, 10);
  if (end == s.c_str()) return 0;
  return static_cast<int>(std::clamp<long>(v, std::numeric_limits<int>::min(),
                                           std::numeric_limits<int>::max()));
}

int64_t ToInt64(const std::string& s) {
  char* end = nullptr;
  long long v = std::strtoll(s.c_str(), &end, 10);
  return end == s.c_str() ? 0 : static_cast<int64_t>(v);
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
  if (opts.priority > 0) j["priority"] = opts.priority;
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
    o.attempts = Saturate<int>(it->get<double>());
  }
  if (auto it = j.find("backoff"); it != j.end()) {
    if (it->is_number()) {  // a bare number is a fixed delay
      o.backoff_delay_ms = Saturate<int64_t>(it->get<double>());
    } else if (it->is_object()) {
      auto type = it->find("type");
      if (type != it->end() && type->is_string() && *type == "exponential") {
        o.backoff_type = BackoffType::kExponential;
      }
      auto delay = it->find("delay");
      if (delay != it->end() && delay->is_number()) {
        o.backoff_delay_ms = Saturate<int64_t>(delay->get<double>());
      }
    }
  }
  if (auto it = j.find("removeOnComplete"); it != j.end()) {
    o.remove_on_complete = RetentionFromJson(*it);
  }
  if (auto it = j.find("removeOnFail"); it != j.end()) o.remove_on_fail = RetentionFromJson(*it);
  if (auto it = j.find("delay"); it != j.end() && it->is_number()) {
    o.delay_ms = Saturate<int64_t>(it->get<double>());
  }
  if (auto it = j.find("priority"); it != j.end() && it->is_number()) {
    o.priority = Saturate<int>(it->get<double>());
  }
  return o;
}

void ReadJobField(std::string_view key, std::string value, ActiveJob* job) {
  if (key == "name") job->name = std::move(value);
  else if (key == "data") job->data_json = std::move(value);
  else if (key == "opts") job->opts_json = std::move(value);
  else if (key == "timestamp") job->timestamp_ms = ToInt64(value);
  else if (key == "atm") job->attempts_made = ToInt(value);
  else if (key == "attemptsMade" && job->attempts_made == 0) job->attempts_made = ToInt(value);
  else if (key == "ats") job->attempts_started = ToInt(value);
  else if (key == "stc") job->stalled_count = ToInt(value);
  else if (key == "defa") job->deferred_failure = value;
}

}  // namespace conveyor::queue::internal
