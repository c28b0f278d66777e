#include "core/log.h"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <sstream>

namespace conveyor {
namespace {

TEST(Log, JsonLinesCarryTheKnownContextOnly) {
  EXPECT_EQ(JsonLogLine("T", "info", "a \"quoted\"\nline", {}),
            R"({"time":"T","level":"info","message":"a \"quoted\"\nline"})");
  EXPECT_EQ(JsonLogLine("T", "warn", "m", {"r1", "j1", ""}),
            R"({"time":"T","level":"warn","message":"m","request_id":"r1","job_id":"j1"})");
}

TEST(Log, ScopedContextNestsAndRestores) {
  {
    ScopedLogContext outer({"req", "", "alice"});
    EXPECT_EQ(CurrentLogContext().request_id, "req");
    {
      ScopedLogContext inner({"", "job", ""});
      EXPECT_EQ(CurrentLogContext().request_id, "req");
      EXPECT_EQ(CurrentLogContext().job_id, "job");
      EXPECT_EQ(CurrentLogContext().user_id, "alice");
    }
    EXPECT_EQ(CurrentLogContext().job_id, "");
  }
  EXPECT_EQ(CurrentLogContext().request_id, "");
}

TEST(Log, TheJsonFormatWritesOneObjectPerLineWithTheContext) {
  std::ostringstream out;
  auto logger = std::make_shared<spdlog::logger>(
      "t", std::make_shared<spdlog::sinks::ostream_sink_mt>(out));
  auto previous = spdlog::default_logger();
  spdlog::set_default_logger(logger);
  ConfigureLogging(LogFormat::kJson);
  {
    ScopedLogContext c({"r-1", "j-1", "u-1"});
    spdlog::info("hello {}", 42);
  }
  spdlog::warn("plain");
  ConfigureLogging(LogFormat::kText);
  spdlog::info("as text");
  spdlog::set_default_logger(previous);
  std::istringstream lines(out.str());
  std::string l1, l2, l3;
  std::getline(lines, l1);
  std::getline(lines, l2);
  std::getline(lines, l3);
  EXPECT_EQ(l1.rfind("{\"time\":\"", 0), 0u) << l1;
  EXPECT_NE(l1.find(R"("level":"info","message":"hello 42","request_id":"r-1","job_id":"j-1","user_id":"u-1"})"),
            std::string::npos)
      << l1;
  EXPECT_NE(l2.find(R"("level":"warning","message":"plain"})"), std::string::npos) << l2;
  EXPECT_NE(l3.find("[info] as text"), std::string::npos) << l3;
}

TEST(Log, RequestIdsAreBoundedAndSafe) {
  EXPECT_TRUE(IsValidRequestId("abc-123_x.y:z"));
  EXPECT_FALSE(IsValidRequestId(""));
  EXPECT_FALSE(IsValidRequestId("a b"));
  EXPECT_FALSE(IsValidRequestId("a\"b"));
  EXPECT_FALSE(IsValidRequestId(std::string(kMaxRequestIdBytes + 1, 'a')));
  EXPECT_TRUE(IsValidRequestId(std::string(kMaxRequestIdBytes, 'a')));
  EXPECT_TRUE(ParseLogFormat("json").ok());
  EXPECT_FALSE(ParseLogFormat("xml").ok());
}

}  // namespace
}  // namespace conveyor
