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

namespace {

// BullMQ's defaults for options a job does not carry (not conveyor's own
// defaults for the jobs it adds, which JobOptions holds).
JobOptions BullMqDefaults() {
  JobOptions o;
  o.attempts = 0;
  o.backoff_type = BackoffType::kFixed;
  o.backoff_delay_ms = 0;
  o.remove_on_complete = -1;
  o.remove_on_fail = -1;
  o.delay_ms = 0;
  return o;
}

// Reads a job's options from nlohmann's SAX events, without building a
// document: every job fetched is read once, so this is on the worker's hot
// path. It answers what reading a parsed document would: the last of repeated
// keys wins, a value of another type leaves the field's default, and input
// that is not one JSON object gives the defaults (ParseJobOptions keeps
// those when the parse fails).
class OptionsReader {
 public:
  // `o` starts as `defaults`; a key read starts its field over from them.
  OptionsReader(JobOptions* o, const JobOptions& defaults) : o_(o), defaults_(defaults) {}

  bool null() { return true; }
  bool boolean(bool v) {
    if (depth_ == 1 && Retention() != nullptr) *Retention() = v ? 0 : -1;
    return true;
  }
  bool number_integer(json::number_integer_t v) { return Number(static_cast<double>(v)); }
  bool number_unsigned(json::number_unsigned_t v) { return Number(static_cast<double>(v)); }
  bool number_float(json::number_float_t v, const std::string&) { return Number(v); }
  bool string(std::string& v) {
    if (depth_ == 2 && top_ == Top::kBackoff && sub_ == Sub::kType && v == "exponential") {
      o_->backoff_type = BackoffType::kExponential;
    }
    return true;
  }
  bool binary(json::binary_t&) { return true; }
  bool start_object(size_t) {
    if (depth_ == 0) root_is_object_ = true;
    return Enter(/*object=*/true);
  }
  bool start_array(size_t) { return Enter(/*object=*/false); }
  bool end_object() { return Leave(); }
  bool end_array() { return Leave(); }
  bool key(std::string& k) {
    if (depth_ == 1) {
      top_ = TopOf(k);
      ResetTop();
    } else if (depth_ == 2 && in_object_at_2_) {
      sub_ = k == "type"    ? Sub::kType
             : k == "delay" ? Sub::kDelay
             : k == "count" ? Sub::kCount
                            : Sub::kNone;
      if (top_ == Top::kBackoff && sub_ == Sub::kType) o_->backoff_type = defaults_.backoff_type;
      if (top_ == Top::kBackoff && sub_ == Sub::kDelay) {
        o_->backoff_delay_ms = defaults_.backoff_delay_ms;
      }
      if (Retention() != nullptr && sub_ == Sub::kCount) *Retention() = -1;  // until a number comes
    }
    return true;
  }
  bool parse_error(size_t, const std::string&, const nlohmann::detail::exception&) { return false; }

  bool root_is_object() const { return root_is_object_; }

 private:
  enum class Top {
    kNone,
    kAttempts,
    kBackoff,
    kRemoveOnComplete,
    kRemoveOnFail,
    kDelay,
    kPriority
  };
  enum class Sub { kNone, kType, kDelay, kCount };

  static Top TopOf(std::string_view k) {
    if (k == "attempts") return Top::kAttempts;
    if (k == "backoff") return Top::kBackoff;
    if (k == "removeOnComplete") return Top::kRemoveOnComplete;
    if (k == "removeOnFail") return Top::kRemoveOnFail;
    if (k == "delay") return Top::kDelay;
    if (k == "priority") return Top::kPriority;
    return Top::kNone;
  }

  // A key of the root object starts that field over from its default.
  void ResetTop() {
    switch (top_) {
      case Top::kAttempts:
        o_->attempts = defaults_.attempts;
        break;
      case Top::kBackoff:
        o_->backoff_type = defaults_.backoff_type;
        o_->backoff_delay_ms = defaults_.backoff_delay_ms;
        break;
      case Top::kRemoveOnComplete:
        o_->remove_on_complete = defaults_.remove_on_complete;
        break;
      case Top::kRemoveOnFail:
        o_->remove_on_fail = defaults_.remove_on_fail;
        break;
      case Top::kDelay:
        o_->delay_ms = defaults_.delay_ms;
        break;
      case Top::kPriority:
        o_->priority = defaults_.priority;
        break;
      case Top::kNone:
        break;
    }
  }

  int* Retention() {
    if (top_ == Top::kRemoveOnComplete) return &o_->remove_on_complete;
    if (top_ == Top::kRemoveOnFail) return &o_->remove_on_fail;
    return nullptr;
  }

  bool Number(double v) {
    if (depth_ == 1) {
      switch (top_) {
        case Top::kAttempts:
          o_->attempts = Saturate<int>(v);
          break;
        case Top::kBackoff:  // a bare number is a fixed delay
          o_->backoff_delay_ms = Saturate<int64_t>(v);
          break;
        case Top::kRemoveOnComplete:
        case Top::kRemoveOnFail:
          *Retention() = std::max(-1, Saturate<int>(v));
          break;
        case Top::kDelay:
          o_->delay_ms = Saturate<int64_t>(v);
          break;
        case Top::kPriority:
          o_->priority = Saturate<int>(v);
          break;
        case Top::kNone:
          break;
      }
    } else if (depth_ == 2 && in_object_at_2_) {
      if (top_ == Top::kBackoff && sub_ == Sub::kDelay) o_->backoff_delay_ms = Saturate<int64_t>(v);
      if (Retention() != nullptr && sub_ == Sub::kCount) {
        *Retention() = std::max(-1, Saturate<int>(v));
      }
    }
    return true;
  }

  bool Enter(bool object) {
    ++depth_;
    if (depth_ == 2) {
      in_object_at_2_ = object;
      sub_ = Sub::kNone;
    }
    return true;
  }
  bool Leave() {
    --depth_;
    return true;
  }

  JobOptions* o_;
  const JobOptions& defaults_;
  int depth_ = 0;
  bool root_is_object_ = false;
  bool in_object_at_2_ = false;  // the value of the current root key is an object
  Top top_ = Top::kNone;
  Sub sub_ = Sub::kNone;
};

}  // namespace

JobOptions ParseJobOptions(std::string_view opts_json) {
  static const JobOptions defaults = BullMqDefaults();
  JobOptions o = defaults;
  OptionsReader reader(&o, defaults);
  if (!json::sax_parse(opts_json.begin(), opts_json.end(), &reader) || !reader.root_is_object()) {
    return defaults;
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
  else if (key == "defa") job->deferred_failure = std::move(value);
}

}  // namespace conveyor::queue::internal
