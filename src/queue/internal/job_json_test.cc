#include "queue/internal/job_json.h"

#include <gtest/gtest.h>

#include <limits>
#include <utility>

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

}  // namespace
}  // namespace conveyor::queue::internal
