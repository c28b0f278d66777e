#include "app/config.h"

#include <gtest/gtest.h>

#include <map>

namespace conveyor::app {
namespace {

Result<Config> Load(std::map<std::string, std::string> env) {
  return LoadConfig([&](const std::string& k) -> std::optional<std::string> {
    auto it = env.find(k);
    if (it == env.end()) return std::nullopt;
    return it->second;
  });
}

TEST(Config, DefaultsMatchTheContract) {
  auto c = Load({{"DATA_DIR", "/tmp/cv"}});
  ASSERT_TRUE(c) << c.status().ToString();
  EXPECT_EQ(c->port, 8080);
  EXPECT_EQ(c->redis_host, "localhost");
  EXPECT_EQ(c->redis_port, 6379);
  EXPECT_FALSE(c->redis_host_set);
  EXPECT_EQ(c->max_upload_bytes, 52428800);
  EXPECT_TRUE(c->upload_fsync);
  EXPECT_TRUE(c->extract_fork_server);
  EXPECT_EQ(c->worker_concurrency, 2);
  EXPECT_EQ(c->job_lock_ms, 30000);
  EXPECT_EQ(c->stalled_interval_ms, 30000);
  EXPECT_EQ(c->queue_prefix, "bull");
  EXPECT_EQ(c->queue_name, "file-upload");
  EXPECT_EQ(c->database_url, "sqlite:///tmp/cv/conveyor.db");
  EXPECT_EQ(c->storage_dir, "/tmp/cv/uploads");
  EXPECT_GE(c->http_threads, 1);
}

TEST(Config, ReadsValues) {
  auto c = Load({{"PORT", "9000"}, {"UPLOAD_FSYNC", "false"}, {"REDIS_HOST", "127.0.0.1"},
                 {"MAX_UPLOAD_BYTES", "1048576"}, {"WORKER_CONCURRENCY", "8"},
                 {"EXTRACT_FORK_SERVER", "off"}});
  ASSERT_TRUE(c);
  EXPECT_EQ(c->port, 9000);
  EXPECT_FALSE(c->extract_fork_server);
  EXPECT_FALSE(c->upload_fsync);
  EXPECT_TRUE(c->redis_host_set);
  EXPECT_EQ(c->max_upload_bytes, 1048576);
  EXPECT_EQ(c->worker_concurrency, 8);
}

TEST(Config, BadValueNamesTheVariableAndRange) {
  for (auto [k, v] : std::map<std::string, std::string>{{"PORT", "http"},
                                                        {"PORT", "70000"},
                                                        {"PORT", "80x"},
                                                        {"PORT", ""},
                                                        {"MAX_UPLOAD_BYTES", "0"},
                                                        {"UPLOAD_FSYNC", "maybe"},
                                                        {"WORKER_CONCURRENCY", "-1"},
                                                        {"DATABASE_URL", "mysql://x"},
                                                        {"QUEUE_NAME", ""},
                                                        {"SANDBOX_UID", "-2"},
                                                        {"SANDBOX_REQUIRE", ""}}) {
    auto c = Load({{k, v}});
    ASSERT_FALSE(c) << k << "=" << v;
    EXPECT_EQ(c.code(), Errc::kInvalidArgument);
    EXPECT_NE(c.status().message().find(k), std::string::npos) << c.status().message();
  }
}

TEST(Config, TableDocumentsEverySetting) {
  bool saw_port = false;
  for (const auto& s : SettingsTable()) {
    EXPECT_FALSE(s.meaning.empty()) << s.name;
    saw_port |= s.name == "PORT";
  }
  EXPECT_TRUE(saw_port);
}

}  // namespace
}  // namespace conveyor::app
