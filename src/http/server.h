// File: http/server.h
//
// The HTTP server: Boost.Beast over Asio with C++20 coroutines, serving on
// `threads` threads. Routes (src/http/routes.cc) are one table: method, path,
// handler, auth, body limit.
//
// Threads: construct, Start() and Run() from one thread; Shutdown() from any
// thread (e.g. a signal handler's strand). Store, blob store and queue are
// called only on the server's blocking pool, never on socket threads.
//
//   http::Server server(settings, {store, blobs, queue});
//   Result<int> port = server.Start();     // bound; port 0 picks one
//   std::thread stopper(...);              // later: server.Shutdown()
//   server.Run();                          // returns after Shutdown() drained
//
// Limits, all decided from the request header before any body byte is read:
// 401 without a valid bearer token on /api routes; 413 when Content-Length
// exceeds max_upload_bytes + 128 KiB (the allowance for multipart framing, the
// session_id and a message of up to 64 KiB; the file part itself is held to
// max_upload_bytes exactly while it streams, which also bounds chunked
// bodies); 429 with Retry-After past rate_limit_per_minute (with
// ServerDeps::user_limits: the shared per-user limits, checked with the
// first body bytes instead); 431 for a header
// block over max_header_bytes. An error answered before the body was read
// closes the connection, after a lingering read (linger_idle_ms, linger_max_ms).
//
// Request heads are checked (http/request_head.h): a Transfer-Encoding other
// than exactly `chunked`, Transfer-Encoding with Content-Length, a repeated or
// invalid Content-Length, control bytes in the target or a field: 400 and
// close. Chunked bodies are decoded by http/chunked.h with bounded size lines
// and trailers (max_chunk_line_bytes, max_trailer_bytes: 400). A body slower
// than body_min_rate_bytes per body_rate_window_ms gets 408 and a close.
//
// Connection limits: at most max_connections open and
// max_connections_per_client per client address. A new connection over the
// total closes the longest-idle keep-alive connection to make room, or, when
// none is idle, is answered 503 (too_many_connections) and closed, as is one
// over its address's limit. Start() raises the soft RLIMIT_NOFILE to the hard
// limit and keeps one spare descriptor, so even when descriptors run out a
// new connection gets its 503 instead of silence. Idle keep-alive
// connections close after keepalive_timeout_ms. Implementation: server.cc (listener, lifecycle),
// session.cc (connections, the upload stream), routes.cc (the route table),
// tus_handler.cc (resumable uploads over ServerDeps::tus; internal/tus_handler.h).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"

namespace conveyor::storage {
class MetadataStore;
class BlobStore;
}  // namespace conveyor::storage
namespace conveyor::queue {
class Queue;
class UserLimiter;
struct RedisOptions;
}  // namespace conveyor::queue
namespace conveyor::uploads {
class TusStore;
}

namespace conveyor::http {

struct ServerSettings {
  std::string bind_address = "0.0.0.0";
  int port = 8080;                       // 0: pick a free port (see Start())
  int threads = 2;                       // socket-serving threads
  int blocking_threads = 4;              // pool for SQLite/Redis/fsync calls
  int64_t max_upload_bytes = 52428800;   // file size limit; 413 above it
  int64_t max_header_bytes = 16384;      // request header block; 431 above it
  int64_t header_timeout_ms = 10000;     // to receive a request header
  int64_t body_idle_timeout_ms = 30000;  // longest silence while a body streams
  int64_t shutdown_grace_ms = 10000;     // in-flight requests after Shutdown()
  int rate_limit_per_minute = 600;       // uploads per user per minute; 0: off
  // Job priorities (uploads/priority.h): aging and the in-flight step.
  int64_t priority_aging_ms = 60000;
  int priority_in_flight_step = 10;
  bool upload_fsync = true;              // fsync uploads before 202
  // Rows (and queue jobs) of uploads that finish together are committed in
  // one transaction (one pipelined Redis round trip) of at most this many.
  int upload_commit_max_rows = 128;
  std::string jwt_secret;                // HS256 secret
  bool jwt_require_exp = true;           // refuse tokens without `exp`
  std::string metrics_token;             // non-empty: /metrics needs "Bearer <this>"

  // Connections (see "Connection limits" above).
  int max_connections = 10000;           // open at once; clamped below RLIMIT_NOFILE
  int max_connections_per_client = 256;  // per client IP address; 0: no limit
  int64_t keepalive_timeout_ms = 15000;  // silence allowed between two requests
  // Slow bodies: at least body_min_rate_bytes must arrive per
  // body_rate_window_ms (pro rata), else 408 and close. 0: no minimum.
  int64_t body_min_rate_bytes = 32768;
  int64_t body_rate_window_ms = 30000;
  // Chunked framing: one chunk-size line (with extensions) and the trailer
  // section; longer is 400.
  int64_t max_chunk_line_bytes = 4096;
  int64_t max_trailer_bytes = 8192;
  // Lingering close after an answer sent before the body was read: discard
  // what the client still sends until it is silent for linger_idle_ms or
  // linger_max_ms passed, so it reads the answer instead of a reset.
  int64_t linger_idle_ms = 5000;
  int64_t linger_max_ms = 30000;
  std::string queue_name = "file-upload";
  // Status answers of completed and failed jobs kept per process (see
  // http/internal/status_cache.h): at most this many entries and bytes, each
  // used for status_cache_ttl_ms after its row was read. 0 in any: off.
  int64_t status_cache_entries = 10000;
  int64_t status_cache_bytes = 16777216;
  int64_t status_cache_ttl_ms = 1000;
  // Push (SSE and WebSocket routes; README "Push notifications"). Messages
  // waiting for one slow client before it is disconnected; keep-alive
  // (SSE comment, WebSocket ping) interval; longest single SSE write; jobs
  // one WebSocket may watch; largest client message.
  int64_t push_queue_messages = 256;
  int64_t push_ping_interval_ms = 20000;
  int64_t push_write_timeout_ms = 10000;
  int64_t ws_max_subscriptions = 1000;
  int64_t ws_max_message_bytes = 65536;
  // The sandbox layers of the worker sharing this process (`conveyor dev`),
  // (name, in place) each, listed by /readyz under "sandbox"; empty for `api`.
  std::vector<std::pair<std::string, bool>> sandbox_layers;
};

struct ServerDeps {
  storage::MetadataStore* store = nullptr;  // not owned; outlive the server
  storage::BlobStore* blobs = nullptr;
  queue::Queue* queue = nullptr;
  // Per-user limits shared by every API process (queue/limits.h); null: the
  // per-process rate_limit_per_minute bucket only.
  queue::UserLimiter* user_limits = nullptr;
  // Where the push routes read job events (the queue's events stream);
  // null: no push (those routes answer 503).
  const queue::RedisOptions* events = nullptr;
  // Partial uploads of the tus routes (/api/chat/upload/tus, README
  // "Resumable uploads (tus)"); null: those routes answer 404.
  uploads::TusStore* tus = nullptr;
};

class Server {
 public:
  Server(ServerSettings settings, ServerDeps deps);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds and listens; returns the bound port. kUnavailable if it cannot bind.
  Result<int> Start();

  // Serves until Shutdown() completes; returns then. Blocks the caller, which
  // becomes one of the serving threads.
  void Run();

  // Graceful stop: stop accepting, let in-flight requests finish for up to
  // shutdown_grace_ms, then cancel the rest (their temp files are deleted).
  // Idempotent, thread-safe.
  void Shutdown();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace conveyor::http
