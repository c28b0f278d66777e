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
  EXPECT_TRUE(c->extract_lean_server);
  EXPECT_EQ(c->extract_max_input_bytes, 64 << 20);
  EXPECT_EQ(c->worker_concurrency, 2);
  EXPECT_EQ(c->job_lock_ms, 30000);
  EXPECT_EQ(c->stalled_interval_ms, 30000);
  EXPECT_EQ(c->queue_prefix, "bull");
  EXPECT_EQ(c->queue_name, "file-upload");
  EXPECT_EQ(c->database_url, "sqlite:///tmp/cv/conveyor.db");
  EXPECT_EQ(c->storage_dir, "/tmp/cv/uploads");
  EXPECT_GE(c->http_threads, 1);
}

TEST(Config, ObjectStorageSettings) {
  // Unset: the local store, no S3 setting needed.
  auto local = Load({{"DATA_DIR", "/tmp/cv"}});
  ASSERT_TRUE(local) << local.status().ToString();
  EXPECT_EQ(local->storage_url, "");
  EXPECT_EQ(local->temp_dir, "/tmp/cv/tmp");
  EXPECT_EQ(local->s3_part_size, 8 << 20);
  EXPECT_EQ(local->s3_region, "us-east-1");

  // The AWS_* variables stand in for the S3_* ones that are not set.
  auto aws = Load({{"STORAGE_URL", "s3://b/p"}, {"AWS_ENDPOINT_URL", "http://minio:9000"},
                   {"AWS_DEFAULT_REGION", "eu-west-1"}, {"AWS_ACCESS_KEY_ID", "ak"},
                   {"AWS_SECRET_ACCESS_KEY", "sk"}, {"S3_FORCE_PATH_STYLE", "true"}});
  ASSERT_TRUE(aws) << aws.status().ToString();
  EXPECT_EQ(aws->storage_url, "s3://b/p");
  EXPECT_EQ(aws->s3_endpoint, "http://minio:9000");
  EXPECT_EQ(aws->s3_region, "eu-west-1");
  EXPECT_EQ(aws->s3_access_key_id, "ak");
  EXPECT_EQ(aws->s3_secret_access_key, "sk");
  EXPECT_TRUE(aws->s3_force_path_style);
  auto own = Load({{"S3_REGION", "auto"}, {"AWS_REGION", "eu-west-1"},
                   {"S3_ACCESS_KEY_ID", "mine"}, {"AWS_ACCESS_KEY_ID", "theirs"}});
  ASSERT_TRUE(own);
  EXPECT_EQ(own->s3_region, "auto");
  EXPECT_EQ(own->s3_access_key_id, "mine");

  // S3's smallest part is enforced; STORAGE_URL must be s3://.
  EXPECT_FALSE(Load({{"S3_PART_SIZE", "5242879"}}));
  EXPECT_TRUE(Load({{"S3_PART_SIZE", "5242880"}}));
  EXPECT_FALSE(Load({{"STORAGE_URL", "/var/uploads"}}));
}

TEST(Config, ReadsValues) {
  auto c = Load({{"PORT", "9000"}, {"UPLOAD_FSYNC", "false"}, {"REDIS_HOST", "127.0.0.1"},
                 {"MAX_UPLOAD_BYTES", "1048576"}, {"WORKER_CONCURRENCY", "8"},
                 {"EXTRACT_FORK_SERVER", "off"}, {"EXTRACT_MAX_INPUT_BYTES", "268435456"},
                 {"EXTRACT_LEAN_SERVER", "off"}});
  ASSERT_TRUE(c);
  EXPECT_EQ(c->port, 9000);
  EXPECT_EQ(c->extract_max_input_bytes, 268435456);
  EXPECT_FALSE(c->extract_fork_server);
  EXPECT_FALSE(c->extract_lean_server);
  EXPECT_FALSE(c->upload_fsync);
  EXPECT_TRUE(c->redis_host_set);
  EXPECT_EQ(c->max_upload_bytes, 1048576);
  EXPECT_EQ(c->worker_concurrency, 8);
}

TEST(Config, UploadLimitsAndPriorities) {
  auto d = Load({{"DATA_DIR", "/tmp/cv"}});
  ASSERT_TRUE(d) << d.status().ToString();
  EXPECT_EQ(d->rate_limit_per_minute, 600);
  EXPECT_TRUE(d->shared_limits);
  EXPECT_EQ(d->upload_bytes_per_hour, int64_t{10} << 30);
  EXPECT_EQ(d->uploads_in_flight_per_user, 1000);
  EXPECT_EQ(d->upload_reservation_s, 600);
  EXPECT_EQ(d->priority_aging_ms, 60000);
  EXPECT_EQ(d->priority_in_flight_step, 10);
  auto c = Load({{"SHARED_LIMITS", "false"}, {"UPLOAD_BYTES_PER_HOUR", "0"},
                 {"UPLOADS_IN_FLIGHT_PER_USER", "5"}, {"UPLOAD_RESERVATION_S", "30"},
                 {"PRIORITY_AGING_MS", "0"}, {"PRIORITY_IN_FLIGHT_STEP", "3"}});
  ASSERT_TRUE(c) << c.status().ToString();
  EXPECT_FALSE(c->shared_limits);
  EXPECT_EQ(c->upload_bytes_per_hour, 0);
  EXPECT_EQ(c->uploads_in_flight_per_user, 5);
  EXPECT_EQ(c->upload_reservation_s, 30);
  EXPECT_EQ(c->priority_aging_ms, 0);
  EXPECT_EQ(c->priority_in_flight_step, 3);
  auto bad = Load({{"UPLOAD_RESERVATION_S", "0"}});
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.status().message().find("UPLOAD_RESERVATION_S"), std::string::npos);
}

TEST(Config, SentinelsAreAListOfHostPortWithAMasterName) {
  auto none = Load({{"DATA_DIR", "/tmp/cv"}});
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->redis_sentinels.empty());
  auto c = Load({{"REDIS_SENTINELS", "10.0.0.1:26379, s2 ,[::1]:26380"},
                 {"REDIS_SENTINEL_MASTER", "conveyor"},
                 {"REDIS_SENTINEL_PASSWORD", "pw"}});
  ASSERT_TRUE(c) << c.status().ToString();
  using HostPort = std::pair<std::string, int>;
  EXPECT_EQ(c->redis_sentinels, (std::vector<HostPort>{{"10.0.0.1", 26379},
                                                       {"s2", 26379},
                                                       {"::1", 26380}}));
  EXPECT_EQ(c->redis_sentinel_master, "conveyor");
  EXPECT_EQ(c->redis_sentinel_password, "pw");
  for (const char* bad : {"a:1,,b:2", "a:0", "a:x", ":26379", "::1:26379", "[::1", "a:"}) {
    auto r = Load({{"REDIS_SENTINELS", bad}, {"REDIS_SENTINEL_MASTER", "m"}});
    ASSERT_FALSE(r) << bad;
    EXPECT_NE(r.status().message().find("REDIS_SENTINELS"), std::string::npos) << bad;
  }
  // One without the other is a mistake, named at start-up.
  auto no_master = Load({{"REDIS_SENTINELS", "s1:26379"}});
  ASSERT_FALSE(no_master);
  EXPECT_NE(no_master.status().message().find("REDIS_SENTINEL_MASTER"), std::string::npos);
  auto no_sentinels = Load({{"REDIS_SENTINEL_MASTER", "m"}});
  ASSERT_FALSE(no_sentinels);
  EXPECT_NE(no_sentinels.status().message().find("REDIS_SENTINELS"), std::string::npos);
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
