// The route table: one row per endpoint (method, path, handler, auth, body
// limit), and the handlers of the ordinary routes. Handlers are thin: parse
// and validate, call the store, format. The upload row's handler is a
// StreamHandler (upload_handler.cc) that receives the body as it arrives.
#include <spdlog/spdlog.h>

#include <charconv>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "core/ids.h"
#include "http/internal/embedded_files.h"
#include "http/internal/error_response.h"
#include "core/metrics.h"
#include "http/internal/events_hub.h"
#include "http/internal/metrics.h"
#include "http/internal/query.h"
#include "http/internal/routing.h"
#include "http/internal/status_cache.h"
#include "http/internal/tus_handler.h"
#include "http/internal/upload_handler.h"
#include "http/server.h"
#include "queue/queue.h"
#include "storage/job_record.h"
#include "storage/metadata_store.h"
#include "uploads/group_commit.h"

namespace conveyor::http {
namespace {

using nlohmann::json;

std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

Response Healthz(const Request&, HandlerEnv&) {
  Response r;
  r.body = R"({"status":"ok"})";
  return r;
}

// Runs on the blocking pool: both pings block.
Response Readyz(const Request&, HandlerEnv& env) {
  auto db = env.store->Ping();
  auto q = env.queue->Ping();
  // Why a dependency is down goes to the log only (it may name hosts).
  if (!db.ok()) spdlog::warn("readyz: database: {}", db.status().ToString());
  if (!q.ok()) spdlog::warn("readyz: queue: {}", q.status().ToString());
  Response r;
  r.status = db.ok() && q.ok() ? 200 : 503;
  json j = {{"status", r.status == 200 ? "ok" : "unavailable"},
            {"database", db.ok() ? "ok" : "unavailable"},
            {"queue", q.ok() ? "ok" : "unavailable"}};
  // Informational: a missing layer is logged at start and refused there when
  // SANDBOX_REQUIRE names it; it does not make the process unready.
  if (!env.settings->sandbox_layers.empty()) {
    json layers = json::object();
    for (const auto& [name, on] : env.settings->sandbox_layers) layers[name] = on ? "on" : "unavailable";
    j["sandbox"] = std::move(layers);
  }
  r.body = Dump(j);
  return r;
}

Response MetricsText(const Request&, HandlerEnv& env) {
  Response r;
  // The server's own metrics, then the process's registry (core/metrics.h:
  // request latency, and what the app wired in: queue depth, workers, ...).
  r.body = env.metrics->Render();
  r.body += metrics::DefaultRegistry().Render();
  // The uploads' group commit (uploads/group_commit.h): rows per
  // transaction is rows / batches.
  const uploads::GroupCommitter::Stats c = env.committer->stats();
  r.body += "# HELP conveyor_upload_commit_batches_total Insert transactions of the upload group commit.\n"
            "# TYPE conveyor_upload_commit_batches_total counter\n"
            "conveyor_upload_commit_batches_total " + std::to_string(c.batches) + "\n"
            "# HELP conveyor_upload_commit_rows_total Upload rows committed or refused by the group commit.\n"
            "# TYPE conveyor_upload_commit_rows_total counter\n"
            "conveyor_upload_commit_rows_total " + std::to_string(c.rows) + "\n"
            "# HELP conveyor_upload_commit_split_batches_total Group transactions that failed and were retried row by row.\n"
            "# TYPE conveyor_upload_commit_split_batches_total counter\n"
            "conveyor_upload_commit_split_batches_total " + std::to_string(c.split_batches) + "\n"
            "# HELP conveyor_upload_queue_round_trips_total Pipelined Redis round trips adding upload jobs.\n"
            "# TYPE conveyor_upload_queue_round_trips_total counter\n"
            "conveyor_upload_queue_round_trips_total " + std::to_string(c.queue_round_trips) + "\n";
  r.content_type = "text/plain; version=0.0.4; charset=utf-8";
  return r;
}

// The status answer's whole body for `row` of job `id`:
// {"success":true,"data":{"jobId":...,"status":...[,progress|result|error]}}.
// Built as text rather than through a json object: the id is a UUID (checked
// by the caller) and the status name a fixed word, so only `error` needs
// escaping, and a status poll then costs a few appends instead of a tree of
// nodes (and one allocation: the body).
std::string StatusBody(std::string_view id, const storage::JobStatusRow& row) {
  constexpr std::string_view kHead = R"({"success":true,"data":{"jobId":")";
  std::string body;
  body.reserve(kHead.size() + id.size() + 64 + (row.result_json ? row.result_json->size() : 0) +
               (row.error ? row.error->size() + 16 : 0));
  body.append(kHead).append(id).append(R"(","status":")");
  body.append(storage::JobStatusName(row.status)).append("\"");
  switch (row.status) {
    case storage::JobStatus::kProcessing: {
      char digits[16];
      auto [end, ec] = std::to_chars(digits, digits + sizeof digits, row.progress);
      body.append(R"(,"progress":)").append(digits, static_cast<size_t>(end - digits));
      break;
    }
    case storage::JobStatus::kCompleted: {
      // The stored result is JSON text; clients get it as an object. Valid
      // text is passed through as it is; anything else goes out as a string.
      body.append(R"(,"result":)");
      if (!row.result_json) {
        body.append("null");
      } else if (json::accept(*row.result_json)) {
        body.append(*row.result_json);
      } else {
        body.append(Dump(json(*row.result_json)));
      }
      break;
    }
    case storage::JobStatus::kFailed:
      body.append(R"(,"error":)").append(Dump(json(row.error.value_or(""))));
      break;
    case storage::JobStatus::kPending:
      break;
  }
  body.append("}}");
  return body;
}

bool IsFinal(storage::JobStatus s) {
  return s == storage::JobStatus::kCompleted || s == storage::JobStatus::kFailed;
}

// Runs on the socket's strand first (Runs::kInlineFirst): a cached final
// state, or the row read without waiting (SQLite), answers there; otherwise
// (PostgreSQL, no idle SQLite reader, a lock) it asks to run on the pool.
// Ownership is checked on every answer: the cache keeps each job's owner,
// the database query filters on it; another user's job is 404 either way.
Response UploadStatus(const Request& req, HandlerEnv& env) {
  const std::string& id = req.params.at(0);
  // Anything that is not a job id shape cannot be a job: same answer as unknown.
  if (!IsUuid(id)) return ErrorResponse(NotFound("job not found"), {}, req.request_id);
  Response r;
  switch (env.status_cache->Lookup(id, req.user_id, &r.body)) {
    case StatusCache::Found::kHit:
      return r;
    case StatusCache::Found::kOtherOwner:
      return ErrorResponse(NotFound("job not found"), {}, req.request_id);
    case StatusCache::Found::kMiss:
      break;
  }
  std::optional<storage::JobStatusRow> row;
  if (!env.may_block) {
    storage::TriedStatusRead tried = env.store->TryGetJobStatusForUser(id, req.user_id);
    if (!tried) return NeedsPool();
    if (!tried->ok()) return StoreErrorResponse(tried->status(), req.request_id);
    row = std::move(**tried);
  } else {
    auto job = env.store->GetJobForUser(id, req.user_id);
    if (!job) return StoreErrorResponse(job.status(), req.request_id);
    if (job->has_value()) {
      storage::JobRecord& j = **job;
      row.emplace(storage::JobStatusRow{j.status, j.progress, std::move(j.result_json),
                                        std::move(j.error)});
    }
  }
  if (!row) return ErrorResponse(NotFound("job not found"), {}, req.request_id);
  r.body = StatusBody(id, *row);
  if (IsFinal(row->status)) env.status_cache->Insert(id, req.user_id, r.body);
  return r;
}

// The API's description, src/http/openapi.json compiled in.
Response OpenApi(const Request&, HandlerEnv&) {
  Response r;
  const EmbeddedFile* doc = FindEmbeddedFile("src/http/openapi.json");
  r.body = doc != nullptr ? std::string(doc->body) : "{}";
  return r;
}

// The web page (web/), compiled in. It talks only to this origin and runs
// only its own script: what a file or the server says is inserted as text,
// and the policy forbids inline script besides.
constexpr std::string_view kPageHeaders =
    "Content-Security-Policy: default-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'\r\n"
    "X-Content-Type-Options: nosniff\r\n"
    "Referrer-Policy: no-referrer\r\n"
    "Cache-Control: no-cache";

Response WebFile(std::string_view name, std::string_view content_type) {
  Response r;
  const EmbeddedFile* f = FindEmbeddedFile(name);
  if (f == nullptr) return ErrorResponse(NotFound("not found"), {}, {});
  r.body = std::string(f->body);
  r.content_type = content_type;
  r.extra_headers = kPageHeaders;
  return r;
}

Response WebIndex(const Request&, HandlerEnv&) {
  return WebFile("web/index.html", "text/html; charset=utf-8");
}
Response WebScript(const Request&, HandlerEnv&) {
  return WebFile("web/app.js", "text/javascript; charset=utf-8");
}
Response WebStyle(const Request&, HandlerEnv&) {
  return WebFile("web/style.css", "text/css; charset=utf-8");
}

Response MemorySearch(const Request& req, HandlerEnv& env) {
  std::string_view code;
  auto query = ParseSearchQuery(req.query, &code);
  if (!query) return ErrorResponse(query.status(), code, req.request_id);
  auto hits = env.store->SearchMemory(req.user_id, query->session_id, query->q, query->limit);
  if (!hits) return StoreErrorResponse(hits.status(), req.request_id);
  json results = json::array();
  for (const auto& h : *hits) {
    results.push_back({{"fileId", h.file_id},
                       {"jobId", h.job_id},
                       {"chunkIndex", h.chunk_index},
                       {"snippet", h.snippet},
                       {"score", h.score}});
  }
  return SuccessResponse(200, Dump(json{{"results", std::move(results)}}));
}

// Splits "/a/b/c" into segments without allocating.
bool MatchPattern(std::string_view pattern, std::string_view path,
                  std::vector<std::string>* params) {
  params->clear();
  while (true) {
    if (pattern.empty() || path.empty()) return pattern.empty() && path.empty();
    if (pattern[0] != '/' || path[0] != '/') return false;
    pattern.remove_prefix(1);
    path.remove_prefix(1);
    size_t pe = pattern.find('/');
    size_t se = path.find('/');
    std::string_view pseg = pattern.substr(0, pe);
    std::string_view sseg = path.substr(0, se);
    if (!pseg.empty() && pseg[0] == ':') {
      if (sseg.empty()) return false;
      params->emplace_back(sseg);
    } else if (pseg != sseg) {
      return false;
    }
    pattern = pe == std::string_view::npos ? std::string_view() : pattern.substr(pe);
    path = se == std::string_view::npos ? std::string_view() : path.substr(se);
  }
}

}  // namespace

std::string JobStatusData(std::string_view id, const storage::JobStatusRow& row) {
  // The status body is {"success":true,"data":<data>}: its `data` is the
  // text between the fixed head and the closing brace.
  constexpr std::string_view kHead = R"({"success":true,"data":)";
  std::string body = StatusBody(id, row);
  return body.substr(kHead.size(), body.size() - kHead.size() - 1);
}

const std::vector<Route>& Routes() {
  // clang-format off
  static const std::vector<Route> kRoutes = {
    // method  path pattern                        handler       auth            runs                body limit        metrics label
    {"POST",   "/api/chat/upload/async",          StartUpload,  Auth::kUser,    Runs::kPool,        kUploadBodyLimit, "upload"},
    {"GET",    "/api/chat/upload/status/:jobId",  UploadStatus, Auth::kUser,    Runs::kInlineFirst, 0,                "upload_status"},
    {"GET",    "/api/chat/upload/events/:jobId",  PushRoute{PushKind::kSse},       Auth::kUser, Runs::kInline, 0, "upload_events"},
    {"GET",    "/api/chat/upload/ws",             PushRoute{PushKind::kWebSocket}, Auth::kUser, Runs::kInline, 0, "upload_ws"},
    // Resumable uploads, tus 1.0 (tus_handler.h).
    {"OPTIONS", "/api/chat/upload/tus",           TusOptions,   Auth::kUser,    Runs::kInline,      0,                "tus_options"},
    {"POST",   "/api/chat/upload/tus",            TusCreate,    Auth::kUser,    Runs::kPool,        kUploadBodyLimit, "tus_create"},
    {"HEAD",   "/api/chat/upload/tus/:uploadId",  TusHead,      Auth::kUser,    Runs::kPool,        0,                "tus_head"},
    {"PATCH",  "/api/chat/upload/tus/:uploadId",  TusPatch,     Auth::kUser,    Runs::kPool,        kUploadBodyLimit, "tus_patch"},
    {"DELETE", "/api/chat/upload/tus/:uploadId",  TusDelete,    Auth::kUser,    Runs::kPool,        0,                "tus_delete"},
    {"GET",    "/api/chat/memory/search",         MemorySearch, Auth::kUser,    Runs::kPool,        0,                "memory_search"},
    {"GET",    "/api/openapi.json",               OpenApi,      Auth::kUser,    Runs::kInline,      0,                "openapi"},
    {"GET",    "/",                               WebIndex,     Auth::kNone,    Runs::kInline,      0,                "web"},
    {"GET",    "/app.js",                         WebScript,    Auth::kNone,    Runs::kInline,      0,                "web"},
    {"GET",    "/style.css",                      WebStyle,     Auth::kNone,    Runs::kInline,      0,                "web"},
    {"GET",    "/healthz",                        Healthz,      Auth::kNone,    Runs::kInline,      0,                "healthz"},
    {"GET",    "/readyz",                         Readyz,       Auth::kNone,    Runs::kPool,        0,                "readyz"},
    {"GET",    "/metrics",                        MetricsText,  Auth::kMetrics, Runs::kPool,        0,                "metrics"},
  };
  // clang-format on
  return kRoutes;
}

RouteMatch MatchRoute(std::string_view method, std::string_view path) {
  RouteMatch m;
  std::vector<std::string> params;
  for (const Route& r : Routes()) {
    if (!MatchPattern(r.pattern, path, &params)) continue;
    if (r.method == method) {
      m.route = &r;
      m.method_mismatch = false;
      m.params = std::move(params);
      return m;
    }
    m.method_mismatch = true;
  }
  return m;
}

}  // namespace conveyor::http
