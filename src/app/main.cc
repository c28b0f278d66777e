// conveyor: one binary, one subcommand per process role (DESIGN.md §1).
//
// This file and config.cc are the only code that reads the environment; it
// wires the modules together and owns signal handling: SIGINT/SIGTERM are
// blocked in every thread and taken by one sigwait() thread, which starts the
// graceful shutdown of whatever the subcommand runs.
#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <optional>
#include <thread>

#include "app/config.h"
#include "app/observability.h"
#include "app/extract_command.h"
#include "app/upload_command.h"
#include "app/queue_command.h"
#include "app/redis_child.h"
#include "core/files.h"
#include "core/ids.h"
#include "core/log.h"
#include "http/auth.h"
#include "http/server.h"
#include "queue/limits.h"
#include "queue/queue.h"
#include "storage/blob_store.h"
#include "storage/metadata_store.h"
#include "storage/s3_blob_store.h"
#include "uploads/sweeper.h"
#include "uploads/tus_store.h"
#include "worker/confine.h"
#include "worker/sandbox.h"
#include "worker/worker.h"

namespace conveyor::app {
namespace {

namespace sandbox = worker::sandbox;

constexpr int64_t kDevTokenTtlS = 30 * 24 * 3600;  // printed by `dev`: valid for 30 days

int Fail(const Status& s) {
  std::fprintf(stderr, "conveyor: %s\n", s.ToString().c_str());
  return 1;
}

// Blocks SIGINT and SIGTERM in this thread and every thread started after it.
sigset_t BlockShutdownSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return set;
}

// Calls `on_signal` once, from its own thread, when SIGINT or SIGTERM arrives.
std::thread WatchSignals(sigset_t set, std::function<void()> on_signal) {
  return std::thread([set, on_signal = std::move(on_signal)] {
    int sig = 0;
    sigwait(&set, &sig);
    spdlog::info("conveyor: {} received, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
    on_signal();
  });
}

queue::RedisOptions RedisOptionsFrom(const Config& c) {
  queue::RedisOptions o;
  o.host = c.redis_host;
  o.port = c.redis_port;
  o.password = c.redis_password;
  for (const auto& [host, port] : c.redis_sentinels) o.sentinels.push_back({host, port});
  o.sentinel_master = c.redis_sentinel_master;
  o.sentinel_password = c.redis_sentinel_password;
  o.prefix = c.queue_prefix;
  o.queue_name = c.queue_name;
  o.max_stalled_count = c.worker_max_stalled_count;
  // api, worker and dev start while Redis is down and connect when it is back.
  o.connect_at_open = false;
  return o;
}

http::ServerSettings ServerSettingsFrom(const Config& c) {
  http::ServerSettings s;
  s.bind_address = c.bind_address;
  s.port = c.port;
  s.threads = c.http_threads;
  s.blocking_threads = c.blocking_threads;
  s.max_upload_bytes = c.max_upload_bytes;
  s.max_header_bytes = c.max_header_bytes;
  s.header_timeout_ms = c.header_timeout_ms;
  s.body_idle_timeout_ms = c.body_idle_timeout_ms;
  s.shutdown_grace_ms = c.shutdown_grace_ms;
  s.rate_limit_per_minute = c.rate_limit_per_minute;
  s.priority_aging_ms = c.priority_aging_ms;
  s.priority_in_flight_step = c.priority_in_flight_step;
  s.upload_fsync = c.upload_fsync;
  s.upload_commit_max_rows = c.upload_commit_max_rows;
  s.jwt_secret = c.jwt_secret;
  s.jwt_require_exp = c.jwt_require_exp;
  s.metrics_token = c.metrics_token;
  s.queue_name = c.queue_name;
  s.max_connections = c.max_connections;
  s.max_connections_per_client = c.max_connections_per_client;
  s.keepalive_timeout_ms = c.keepalive_timeout_ms;
  s.body_min_rate_bytes = c.body_min_rate_bytes;
  s.body_rate_window_ms = c.body_rate_window_ms;
  s.max_chunk_line_bytes = c.max_chunk_line_bytes;
  s.max_trailer_bytes = c.max_trailer_bytes;
  s.linger_idle_ms = c.linger_idle_ms;
  s.linger_max_ms = c.linger_max_ms;
  s.status_cache_entries = c.status_cache_entries;
  s.status_cache_bytes = c.status_cache_bytes;
  s.status_cache_ttl_ms = c.status_cache_ttl_ms;
  s.push_queue_messages = c.push_queue_messages;
  s.push_ping_interval_ms = c.push_ping_interval_ms;
  s.push_write_timeout_ms = c.push_write_timeout_ms;
  s.ws_max_subscriptions = c.ws_max_subscriptions;
  s.ws_max_message_bytes = c.ws_max_message_bytes;
  return s;
}

worker::WorkerSettings WorkerSettingsFrom(const Config& c) {
  worker::WorkerSettings w;
  w.concurrency = c.worker_concurrency;
  w.lock_ms = c.job_lock_ms;
  w.stalled_interval_ms = c.stalled_interval_ms;
  w.reconcile_interval_ms = c.reconcile_interval_ms;
  w.outage_wait_ms = c.worker_outage_wait_ms;
  w.shutdown_grace_ms = c.shutdown_grace_ms;
  w.processing_delay_ms = c.processing_delay_ms;
  w.job_timeout_ms = c.job_timeout_ms;
  w.sandbox.timeout_ms = c.extract_timeout_ms;
  w.sandbox.memory_mb = c.extract_memory_mb;
  w.sandbox.cpu_seconds = c.extract_cpu_seconds;
  w.sandbox.max_output_bytes = c.extract_max_output_bytes;
  w.limits.max_input_bytes = c.extract_max_input_bytes;
  w.sandbox.fork_server = c.extract_fork_server;
  w.sandbox.uid = c.sandbox_uid;
  w.analyzer.provider = c.ai_provider;
  w.analyzer.base_url = c.ai_base_url;
  w.analyzer.api_key = c.ai_api_key;
  w.analyzer.model = c.ai_model;
  w.analyzer.timeout_ms = c.ai_timeout_ms;
  w.analyzer.max_input_chars = c.ai_max_input_chars;
  return w;
}

// The per-user limits shared through Redis (also the uploads in flight that
// job priorities use); null when SHARED_LIMITS=false.
std::unique_ptr<queue::UserLimiter> SharedLimitsFrom(const Config& c) {
  queue::UserLimitSettings l;
  l.uploads_per_minute = c.rate_limit_per_minute;
  l.bytes_per_hour = c.upload_bytes_per_hour;
  l.uploads_in_flight = c.uploads_in_flight_per_user;
  l.reservation_ms = c.upload_reservation_s * 1000;
  if (!c.shared_limits) return nullptr;
  return queue::OpenRedisUserLimiter(RedisOptionsFrom(c), l);
}

// What every long-running role opens: database, upload store, queue producer.
struct Backends {
  std::unique_ptr<storage::MetadataStore> store;
  std::unique_ptr<storage::BlobStore> blobs;
  std::unique_ptr<queue::Queue> queue;
};

// The upload store: STORAGE_DIR, or object storage when STORAGE_URL=s3://.
Result<std::unique_ptr<storage::BlobStore>> OpenBlobStore(const Config& c) {
  if (c.storage_url.empty()) {
    storage::LocalBlobOptions local;
    if (c.upload_fsync) local.write_behind_bytes = storage::kUploadWriteBehindBytes;
    return storage::OpenLocalBlobStore(c.storage_dir, local);
  }
  auto url = storage::ParseS3Url(c.storage_url);
  if (!url) return InvalidArgument("STORAGE_URL: " + url.status().message());
  storage::S3Settings s;
  s.bucket = url->bucket;
  s.prefix = url->prefix;
  s.endpoint = c.s3_endpoint;
  s.region = c.s3_region;
  s.access_key_id = c.s3_access_key_id;
  s.secret_access_key = c.s3_secret_access_key;
  s.force_path_style = c.s3_force_path_style;
  s.part_size = c.s3_part_size;
  s.download_dir = c.temp_dir;
  spdlog::info("conveyor: uploads in s3://{}/{} at {}", s.bucket, s.prefix,
               s.endpoint.empty() ? "AWS S3 (" + s.region + ")" : s.endpoint);
  return storage::OpenS3BlobStore(std::move(s));
}

Result<Backends> OpenBackends(const Config& c) {
  Backends b;
  if (Status s = CreatePrivateDirs(c.data_dir); !s.ok()) return s;
  auto store = storage::OpenMetadataStore(c.database_url, /*migrate=*/true);
  if (!store) return store.status();
  b.store = std::move(*store);
  auto blobs = OpenBlobStore(c);
  if (!blobs) return blobs.status();
  b.blobs = std::move(*blobs);
  auto q = queue::OpenRedisQueue(RedisOptionsFrom(c));
  if (!q) return q.status();
  b.queue = std::move(*q);
  return b;
}

// The worker's sandbox: the lean extract server beside this binary
// (EXTRACT_LEAN_SERVER), which layers this host grants its parser children
// (logged), and a refusal to run when SANDBOX_REQUIRE names one it lacks.
Result<sandbox::Layers> CheckSandbox(worker::WorkerSettings& w, const Config& c) {
  auto required = sandbox::ParseRequirement(c.sandbox_require);
  if (!required) return required.status();
  w.sandbox.require = *required;
  if (c.extract_fork_server && c.extract_lean_server) {
    w.sandbox.lean_binary_path = worker::LeanExtractorBeside(w.sandbox.binary_path);
    if (w.sandbox.lean_binary_path.empty()) {
      spdlog::warn(
          "conveyor: no conveyor-extract beside the conveyor binary: every file runs in "
          "the full extract server (EXTRACT_LEAN_SERVER)");
    }
  }
  auto layers = worker::ProbeSandbox(w.sandbox);
  if (!layers) return layers.status();
  std::string missing = sandbox::MissingLayers(*layers, "uid+landlock+seccomp+netns");
  spdlog::info("conveyor: sandbox layers in place: {} (Landlock ABI {})", layers->ToString(),
               layers->landlock_abi);
  if (!missing.empty()) {
    spdlog::warn("conveyor: sandbox layers unavailable on this host: {}{}", missing,
                 geteuid() != 0 && missing.find("uid") != std::string::npos
                     ? " (uid: the worker is not root, so its parsers run as its own user)"
                     : "");
  }
  if (std::string lacking = sandbox::MissingLayers(*layers, *required); !lacking.empty()) {
    return FailedPrecondition("SANDBOX_REQUIRE=" + c.sandbox_require + " but this host lacks: " +
                              lacking);
  }
  return layers;
}

// Runs the API and/or the worker until SIGINT/SIGTERM.
int Serve(const Config& c, bool api, bool work, const std::string& banner_token) {
  sigset_t signals = BlockShutdownSignals();
  worker::WorkerSettings worker_settings = WorkerSettingsFrom(c);
  std::optional<sandbox::Layers> layers;
  if (work) {
    // Before anything holds secrets worth hiding: non-dumpable from here on.
    (void)sandbox::ProtectWorkerProcess();
    auto l = CheckSandbox(worker_settings, c);
    if (!l) return Fail(l.status());
    layers = *l;
  }
  auto backends = OpenBackends(c);
  if (!backends) return Fail(backends.status());
  // Queue depth, live workers and round trips for /metrics (either side).
  InstallQueueMetrics(RedisOptionsFrom(c), backends->store.get());
  // Cut-off temp files and uploads of final or vanished jobs: one pass now,
  // then every STORAGE_SWEEP_INTERVAL_MS (uploads/sweeper.h).
  // In object storage the "temp files" are multipart uploads, aged from
  // their start rather than their last write: S3_MULTIPART_MAX_AGE_MS.
  uploads::StorageSweeper sweeper(
      uploads::SweepSettings{
          c.storage_url.empty() ? c.storage_temp_max_age_ms : c.s3_multipart_max_age_ms,
          c.storage_orphan_min_age_ms, c.storage_sweep_interval_ms},
      backends->blobs.get(), backends->store.get());
  sweeper.Start();

  std::unique_ptr<queue::UserLimiter> user_limits;  // outlives the server
  std::unique_ptr<uploads::TusStore> tus_store;      // outlives the server
  std::unique_ptr<uploads::TusSweeper> tus_sweeper;
  // The push routes read the queue's events stream with these.
  const queue::RedisOptions events = RedisOptionsFrom(c);
  std::unique_ptr<http::Server> server;
  if (api) {
    http::ServerSettings settings = ServerSettingsFrom(c);
    if (layers) {
      // /readyz lists the worker's sandbox layers (dev: same process).
      for (const char* name : sandbox::kLayerNames) {
        settings.sandbox_layers.emplace_back(name, layers->Has(name));
      }
    }
    user_limits = SharedLimitsFrom(c);
    // Partial resumable uploads (uploads/tus_store.h), and the sweep of
    // expired ones every TUS_SWEEP_INTERVAL_MS.
    auto tus = uploads::TusStore::Open(
        uploads::TusStoreOptions{c.tus_dir, c.tus_expiration_ms, c.upload_fsync});
    if (!tus) return Fail(tus.status());
    tus_store = std::move(*tus);
    tus_sweeper = std::make_unique<uploads::TusSweeper>(tus_store.get(), c.tus_sweep_interval_ms);
    tus_sweeper->Start();
    http::ServerDeps deps{backends->store.get(), backends->blobs.get(), backends->queue.get(),
                          user_limits.get(), &events};
    deps.tus = tus_store.get();
    server = std::make_unique<http::Server>(std::move(settings), deps);
    auto port = server->Start();
    if (!port) return Fail(port.status());
    std::string host = c.bind_address == "0.0.0.0" ? "localhost" : c.bind_address;
    spdlog::info("conveyor: API listening on http://{}:{}", host, *port);
    if (!banner_token.empty()) {
      // The page's address carries the token in its fragment, which the
      // browser never sends to the server (so no log ever holds it).
      std::printf("\nconveyor dev is ready\n  URL:   http://%s:%d\n  page:  http://%s:%d/#token=%s\n"
                  "  token: %s\n\n"
                  "  curl -H 'Authorization: Bearer %s' -F file=@README.md -F session_id=s1 "
                  "http://%s:%d/api/chat/upload/async\n\n",
                  host.c_str(), *port, host.c_str(), *port, banner_token.c_str(),
                  banner_token.c_str(), banner_token.c_str(), host.c_str(), *port);
      std::fflush(stdout);
    }
  }
  std::unique_ptr<worker::Worker> w;
  std::unique_ptr<MetricsServer> metrics_server;
  std::unique_ptr<Heartbeat> heartbeat;
  if (work && !api && c.metrics_port >= 0) {
    // The worker's own /metrics (with the API in the process, the API's has it all).
    metrics_server = std::make_unique<MetricsServer>(c.bind_address, c.metrics_port, c.metrics_token);
    // A busy port (another worker on this host with the same METRICS_PORT)
    // costs the metrics endpoint, never the worker: jobs are its work.
    auto port = metrics_server->Start();
    if (port) {
      spdlog::info("conveyor: worker metrics on port {}", *port);
    } else {
      spdlog::error("conveyor: worker runs without its metrics endpoint: {} (give each worker "
                    "of a host its own METRICS_PORT)",
                    port.status().ToString());
      metrics_server.reset();
    }
  }
  if (work) {
    auto opts = RedisOptionsFrom(c);
    w = std::make_unique<worker::Worker>(worker_settings, backends->store.get(),
                                         backends->blobs.get(), backends->queue.get(),
                                         [opts] { return queue::OpenRedisConsumer(opts); });
    w->Start();
    heartbeat = std::make_unique<Heartbeat>(RedisOptionsFrom(c), c.worker_concurrency);
    heartbeat->Start();
    spdlog::info("conveyor: worker running with concurrency {} (registry id {})",
                 c.worker_concurrency, heartbeat->id());
  }

  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  std::thread watcher = WatchSignals(signals, [&] {
    if (server) server->Shutdown();
    std::lock_guard lock(mu);
    done = true;
    cv.notify_all();
  });
  if (server) {
    server->Run();  // returns after Shutdown()
  } else {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return done; });
  }
  if (w) w->Stop();
  if (heartbeat) heartbeat->Stop();
  if (metrics_server) metrics_server->Stop();
  sweeper.Stop();
  if (tus_sweeper) tus_sweeper->Stop();
  watcher.join();
  spdlog::info("conveyor: stopped");
  return 0;
}

int RunApi(Config c) {
  if (c.jwt_secret.empty()) {
    return Fail(InvalidArgument("JWT_SECRET is required by `conveyor api` (HS256 secret)"));
  }
  return Serve(c, true, false, "");
}

int RunWorker(Config c) { return Serve(c, false, true, ""); }

int RunDev(Config c) {
  if (Status s = CreatePrivateDirs(c.data_dir); !s.ok()) return Fail(s);
  std::optional<RedisChild> redis;
  if (!c.redis_host_set && c.redis_sentinels.empty()) {
    auto child = RedisChild::Start(c.data_dir + "/redis");
    if (!child) return Fail(child.status());
    redis.emplace(std::move(*child));
    c.redis_host = "127.0.0.1";
    c.redis_port = redis->port();
    c.redis_password = redis->password();
    spdlog::info("conveyor: started redis-server on port {} (password protected, appendonly, "
                 "everysec)", redis->port());
  }
  if (c.jwt_secret.empty()) {
    c.jwt_secret = NewUuid() + NewUuid();
    spdlog::info("conveyor: JWT_SECRET not set; generated one for this run");
  }
  auto token = http::MintToken(c.jwt_secret, "dev-user", std::time(nullptr), kDevTokenTtlS);
  if (!token) return Fail(token.status());
  int rc = Serve(c, true, true, *token);
  return rc;  // RedisChild's destructor stops redis-server
}

int RunToken(const Config& c, const std::string& user, int64_t ttl_s) {
  if (c.jwt_secret.empty()) return Fail(InvalidArgument("JWT_SECRET is required to mint a token"));
  auto token = http::MintToken(c.jwt_secret, user, std::time(nullptr), ttl_s);
  if (!token) return Fail(token.status());
  std::printf("%s\n", token->c_str());
  return 0;
}

int RunMigrate(const Config& c) {
  if (Status s = CreatePrivateDirs(c.data_dir); !s.ok()) return Fail(s);
  auto v = storage::Migrate(c.database_url);
  if (!v) return Fail(v.status());
  std::printf("schema version %d\n", *v);
  return 0;
}

}  // namespace
}  // namespace conveyor::app

int main(int argc, char** argv) {
  using namespace conveyor::app;
  CLI::App cli{"conveyor: asynchronous file upload and processing service"};
  cli.require_subcommand(1);
  cli.add_subcommand("api", "HTTP API server");
  cli.add_subcommand("worker", "queue consumer: processes uploaded files");
  cli.add_subcommand("dev", "API + worker in one process on the embedded defaults");
  auto* token = cli.add_subcommand("token", "mint a development JWT with JWT_SECRET");
  std::string user;
  int64_t ttl_s = 24 * 3600;
  token->add_option("--user", user, "user id (the token's sub)")->required();
  token->add_option("--ttl", ttl_s, "lifetime in seconds")->capture_default_str();
  cli.add_subcommand("migrate", "apply the database schema");
  auto* env = cli.add_subcommand("env", "list the environment settings and their defaults");
  auto queue_cmd = AddQueueCommand(cli);
  auto extract_cmd = AddExtractCommand(cli);
  auto upload_cmd = AddUploadCommand(cli);
  CLI11_PARSE(cli, argc, argv);

  if (env->parsed()) {
    for (const auto& s : SettingsTable()) {
      std::printf("%-24s %-36s %s\n", s.name.c_str(), s.default_value.c_str(), s.meaning.c_str());
    }
    return 0;
  }
  if (extract_cmd->parsed()) return extract_cmd->Run();  // sandboxed child: reads no config
  auto cfg = LoadConfigFromEnvironment();
  if (!cfg) {
    std::fprintf(stderr, "conveyor: %s\n", cfg.status().message().c_str());
    return 2;
  }
  conveyor::ConfigureLogging(cfg->log_format == "json" ? conveyor::LogFormat::kJson
                                                       : conveyor::LogFormat::kText);
  const std::string cmd = cli.get_subcommands().front()->get_name();
  if (cmd == "api") return RunApi(*cfg);
  if (cmd == "worker") return RunWorker(*cfg);
  if (cmd == "dev") return RunDev(*cfg);
  if (cmd == "token") return RunToken(*cfg, user, ttl_s);
  if (cmd == "migrate") return RunMigrate(*cfg);
  if (queue_cmd->parsed()) return queue_cmd->Run(*cfg);
  if (upload_cmd->parsed()) return upload_cmd->Run(*cfg);
  return 2;
}
