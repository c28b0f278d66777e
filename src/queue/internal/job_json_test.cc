#include "queue/internal/job_json.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace conveyor::queue::internal
