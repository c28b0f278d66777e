// File: http/internal/server_context.h
//
// State shared by the listener (server.cc) and the connections (session.cc):
// settings, dependencies, the io_context and the blocking pool, metrics, the
// rate limiter, and the registry of open sessions that Shutdown() walks.
#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/thread_pool.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "http/internal/events_hub.h"
#include "http/internal/metrics.h"
#include "http/internal/rate_limiter.h"
#include "http/internal/status_cache.h"
#include "http/internal/token_cache.h"
#include "http/server.h"
#include "uploads/group_commit.h"

namespace conveyor::http {

class Session;

struct ServerContext {
  ServerContext(ServerSettings s, ServerDeps d)
      : settings(std::move(s)),
        deps(d),
        limiter(settings.rate_limit_per_minute),
        tokens(settings.jwt_secret, TokenCache::kDefaultCapacity, settings.jwt_require_exp),
        status_cache(StatusCacheOptions(settings)),
        max_connections(settings.max_connections),
        pool(static_cast<size_t>(settings.blocking_threads < 1 ? 1 : settings.blocking_threads)),
        ioc(settings.threads < 1 ? 1 : settings.threads) {}

  const ServerSettings settings;
  const ServerDeps deps;
  Metrics metrics;
  RateLimiter limiter;
  TokenCache tokens;  // verified bearer tokens (see token_cache.h)
  StatusCache status_cache;  // status answers of finished jobs (status_cache.h)
  std::atomic<bool> stopping{false};
  std::atomic<uint64_t> next_request_id{1};

  // Open sessions, so Shutdown() can close idle ones at once and the rest
  // after the grace period. Entries are removed by the session's destructor.
  std::mutex sessions_mu;
  std::unordered_map<uint64_t, std::weak_ptr<Session>> sessions;
  uint64_t next_session_id = 1;
  std::atomic<int64_t> open_sessions{0};
  // Open sessions per client address (under sessions_mu).
  std::unordered_map<std::string, int> sessions_per_client;
  // settings.max_connections, lowered by Start() to fit RLIMIT_NOFILE.
  int max_connections;
  // Refused connections still being answered 503 (server.cc).
  std::atomic<int> refusing{0};
  // Called (from any thread) when the last session ends after Shutdown().
  std::function<void()> on_drained;

  boost::asio::thread_pool pool;  // blocking calls: store, queue, file I/O
  // Rows and jobs of accepted uploads, committed in groups (made by Start(),
  // stopped by the server after the pool and before the io_context goes).
  std::unique_ptr<uploads::GroupCommitter> committer;
  // Job events for the push routes (events_hub.h); null without
  // ServerDeps::events. Made by Start(), stopped before the pool is joined.
  std::unique_ptr<EventsHub> hub;
  // Last member: destroyed first, so handlers (and the sessions they own)
  // are destroyed while everything above is still alive.
  boost::asio::io_context ioc;

  static StatusCache::Options StatusCacheOptions(const ServerSettings& s) {
    StatusCache::Options o;
    o.max_entries = s.status_cache_entries < 0 ? 0 : static_cast<size_t>(s.status_cache_entries);
    o.max_bytes = s.status_cache_bytes < 0 ? 0 : static_cast<size_t>(s.status_cache_bytes);
    o.ttl_ms = s.status_cache_ttl_ms;
    return o;
  }
};

enum class Admission {
  kAdmitted,    // the session runs and owns the socket
  kServerFull,  // max_connections open and none idle to close
  kClientFull,  // max_connections_per_client open from this address
};

// Starts serving an accepted connection on its own strand (session.cc) if the
// connection limits allow, taking the socket; otherwise leaves `socket` to
// the caller, which refuses it. At max_connections the longest-idle
// keep-alive session is closed to make room when there is one.
Admission StartSession(ServerContext& ctx, boost::asio::ip::tcp::socket& socket,
                       std::string client);

// Closes sessions: with `hard` false only those waiting for a request
// header (idle keep-alive connections); with `hard` true all of them, which
// cancels in-flight uploads (their temp files are deleted as they unwind).
void CloseSessions(ServerContext& ctx, bool hard);

}  // namespace conveyor::http
