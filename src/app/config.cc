#include "app/config.h"

#include "core/log.h"

#include <charconv>
#include <cstdlib>
#include <filesystem>
#include <initializer_list>
#include <limits>
#include <thread>

namespace conveyor::app {
namespace {

// A setting: how to read it into Config, with its default and bounds.
struct Setting {
  const char* name;
  const char* default_value;  // as text, for documentation
  const char* meaning;
  std::function<Status(const std::string&, Config&)> apply;
};

Result<int64_t> ParseInt(const std::string& name, const std::string& v, int64_t lo, int64_t hi) {
  int64_t out = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (ec != std::errc() || p != v.data() + v.size() || v.empty() || out < lo || out > hi) {
    return InvalidArgument(name + "=\"" + v + "\" is not an integer in [" + std::to_string(lo) +
                           ", " + std::to_string(hi) + "]");
  }
  return out;
}

Result<bool> ParseBool(const std::string& name, const std::string& v) {
  if (v == "1" || v == "true" || v == "yes" || v == "on") return true;
  if (v == "0" || v == "false" || v == "no" || v == "off") return false;
  return InvalidArgument(name + "=\"" + v + "\" is not a boolean (true/false/1/0/yes/no/on/off)");
}

template <class T>
std::function<Status(const std::string&, Config&)> Int(const char* name, T Config::*field,
                                                       int64_t lo, int64_t hi) {
  return [=](const std::string& v, Config& c) -> Status {
    auto r = ParseInt(name, v, lo, hi);
    if (!r) return r.status();
    c.*field = static_cast<T>(*r);
    return OkStatus();
  };
}

std::function<Status(const std::string&, Config&)> Bool(const char* name, bool Config::*field) {
  return [=](const std::string& v, Config& c) -> Status {
    auto r = ParseBool(name, v);
    if (!r) return r.status();
    c.*field = *r;
    return OkStatus();
  };
}

std::function<Status(const std::string&, Config&)> Str(const char* name, std::string Config::*field,
                                                       bool allow_empty) {
  return [=](const std::string& v, Config& c) -> Status {
    if (!allow_empty && v.empty()) return InvalidArgument(std::string(name) + " must not be empty");
    c.*field = v;
    return OkStatus();
  };
}

constexpr int64_t kMaxInt = std::numeric_limits<int>::max();
// Shortest JWT_SECRET accepted (http::kMinSecretBytes; src/app does not
// depend on the HTTP parsing library for one constant).
constexpr size_t kMinJwtSecretBytes = 32;

const std::vector<Setting>& Table() {
  static const std::vector<Setting> table = {
      {"PORT", "8080", "HTTP port of `api` and `dev` (0 picks a free port)",
       Int("PORT", &Config::port, 0, 65535)},
      {"BIND_ADDRESS", "0.0.0.0", "address the HTTP server listens on",
       Str("BIND_ADDRESS", &Config::bind_address, false)},
      {"HTTP_THREADS", "0", "threads serving sockets; 0 means one per core",
       Int("HTTP_THREADS", &Config::http_threads, 0, 256)},
      {"BLOCKING_THREADS", "4",
       "API threads that run database, Redis and fsync calls (never the socket threads)",
       Int("BLOCKING_THREADS", &Config::blocking_threads, 1, 256)},
      {"MAX_UPLOAD_BYTES", "52428800", "largest accepted file (bytes); larger uploads get 413",
       Int("MAX_UPLOAD_BYTES", &Config::max_upload_bytes, 1, int64_t{1} << 40)},
      {"MAX_HEADER_BYTES", "16384", "largest request header block (bytes); larger gets 431",
       Int("MAX_HEADER_BYTES", &Config::max_header_bytes, 1024, 1 << 20)},
      {"HEADER_TIMEOUT_MS", "10000", "time allowed to send the request header",
       Int("HEADER_TIMEOUT_MS", &Config::header_timeout_ms, 100, 3600000)},
      {"BODY_IDLE_TIMEOUT_MS", "30000", "longest silence allowed while a body streams",
       Int("BODY_IDLE_TIMEOUT_MS", &Config::body_idle_timeout_ms, 100, 3600000)},
      {"SHUTDOWN_GRACE_MS", "10000", "time in-flight requests get after SIGTERM",
       Int("SHUTDOWN_GRACE_MS", &Config::shutdown_grace_ms, 0, 600000)},
      {"RATE_LIMIT_PER_MINUTE", "600",
       "uploads one user may start per minute (a bucket that refills continuously), across "
       "all API processes with SHARED_LIMITS, per process otherwise; 0 disables",
       Int("RATE_LIMIT_PER_MINUTE", &Config::rate_limit_per_minute, 0, kMaxInt)},
      {"SHARED_LIMITS", "true",
       "per-user upload limits held in Redis and shared by every API process (one Lua call "
       "per upload); false: RATE_LIMIT_PER_MINUTE per process only",
       Bool("SHARED_LIMITS", &Config::shared_limits)},
      {"UPLOAD_BYTES_PER_HOUR", "10737418240",
       "upload bytes (Content-Length) one user may send per hour (a bucket that refills "
       "continuously); SHARED_LIMITS only; 0 disables",
       Int("UPLOAD_BYTES_PER_HOUR", &Config::upload_bytes_per_hour, 0, int64_t{1} << 50)},
      {"UPLOADS_IN_FLIGHT_PER_USER", "1000",
       "uploads of one user accepted and not yet completed or finally failed; SHARED_LIMITS "
       "only; 0 disables",
       Int("UPLOADS_IN_FLIGHT_PER_USER", &Config::uploads_in_flight_per_user, 0, kMaxInt)},
      {"UPLOAD_RESERVATION_S", "600",
       "an upload let in whose job does not exist (yet) counts as in flight for this long (its "
       "body is still arriving, or its API process died)",
       Int("UPLOAD_RESERVATION_S", &Config::upload_reservation_s, 1, 86400)},
      {"PRIORITY_AGING_MS", "60000",
       "a prioritized job waiting longer joins the aging turn: every second fetch serves the "
       "longest overdue job whatever its priority; 0 disables",
       Int("PRIORITY_AGING_MS", &Config::priority_aging_ms, 0, int64_t{7} * 86400000)},
      {"PRIORITY_IN_FLIGHT_STEP", "10",
       "each this many uploads a user has in flight lower the priority of the user's next "
       "upload by one step; 0 disables",
       Int("PRIORITY_IN_FLIGHT_STEP", &Config::priority_in_flight_step, 0, kMaxInt)},
      {"UPLOAD_FSYNC", "true", "fsync an upload before answering 202 (survives power loss)",
       Bool("UPLOAD_FSYNC", &Config::upload_fsync)},
      {"UPLOAD_COMMIT_MAX_ROWS", "128",
       "most rows of uploads that finish together committed in one transaction (and their jobs "
       "added in one pipelined Redis round trip)",
       Int("UPLOAD_COMMIT_MAX_ROWS", &Config::upload_commit_max_rows, 1, 4096)},
      {"MAX_CONNECTIONS", "10000",
       "open HTTP connections at once; past it the longest-idle keep-alive connection is "
       "closed, or the newcomer gets 503 (kept below the open-files limit)",
       Int("MAX_CONNECTIONS", &Config::max_connections, 1, 1000000)},
      {"MAX_CONNECTIONS_PER_CLIENT", "256",
       "open HTTP connections from one client IP address; more get 503; 0 disables",
       Int("MAX_CONNECTIONS_PER_CLIENT", &Config::max_connections_per_client, 0, 1000000)},
      {"KEEPALIVE_TIMEOUT_MS", "15000",
       "an idle keep-alive connection is closed after this long without a new request",
       Int("KEEPALIVE_TIMEOUT_MS", &Config::keepalive_timeout_ms, 100, 3600000)},
      {"BODY_MIN_RATE_BYTES", "32768",
       "bytes a request body must deliver per BODY_RATE_WINDOW_MS (pro rata), else 408 and "
       "close; 0 disables",
       Int("BODY_MIN_RATE_BYTES", &Config::body_min_rate_bytes, 0, int64_t{1} << 40)},
      {"BODY_RATE_WINDOW_MS", "30000", "window over which BODY_MIN_RATE_BYTES is measured",
       Int("BODY_RATE_WINDOW_MS", &Config::body_rate_window_ms, 100, 3600000)},
      {"MAX_CHUNK_LINE_BYTES", "4096",
       "longest chunk-size line of a chunked body, extensions included; longer gets 400",
       Int("MAX_CHUNK_LINE_BYTES", &Config::max_chunk_line_bytes, 64, 1 << 20)},
      {"MAX_TRAILER_BYTES", "8192", "largest trailer section of a chunked body; larger gets 400",
       Int("MAX_TRAILER_BYTES", &Config::max_trailer_bytes, 64, 1 << 20)},
      {"LINGER_IDLE_MS", "5000",
       "after an answer sent before the body was read, unread body is discarded until the "
       "client is silent this long",
       Int("LINGER_IDLE_MS", &Config::linger_idle_ms, 0, 600000)},
      {"LINGER_MAX_MS", "30000", "longest such lingering close",
       Int("LINGER_MAX_MS", &Config::linger_max_ms, 0, 3600000)},
      {"STATUS_CACHE_ENTRIES", "10000",
       "status answers of completed and failed jobs kept per API process, so repeated polls "
       "skip the database; 0 disables",
       Int("STATUS_CACHE_ENTRIES", &Config::status_cache_entries, 0, 10000000)},
      {"STATUS_CACHE_BYTES", "16777216", "memory those cached answers may take at most",
       Int("STATUS_CACHE_BYTES", &Config::status_cache_bytes, 0, int64_t{1} << 36)},
      {"STATUS_CACHE_TTL_MS", "1000",
       "a cached status answer is used for at most this long after its row was read, so a "
       "row changed or removed by another process shows within it; 0 disables",
       Int("STATUS_CACHE_TTL_MS", &Config::status_cache_ttl_ms, 0, 60000)},
      {"PUSH_QUEUE_MESSAGES", "256",
       "push (SSE, WebSocket): messages that may wait for one client; one more disconnects it "
       "(a client that does not read)",
       Int("PUSH_QUEUE_MESSAGES", &Config::push_queue_messages, 1, 1000000)},
      {"PUSH_PING_INTERVAL_MS", "20000",
       "push: an idle SSE stream gets a comment and a WebSocket a ping this often; a WebSocket "
       "silent for twice this is closed",
       Int("PUSH_PING_INTERVAL_MS", &Config::push_ping_interval_ms, 100, 3600000)},
      {"PUSH_WRITE_TIMEOUT_MS", "10000", "push: an SSE write that takes longer closes the stream",
       Int("PUSH_WRITE_TIMEOUT_MS", &Config::push_write_timeout_ms, 100, 3600000)},
      {"WS_MAX_SUBSCRIPTIONS", "1000",
       "jobs one WebSocket connection may watch at once; a subscribe past it is refused",
       Int("WS_MAX_SUBSCRIPTIONS", &Config::ws_max_subscriptions, 1, 1000000)},
      {"WS_MAX_MESSAGE_BYTES", "65536",
       "largest WebSocket message a client may send; larger closes the connection (1009)",
       Int("WS_MAX_MESSAGE_BYTES", &Config::ws_max_message_bytes, 256, 16777216)},
      {"METRICS_TOKEN", "(none)",
       "when set, GET /metrics needs `Authorization: Bearer <METRICS_TOKEN>`",
       Str("METRICS_TOKEN", &Config::metrics_token, true)},
      {"METRICS_PORT", "9464",
       "port of the worker's own `GET /metrics` and `/healthz` (on BIND_ADDRESS; 0 picks a free "
       "port, -1 turns it off); the API serves /metrics on PORT",
       Int("METRICS_PORT", &Config::metrics_port, -1, 65535)},
      {"LOG_FORMAT", "text",
       "`text` (one readable line) or `json` (one JSON object per line: time, level, message, "
       "request_id, job_id, user_id)",
       [](const std::string& v, Config& c) -> Status {
         if (!ParseLogFormat(v).ok()) return InvalidArgument("LOG_FORMAT must be json or text");
         c.log_format = v;
         return OkStatus();
       }},
      {"REDIS_HOST", "localhost",
       "Redis host of the queue (`dev` starts its own when neither it nor REDIS_SENTINELS is "
       "set)",
       [](const std::string& v, Config& c) -> Status {
         if (v.empty()) return InvalidArgument("REDIS_HOST must not be empty");
         c.redis_host = v;
         c.redis_host_set = true;
         return OkStatus();
       }},
      {"REDIS_PORT", "6379", "Redis port", Int("REDIS_PORT", &Config::redis_port, 1, 65535)},
      {"REDIS_PASSWORD", "(none)", "Redis AUTH password",
       Str("REDIS_PASSWORD", &Config::redis_password, true)},
      {"REDIS_SENTINELS", "(none)",
       "Redis Sentinel: comma-separated host:port of the sentinels (port 26379 when left out); "
       "the master is the one they name REDIS_SENTINEL_MASTER, followed through failovers; "
       "REDIS_HOST and REDIS_PORT are then not used",
       [](const std::string& v, Config& c) -> Status {
         auto list = ParseHostPortList("REDIS_SENTINELS", v);
         if (!list) return list.status();
         c.redis_sentinels = std::move(*list);
         return OkStatus();
       }},
      {"REDIS_SENTINEL_MASTER", "(none)",
       "the master's name at the sentinels (required with REDIS_SENTINELS)",
       Str("REDIS_SENTINEL_MASTER", &Config::redis_sentinel_master, false)},
      {"REDIS_SENTINEL_PASSWORD", "(none)",
       "AUTH password of the sentinels (their requirepass); REDIS_PASSWORD is the master's",
       Str("REDIS_SENTINEL_PASSWORD", &Config::redis_sentinel_password, true)},
      {"QUEUE_PREFIX", "bull", "BullMQ key prefix", Str("QUEUE_PREFIX", &Config::queue_prefix, false)},
      {"QUEUE_NAME", "file-upload", "BullMQ queue name",
       Str("QUEUE_NAME", &Config::queue_name, false)},
      {"DATA_DIR", "./data", "base directory for the default database and storage",
       Str("DATA_DIR", &Config::data_dir, false)},
      {"DATABASE_URL", "sqlite:///<DATA_DIR>/conveyor.db",
       "sqlite:///abs/path.db or postgres://user:pass@host:port/db (postgresql:// too)",
       [](const std::string& v, Config& c) -> Status {
         if (v.rfind("sqlite://", 0) != 0 && v.rfind("postgres://", 0) != 0 &&
             v.rfind("postgresql://", 0) != 0) {
           return InvalidArgument("DATABASE_URL=\"" + v +
                                  "\" must start with sqlite:// or postgres://");
         }
         c.database_url = v;
         return OkStatus();
       }},
      {"STORAGE_DIR", "<DATA_DIR>/uploads", "where uploads wait until processed",
       Str("STORAGE_DIR", &Config::storage_dir, false)},
      {"STORAGE_TEMP_MAX_AGE_MS", "3600000",
       "an upload's temp file (STORAGE_DIR/tmp) not written for this long is removed as cut off; "
       "keep it above the longest pause of a live upload's file (BODY_IDLE_TIMEOUT_MS, and "
       "1 MiB at BODY_MIN_RATE_BYTES per BODY_RATE_WINDOW_MS)",
       Int("STORAGE_TEMP_MAX_AGE_MS", &Config::storage_temp_max_age_ms, 1000, 604800000)},
      {"STORAGE_ORPHAN_MIN_AGE_MS", "600000",
       "a stored upload with no job row is removed once this old (an upload being accepted has "
       "its file before its row)",
       Int("STORAGE_ORPHAN_MIN_AGE_MS", &Config::storage_orphan_min_age_ms, 1000, 604800000)},
      {"STORAGE_SWEEP_INTERVAL_MS", "300000",
       "how often the API and the worker remove cut-off temp files and stored uploads whose job "
       "is final or gone (also once at start-up); 0: at start-up only",
       Int("STORAGE_SWEEP_INTERVAL_MS", &Config::storage_sweep_interval_ms, 0, 86400000)},
      {"STORAGE_URL", "(none: STORAGE_DIR)",
       "s3://bucket/prefix keeps uploads in S3-compatible object storage (see the S3_* settings); "
       "unset: the local directory STORAGE_DIR",
       [](const std::string& v, Config& c) -> Status {
         if (v.empty()) return OkStatus();
         if (v.rfind("s3://", 0) != 0) {
           return InvalidArgument("STORAGE_URL=\"" + v + "\" must be s3://bucket[/prefix]");
         }
         c.storage_url = v;
         return OkStatus();
       }},
      {"TEMP_DIR", "<DATA_DIR>/tmp",
       "private temp files of this process (0700): with STORAGE_URL=s3://, the worker copies "
       "each object here for the parser (unlinked as soon as it is opened)",
       Str("TEMP_DIR", &Config::temp_dir, false)},
      {"S3_ENDPOINT", "(AWS_ENDPOINT_URL, else AWS S3)",
       "http(s)://host[:port] of the S3-compatible server (MinIO, Ceph RGW, R2...); unset: "
       "https://s3.<region>.amazonaws.com",
       Str("S3_ENDPOINT", &Config::s3_endpoint, true)},
      {"S3_REGION", "(AWS_REGION, AWS_DEFAULT_REGION, else us-east-1)",
       "region of the SigV4 signature (R2: auto)", Str("S3_REGION", &Config::s3_region, false)},
      {"S3_ACCESS_KEY_ID", "(AWS_ACCESS_KEY_ID)", "access key of the S3 requests",
       Str("S3_ACCESS_KEY_ID", &Config::s3_access_key_id, true)},
      {"S3_SECRET_ACCESS_KEY", "(AWS_SECRET_ACCESS_KEY)", "secret key of the S3 requests",
       Str("S3_SECRET_ACCESS_KEY", &Config::s3_secret_access_key, true)},
      {"S3_FORCE_PATH_STYLE", "false",
       "address objects as <endpoint>/<bucket>/<key> instead of <bucket>.<host>/<key> "
       "(MinIO and most self-hosted servers want true)",
       Bool("S3_FORCE_PATH_STYLE", &Config::s3_force_path_style)},
      {"S3_PART_SIZE", "8388608",
       "bytes per multipart part while an upload streams to S3 (one part buffer per upload); "
       "5 MiB to 5 GiB",
       Int("S3_PART_SIZE", &Config::s3_part_size, 5LL << 20, 5LL << 30)},
      {"S3_MULTIPART_MAX_AGE_MS", "86400000",
       "a multipart upload started this long ago and neither completed nor aborted (API killed "
       "mid-upload) is aborted by the storage sweeper; 60000-604800000",
       Int("S3_MULTIPART_MAX_AGE_MS", &Config::s3_multipart_max_age_ms, 60000, 604800000)},
      {"TUS_DIR", "<DATA_DIR>/tus",
       "where partial resumable (tus) uploads and their records are kept until complete",
       Str("TUS_DIR", &Config::tus_dir, false)},
      {"TUS_EXPIRATION_MS", "86400000",
       "a resumable (tus) upload is removed this long after its creation or its last PATCH "
       "(Upload-Expires); a completed one answers HEAD with its job id until then",
       Int("TUS_EXPIRATION_MS", &Config::tus_expiration_ms, 1000, int64_t{30} * 86400000)},
      {"TUS_SWEEP_INTERVAL_MS", "60000",
       "how often the API deletes expired resumable uploads (also once at start-up); 0: at "
       "start-up only",
       Int("TUS_SWEEP_INTERVAL_MS", &Config::tus_sweep_interval_ms, 0, 86400000)},
      {"JWT_SECRET", "(none)",
       "HS256 secret of bearer tokens, at least 32 bytes; `api` refuses to start without it",
       [](const std::string& v, Config& c) -> Status {
         // Short HS256 keys fall to an offline search from a single token.
         if (!v.empty() && v.size() < kMinJwtSecretBytes) {
           return InvalidArgument("JWT_SECRET is " + std::to_string(v.size()) +
                                  " bytes; it must be at least " +
                                  std::to_string(kMinJwtSecretBytes) + " (e.g. openssl rand -hex 32)");
         }
         c.jwt_secret = v;
         return OkStatus();
       }},
      {"JWT_REQUIRE_EXP", "true",
       "refuse bearer tokens without an `exp` claim (false: such tokens never expire)",
       Bool("JWT_REQUIRE_EXP", &Config::jwt_require_exp)},
      {"WORKER_CONCURRENCY", "2", "jobs processed at once per worker",
       Int("WORKER_CONCURRENCY", &Config::worker_concurrency, 1, 1024)},
      {"JOB_LOCK_MS", "30000", "job lock duration; a job whose lock lapses is recovered",
       Int("JOB_LOCK_MS", &Config::job_lock_ms, 100, 3600000)},
      {"STALLED_INTERVAL_MS", "30000", "how often workers look for stalled jobs",
       Int("STALLED_INTERVAL_MS", &Config::stalled_interval_ms, 100, 3600000)},
      {"WORKER_MAX_STALLED_COUNT", "10",
       "times a job may be recovered after its worker died (lock lapsed) before it fails with "
       "\"job stalled more than allowable limit\" (BullMQ's maxStalledCount, whose default is 1)",
       Int("WORKER_MAX_STALLED_COUNT", &Config::worker_max_stalled_count, 0, 1000)},
      {"WORKER_OUTAGE_WAIT_MS", "600000",
       "a job that meets an outage of the database or Redis (unavailable) waits and runs again "
       "in the same attempt for up to this long before the outage counts as a failed attempt; "
       "0: every outage costs an attempt",
       Int("WORKER_OUTAGE_WAIT_MS", &Config::worker_outage_wait_ms, 0, 86400000)},
      {"RECONCILE_INTERVAL_MS", "30000",
       "how often pending rows without a queued job are re-added",
       Int("RECONCILE_INTERVAL_MS", &Config::reconcile_interval_ms, 100, 3600000)},
      {"JOB_TIMEOUT_MS", "0",
       "a job running longer fails with a timeout error and is retried by the normal policy; "
       "0: no limit beyond EXTRACT_TIMEOUT_MS",
       Int("JOB_TIMEOUT_MS", &Config::job_timeout_ms, 0, 86400000)},
      {"PROCESSING_DELAY_MS", "0",
       "fault injection for tests: each job pauses this long (holding its lock) before processing",
       Int("PROCESSING_DELAY_MS", &Config::processing_delay_ms, 0, 3600000)},
      {"EXTRACT_TIMEOUT_MS", "60000",
       "wall-clock time the sandboxed parser gets per file; past it the file fails as too slow",
       Int("EXTRACT_TIMEOUT_MS", &Config::extract_timeout_ms, 100, 3600000)},
      {"EXTRACT_MEMORY_MB", "1024", "address space of the sandboxed parser (MiB)",
       Int("EXTRACT_MEMORY_MB", &Config::extract_memory_mb, 64, 1 << 20)},
      {"EXTRACT_CPU_SECONDS", "60", "CPU time of the sandboxed parser per file (seconds)",
       Int("EXTRACT_CPU_SECONDS", &Config::extract_cpu_seconds, 1, 86400)},
      {"EXTRACT_MAX_OUTPUT_BYTES", "67108864",
       "largest output (text + chunks, JSON) the parser may return; more fails the file",
       Int("EXTRACT_MAX_OUTPUT_BYTES", &Config::extract_max_output_bytes, 1 << 16,
           int64_t{1} << 34)},
      {"EXTRACT_MAX_INPUT_BYTES", "67108864",
       "largest file the parser reads; a larger one fails (`file is N bytes, over the processing "
       "limit`); keep it at or above MAX_UPLOAD_BYTES to process every accepted upload",
       Int("EXTRACT_MAX_INPUT_BYTES", &Config::extract_max_input_bytes, 1024, int64_t{1} << 40)},
      {"EXTRACT_FORK_SERVER", "on",
       "on: parser children are forked by a pre-started extract server (cheap per file); off: "
       "each is started as a new process",
       Bool("EXTRACT_FORK_SERVER", &Config::extract_fork_server)},
      {"EXTRACT_LEAN_SERVER", "on",
       "on (with EXTRACT_FORK_SERVER=on): every file goes first to a child of the lean extract "
       "server conveyor-extract, found beside the conveyor binary, which has every format but "
       "PDF and images and costs less per file; those two run in a child of the full server. "
       "off, or no conveyor-extract there: every file runs in a child of the full server",
       Bool("EXTRACT_LEAN_SERVER", &Config::extract_lean_server)},
      {"SANDBOX_UID", "65534",
       "account (and group) the parser child runs as when the worker runs as root; -1 keeps root's",
       Int("SANDBOX_UID", &Config::sandbox_uid, -1, 4294967294)},
      {"SANDBOX_REQUIRE", "none",
       "sandbox layers the worker refuses to run without: none, all, or a list of uid, landlock, "
       "seccomp, netns",
       // Checked against the layer names by the roles that run a worker
       // (worker/confine.h ParseRequirement), at start.
       Str("SANDBOX_REQUIRE", &Config::sandbox_require, false)},
      {"AI_PROVIDER", "local",
       "analysis provider: local (offline, extractive) or openai (any OpenAI-compatible API)",
       [](const std::string& v, Config& c) -> Status {
         if (v != "local" && v != "openai") {
           return InvalidArgument("AI_PROVIDER=\"" + v + "\" must be local or openai");
         }
         c.ai_provider = v;
         return OkStatus();
       }},
      {"AI_BASE_URL", "https://api.openai.com/v1",
       "root of the OpenAI-compatible API (POST <root>/chat/completions)",
       Str("AI_BASE_URL", &Config::ai_base_url, false)},
      {"AI_API_KEY", "(none)", "bearer token sent to the analysis provider",
       Str("AI_API_KEY", &Config::ai_api_key, true)},
      {"AI_MODEL", "gpt-4o-mini", "model name sent to the analysis provider",
       Str("AI_MODEL", &Config::ai_model, false)},
      {"AI_TIMEOUT_MS", "30000",
       "time one analysis request may take; a timeout is retried by the queue",
       Int("AI_TIMEOUT_MS", &Config::ai_timeout_ms, 100, 600000)},
      {"AI_MAX_INPUT_CHARS", "12000",
       "extracted text sent to the provider is cut to this many bytes (UTF-8 safe)",
       Int("AI_MAX_INPUT_CHARS", &Config::ai_max_input_chars, 100, 10000000)},
  };
  return table;
}

}  // namespace

Result<std::vector<std::pair<std::string, int>>> ParseHostPortList(const std::string& name,
                                                                  const std::string& list) {
  constexpr int kDefaultSentinelPort = 26379;
  std::vector<std::pair<std::string, int>> out;
  if (list.find_first_not_of(" \t") == std::string::npos) return out;  // none
  auto bad = [&](const std::string& item, const char* why) {
    return InvalidArgument(name + ": \"" + item + "\" " + why +
                           " (expected host:port[,host:port…])");
  };
  size_t at = 0;
  while (at <= list.size()) {
    size_t comma = list.find(',', at);
    if (comma == std::string::npos) comma = list.size();
    std::string item = list.substr(at, comma - at);
    at = comma + 1;
    const size_t b = item.find_first_not_of(" \t");
    const size_t e = item.find_last_not_of(" \t");
    item = b == std::string::npos ? "" : item.substr(b, e - b + 1);
    if (item.empty()) return bad(item, "is an empty item");
    std::string host = item;
    std::string port_text;
    if (item.front() == '[') {  // [IPv6]:port
      const size_t close = item.find(']');
      if (close == std::string::npos) return bad(item, "has no closing ]");
      host = item.substr(1, close - 1);
      const std::string rest = item.substr(close + 1);
      if (!rest.empty() && rest.front() != ':') return bad(item, "has text after ]");
      if (!rest.empty()) port_text = rest.substr(1);
    } else if (const size_t colon = item.rfind(':'); colon != std::string::npos) {
      if (item.find(':') != colon) return bad(item, "is an IPv6 address without brackets");
      host = item.substr(0, colon);
      port_text = item.substr(colon + 1);
    }
    if (host.empty()) return bad(item, "has no host");
    int port = kDefaultSentinelPort;
    if (!port_text.empty() || item.back() == ':') {
      auto p = ParseInt(name, port_text, 1, 65535);
      if (!p) return bad(item, "has no port in [1, 65535]");
      port = static_cast<int>(*p);
    }
    out.emplace_back(std::move(host), port);
  }
  return out;
}

const std::vector<SettingDoc>& SettingsTable() {
  static const std::vector<SettingDoc> docs = [] {
    std::vector<SettingDoc> d;
    for (const auto& s : Table()) d.push_back({s.name, s.default_value, s.meaning});
    return d;
  }();
  return docs;
}

Result<Config> LoadConfig(const GetEnv& getenv) {
  Config c;
  for (const auto& s : Table()) {
    auto v = getenv(s.name);
    if (!v) continue;
    if (Status st = s.apply(*v, c); !st.ok()) return st;
  }
  // The usual AWS variables stand in for the S3_* ones not set.
  auto fallback = [&](const char* own, std::initializer_list<const char*> others,
                      std::string Config::*field) {
    if (getenv(own)) return;
    for (const char* name : others) {
      if (auto v = getenv(name); v && !v->empty()) {
        c.*field = *v;
        return;
      }
    }
  };
  fallback("S3_ENDPOINT", {"AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"}, &Config::s3_endpoint);
  fallback("S3_REGION", {"AWS_REGION", "AWS_DEFAULT_REGION"}, &Config::s3_region);
  fallback("S3_ACCESS_KEY_ID", {"AWS_ACCESS_KEY_ID"}, &Config::s3_access_key_id);
  fallback("S3_SECRET_ACCESS_KEY", {"AWS_SECRET_ACCESS_KEY"}, &Config::s3_secret_access_key);
  if (!c.redis_sentinels.empty() && c.redis_sentinel_master.empty()) {
    return InvalidArgument("REDIS_SENTINELS needs REDIS_SENTINEL_MASTER (the master's name)");
  }
  if (c.redis_sentinels.empty() && !c.redis_sentinel_master.empty()) {
    return InvalidArgument("REDIS_SENTINEL_MASTER is set but REDIS_SENTINELS is not");
  }
  std::filesystem::path data = std::filesystem::absolute(c.data_dir).lexically_normal();
  c.data_dir = data.string();
  if (c.database_url.empty()) c.database_url = "sqlite://" + (data / "conveyor.db").string();
  if (c.storage_dir.empty()) c.storage_dir = (data / "uploads").string();
  c.storage_dir = std::filesystem::absolute(c.storage_dir).lexically_normal().string();
  if (c.temp_dir.empty()) c.temp_dir = (data / "tmp").string();
  c.temp_dir = std::filesystem::absolute(c.temp_dir).lexically_normal().string();
  if (c.tus_dir.empty()) c.tus_dir = (data / "tus").string();
  c.tus_dir = std::filesystem::absolute(c.tus_dir).lexically_normal().string();
  if (c.http_threads == 0) {
    c.http_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  }
  return c;
}

Result<Config> LoadConfigFromEnvironment() {
  return LoadConfig([](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (!v) return std::nullopt;
    return std::string(v);
  });
}

}  // namespace conveyor::app
