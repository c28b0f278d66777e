#include "queue/internal/job_json.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace conveyor::queue::internal {
namespace {

TEST(JobJson, RoundTripsConveyorDefaults) {
  JobOptions o = ParseJobOptions(JobOptionsToJson("a-b", JobOptions{}));
  EXPECT_EQ(o.attempts, 3);
  EXPECT_EQ(o.backoff_type, BackoffType::kExponential);
  EXPECT_EQ(o.backoff_delay_ms, 5000);
  EXPECT_EQ(o.remove_on_complete, 1000);
  EXPECT_EQ(o.remove_on_fail, 1000);
  EXPECT_EQ(o.delay_ms, 0);
}

TEST(JobJson, ReadsLuaCjsonArtefacts) {
  JobOptions o = ParseJobOptions(
      R"({"removeOnFail":{"age":3600,"count":10},"jobId":"a\/b","backoff":{"delay":1.2345678901234e+14,"type":"fixed"},"attempts":2,"removeOnComplete":true,"x":{}})");
  EXPECT_EQ(o.attempts, 2);
  EXPECT_EQ(o.backoff_type, BackoffType::kFixed);
  EXPECT_EQ(o.backoff_delay_ms, 123456789012340);
  EXPECT_EQ(o.remove_on_complete, 0);
  EXPECT_EQ(o.remove_on_fail, 10);
}

TEST(JobJson, MissingOrBrokenOptsTakeBullMqDefaults) {
  for (const char* text : {"{}", "", "not json", "[1]"}) {
    JobOptions o = ParseJobOptions(text);
    EXPECT_EQ(o.attempts, 0) << text;
    EXPECT_EQ(o.backoff_delay_ms, 0) << text;
    EXPECT_EQ(o.remove_on_complete, -1) << text;
    EXPECT_EQ(o.remove_on_fail, -1) << text;
  }
  EXPECT_EQ(ParseJobOptions(R"({"backoff":700})").backoff_delay_ms, 700);
  EXPECT_EQ(ParseJobOptions(R"({"removeOnComplete":false})").remove_on_complete, -1);
}

TEST(JobJson, WritesRetentionAsBullMqDoes) {
  JobOptions o;
  o.remove_on_complete = 0;
  o.remove_on_fail = -1;
  o.delay_ms = 250;
  std::string text = JobOptionsToJson("id-1", o);
  EXPECT_NE(text.find(R"("removeOnComplete":true)"), std::string::npos) << text;
  EXPECT_NE(text.find(R"("removeOnFail":false)"), std::string::npos) << text;
  EXPECT_NE(text.find(R"("delay":250)"), std::string::npos) << text;
}

// Any producer may write the options; numbers beyond int/int64 saturate
// (casting them was undefined behaviour).
TEST(JobJson, OutOfRangeNumbersSaturate) {
  JobOptions o = ParseJobOptions(
      R"({"attempts":1e10,"backoff":{"type":"exponential","delay":1e300},)"
      R"("removeOnComplete":-5e9,"removeOnFail":{"count":3e9},"delay":-1e19})");
  EXPECT_EQ(o.attempts, std::numeric_limits<int>::max());
  EXPECT_EQ(o.backoff_delay_ms, std::numeric_limits<int64_t>::max());
  EXPECT_EQ(o.remove_on_complete, -1);
  EXPECT_EQ(o.remove_on_fail, std::numeric_limits<int>::max());
  EXPECT_EQ(o.delay_ms, std::numeric_limits<int64_t>::min());
  EXPECT_EQ(ParseJobOptions(R"({"attempts":-1e10})").attempts, std::numeric_limits<int>::min());
  EXPECT_EQ(ParseJobOptions(R"({"backoff":-1e300})").backoff_delay_ms,
            std::numeric_limits<int64_t>::min());
}

TEST(JobJson, ReadsJobHashFields) {
  ActiveJob job;
  for (auto [k, v] : {std::pair{"name", "file-upload"}, std::pair{"data", "{}"},
                      std::pair{"opts", R"({"attempts":2})"}, std::pair{"timestamp", "1700000000000"},
                      std::pair{"attemptsMade", "4"}, std::pair{"atm", "1"}, std::pair{"ats", "2"},
                      std::pair{"stc", "x"}, std::pair{"defa", "stalled"}, std::pair{"other", "?"}}) {
    ReadJobField(k, v, &job);
  }
  EXPECT_EQ(job.name, "file-upload");
  EXPECT_EQ(job.data_json, "{}");
  EXPECT_EQ(job.opts_json, R"({"attempts":2})");
  EXPECT_EQ(job.timestamp_ms, 1700000000000);
  EXPECT_EQ(job.attempts_made, 1);  // atm wins over the older attemptsMade
  EXPECT_EQ(job.attempts_started, 2);
  EXPECT_EQ(job.stalled_count, 0);  // not a number
  EXPECT_EQ(job.deferred_failure, "stalled");
}

TEST(JobJson, HashCountsBeyondIntSaturate) {
  ActiveJob job;
  ReadJobField("atm", "99999999999", &job);
  EXPECT_EQ(job.attempts_made, std::numeric_limits<int>::max());
  ReadJobField("stc", "-99999999999", &job);
  EXPECT_EQ(job.stalled_count, std::numeric_limits<int>::min());
}


// What ParseJobOptions answered when it read a parsed document: the
// reference the streaming reader is held to.
template <class T>
T SaturateRef(double v) {
  constexpr T kMin = std::numeric_limits<T>::min();
  constexpr T kMax = std::numeric_limits<T>::max();
  if (std::isnan(v)) return 0;
  if (v <= static_cast<double>(kMin)) return kMin;
  if (v >= -static_cast<double>(kMin)) return kMax;
  return static_cast<T>(v);
}

int RetentionRef(const nlohmann::json& j) {
  if (j.is_boolean()) return j.get<bool>() ? 0 : -1;
  if (j.is_number()) return std::max(-1, SaturateRef<int>(j.get<double>()));
  if (j.is_object()) {
    auto count = j.find("count");
    if (count != j.end() && count->is_number()) {
      return std::max(-1, SaturateRef<int>(count->get<double>()));
    }
  }
  return -1;
}

JobOptions ParseByDocument(const std::string& text) {
  JobOptions o;
  o.attempts = 0;
  o.backoff_type = BackoffType::kFixed;
  o.backoff_delay_ms = 0;
  o.remove_on_complete = -1;
  o.remove_on_fail = -1;
  o.delay_ms = 0;
  auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return o;
  if (auto it = j.find("attempts"); it != j.end() && it->is_number()) {
    o.attempts = SaturateRef<int>(it->get<double>());
  }
  if (auto it = j.find("backoff"); it != j.end()) {
    if (it->is_number()) {
      o.backoff_delay_ms = SaturateRef<int64_t>(it->get<double>());
    } else if (it->is_object()) {
      auto type = it->find("type");
      if (type != it->end() && type->is_string() && *type == "exponential") {
        o.backoff_type = BackoffType::kExponential;
      }
      auto delay = it->find("delay");
      if (delay != it->end() && delay->is_number()) {
        o.backoff_delay_ms = SaturateRef<int64_t>(delay->get<double>());
      }
    }
  }
  if (auto it = j.find("removeOnComplete"); it != j.end()) o.remove_on_complete = RetentionRef(*it);
  if (auto it = j.find("removeOnFail"); it != j.end()) o.remove_on_fail = RetentionRef(*it);
  if (auto it = j.find("delay"); it != j.end() && it->is_number()) {
    o.delay_ms = SaturateRef<int64_t>(it->get<double>());
  }
  if (auto it = j.find("priority"); it != j.end() && it->is_number()) {
    o.priority = SaturateRef<int>(it->get<double>());
  }
  return o;
}

void ExpectSame(const std::string& text) {
  JobOptions a = ParseJobOptions(text), b = ParseByDocument(text);
  EXPECT_EQ(a.attempts, b.attempts) << text;
  EXPECT_EQ(a.backoff_type, b.backoff_type) << text;
  EXPECT_EQ(a.backoff_delay_ms, b.backoff_delay_ms) << text;
  EXPECT_EQ(a.remove_on_complete, b.remove_on_complete) << text;
  EXPECT_EQ(a.remove_on_fail, b.remove_on_fail) << text;
  EXPECT_EQ(a.delay_ms, b.delay_ms) << text;
  EXPECT_EQ(a.priority, b.priority) << text;
}

// Random options objects: the keys that count and others, repeated keys,
// values of every type, nested objects and arrays where numbers are expected.
std::string RandomValue(std::mt19937& rng, int depth);

std::string RandomObject(std::mt19937& rng, int depth) {
  static const char* const kKeys[] = {"attempts",
                                      "backoff",
                                      "removeOnComplete",
                                      "removeOnFail",
                                      "delay",
                                      "priority",
                                      "type",
                                      "count",
                                      "jobId",
                                      "x"};
  std::string out = "{";
  const int n = static_cast<int>(rng() % 6);
  for (int i = 0; i < n; ++i) {
    if (i > 0) out += ",";
    out += "\"" + std::string(kKeys[rng() % 10]) + "\":" + RandomValue(rng, depth + 1);
  }
  return out + "}";
}

std::string RandomValue(std::mt19937& rng, int depth) {
  static const char* const kScalars[] = {"0",
                                         "3",
                                         "-7",
                                         "2.5",
                                         "1e10",
                                         "-1e300",
                                         "1e19",
                                         "18446744073709551615",
                                         "-0.0",
                                         "true",
                                         "false",
                                         "null",
                                         "\"exponential\"",
                                         "\"fixed\"",
                                         "\"7\""};
  const unsigned pick = rng() % 10;
  if (depth < 3 && pick < 3) return RandomObject(rng, depth);
  if (depth < 3 && pick == 3) {
    return "[" + RandomValue(rng, depth + 1) + "," + RandomValue(rng, depth + 1) + "]";
  }
  return kScalars[rng() % 15];
}

TEST(JobJson, StreamingReaderAnswersAsTheDocumentReaderOnRandomOptions) {
  std::mt19937 rng(20261130);
  for (int i = 0; i < 20000; ++i) ExpectSame(RandomObject(rng, 0));
  for (const char* other : {"[]", "5", "\"s\"", "null", "", " ", "{}", "{} {}", "{\"a\":1}x"}) {
    ExpectSame(other);
  }
}

TEST(JobJson, StreamingReaderAnswersAsTheDocumentReaderOnEveryPrefix) {
  const std::string full =
      R"({"attempts":4,"backoff":{"type":"exponential","delay":1500},"removeOnComplete":)"
      R"({"age":10,"count":12},"removeOnFail":true,"delay":250,"priority":9,"jobId":"a\"b"})";
  for (size_t n = 0; n <= full.size(); ++n) ExpectSame(full.substr(0, n));
}

}  // namespace
}  // namespace conveyor::queue::internal
