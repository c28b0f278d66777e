// File: app/config.h
//
// Every setting conveyor reads from the environment, in one table
// (config.cc): name, default, bounds, and what it means. Only src/app reads
// the environment; everything else receives a settings struct.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"

namespace conveyor::app {

struct Config {
  // HTTP
  int port = 8080;
  std::string bind_address = "0.0.0.0";
  int http_threads = 0;                    // 0: one per core
  int blocking_threads = 4;                // API pool for SQLite/Redis/fsync calls
  int64_t max_upload_bytes = 52428800;     // MAX_UPLOAD_BYTES (file size limit)
  int64_t max_header_bytes = 16384;        // request header block
  int64_t header_timeout_ms = 10000;       // to receive the request header
  int64_t body_idle_timeout_ms = 30000;    // longest silence while a body streams
  int64_t shutdown_grace_ms = 10000;       // in-flight requests after SIGTERM
  int rate_limit_per_minute = 600;         // uploads per user per minute (0: off)
  bool shared_limits = true;               // SHARED_LIMITS: per-user limits held in Redis
  int64_t upload_bytes_per_hour = 10737418240;  // per user (0: off; shared limits only)
  int uploads_in_flight_per_user = 1000;   // accepted, not final (0: off; shared limits only)
  int64_t upload_reservation_s = 600;      // an upload without a job counts this long
  int64_t priority_aging_ms = 60000;       // prioritized jobs older join the aging turn
  int priority_in_flight_step = 10;        // user's jobs in flight per priority step
  bool upload_fsync = true;                // fsync the upload before 202
  int upload_commit_max_rows = 128;        // rows per group-commit transaction
  int max_connections = 10000;             // open HTTP connections at once
  int max_connections_per_client = 256;    // per client IP address (0: off)
  int64_t keepalive_timeout_ms = 15000;    // silence allowed between two requests
  int64_t body_min_rate_bytes = 32768;     // body bytes due per rate window (0: off)
  int64_t body_rate_window_ms = 30000;     // the window of body_min_rate_bytes
  int64_t max_chunk_line_bytes = 4096;     // chunk-size line with extensions
  int64_t max_trailer_bytes = 8192;        // trailer section of a chunked body
  int64_t linger_idle_ms = 5000;           // lingering close: silence that ends it
  int64_t linger_max_ms = 30000;           // lingering close: longest
  std::string metrics_token;               // /metrics needs "Bearer <this>" when set
  int metrics_port = 9464;                 // worker's /metrics and /healthz (0: a free port, -1: off)
  std::string log_format = "text";         // text | json (core/log.h)
  int64_t status_cache_entries = 10000;    // final job states cached per process (0: off)
  int64_t status_cache_bytes = 16777216;   // their bytes at most
  int64_t status_cache_ttl_ms = 1000;      // how long one is used after its read (0: off)
  int64_t push_queue_messages = 256;       // push: messages waiting per client, then close
  int64_t push_ping_interval_ms = 20000;   // push: SSE comment / WebSocket ping interval
  int64_t push_write_timeout_ms = 10000;   // push: longest SSE write
  int64_t ws_max_subscriptions = 1000;     // push: jobs one WebSocket watches at most
  int64_t ws_max_message_bytes = 65536;    // push: largest WebSocket client message

  // Redis / queue
  std::string redis_host = "localhost";
  int redis_port = 6379;
  std::string redis_password;
  bool redis_host_set = false;             // REDIS_HOST given (dev starts its own otherwise)
  // REDIS_SENTINELS: the sentinels (host, port) that name the master; when
  // set, REDIS_HOST and REDIS_PORT are not used.
  std::vector<std::pair<std::string, int>> redis_sentinels;
  std::string redis_sentinel_master;       // the master's name at the sentinels
  std::string redis_sentinel_password;     // AUTH of the sentinels
  std::string queue_prefix = "bull";
  std::string queue_name = "file-upload";

  // Storage
  std::string data_dir = "./data";
  std::string database_url;                // default: sqlite:///<data_dir>/conveyor.db
  std::string storage_dir;                 // default: <data_dir>/uploads
  int64_t storage_temp_max_age_ms = 3600000;   // cut-off upload temp files older are removed
  int64_t storage_orphan_min_age_ms = 600000;  // stored uploads without a row older are removed
  int64_t storage_sweep_interval_ms = 300000;  // period of the storage sweeper (0: start-up only)
  std::string storage_url;                 // STORAGE_URL: "" (STORAGE_DIR) or s3://bucket/prefix
  std::string temp_dir;                    // default: <data_dir>/tmp (objects copied for the parser)
  std::string s3_endpoint;                 // S3_ENDPOINT / AWS_ENDPOINT_URL ("": AWS)
  std::string s3_region = "us-east-1";     // S3_REGION / AWS_REGION / AWS_DEFAULT_REGION
  std::string s3_access_key_id;            // S3_ACCESS_KEY_ID / AWS_ACCESS_KEY_ID
  std::string s3_secret_access_key;        // S3_SECRET_ACCESS_KEY / AWS_SECRET_ACCESS_KEY
  bool s3_force_path_style = false;        // https://host/bucket/key addressing
  int64_t s3_part_size = 8LL << 20;        // multipart part size (>= 5 MiB)
  int64_t s3_multipart_max_age_ms = 86400000;  // older multipart uploads are aborted by the sweeper
  std::string tus_dir;                     // default: <data_dir>/tus (partial tus uploads)
  int64_t tus_expiration_ms = 86400000;    // an unfinished tus upload idle this long is removed
  int64_t tus_sweep_interval_ms = 60000;   // period of the expired-upload sweep (0: start-up only)

  // Auth
  std::string jwt_secret;                  // required by `api`, >= 32 bytes
  bool jwt_require_exp = true;             // refuse tokens without `exp`

  // Worker
  int worker_concurrency = 2;
  int64_t job_lock_ms = 30000;
  int64_t stalled_interval_ms = 30000;
  int64_t reconcile_interval_ms = 30000;   // re-add pending rows with no job
  int worker_max_stalled_count = 10;       // stalled recoveries before a job fails
  int64_t worker_outage_wait_ms = 600000;  // an outage waited out within one attempt
  int64_t job_timeout_ms = 0;              // whole job wall clock; 0: only the sandbox's bounds
  int64_t processing_delay_ms = 0;         // fault injection for tests: pause before each job

  // Sandboxed extraction (worker/sandbox.h): limits of the parser child
  int64_t extract_timeout_ms = 60000;      // wall clock per file; the child is killed past it
  int64_t extract_memory_mb = 1024;        // child's address space (RLIMIT_AS)
  int64_t extract_cpu_seconds = 60;        // child's CPU time (RLIMIT_CPU)
  int64_t extract_max_output_bytes = 64LL << 20;  // child's stdout+stderr; more is "too large"
  int64_t extract_max_input_bytes = 64LL << 20;   // larger files fail as over the processing limit
  bool extract_fork_server = true;         // children forked by the extract server, or spawned
  bool extract_lean_server = true;         // text-shaped files to the lean server first
  int64_t sandbox_uid = 65534;             // the child's account when the worker is root; -1: keep
  std::string sandbox_require = "none";    // none | all | comma-separated layers (worker/confine.h)

  // Analysis provider (processing/analyzer.h)
  std::string ai_provider = "local";       // local | openai
  std::string ai_base_url = "https://api.openai.com/v1";  // OpenAI-compatible API root
  std::string ai_api_key;                  // bearer token of the provider (may be empty)
  std::string ai_model = "gpt-4o-mini";    // model name sent to the provider
  int64_t ai_timeout_ms = 30000;           // whole request to the provider
  int64_t ai_max_input_chars = 12000;      // extracted text sent to the provider is cut here
};

// One row of the settings table, for `conveyor --help-env` and the README.
struct SettingDoc {
  std::string name;
  std::string default_value;
  std::string meaning;
};
const std::vector<SettingDoc>& SettingsTable();

// Reads every setting through `getenv` (a function so tests can pass a map),
// applies defaults and bounds. kInvalidArgument naming the variable and the
// accepted range for a bad value.
using GetEnv = std::function<std::optional<std::string>(const std::string&)>;

// "host:port,host:port,…" (REDIS_SENTINELS): spaces around items ignored,
// an IPv6 host in brackets ("[::1]:26379"), the port 26379 when left out.
Result<std::vector<std::pair<std::string, int>>> ParseHostPortList(const std::string& name,
                                                                  const std::string& list);
Result<Config> LoadConfig(const GetEnv& getenv);

// LoadConfig over the process environment.
Result<Config> LoadConfigFromEnvironment();

}  // namespace conveyor::app
