// File: http/internal/routing.h
//
// The route table's types (rows in routes.cc) and the Beast-free request and
// response the handlers see. Handlers of ordinary routes are plain functions:
// Request in, Response out; the session runs them on the blocking pool when
// the row says `blocking`. The upload route is streamed by the session itself
// (kind kUpload) and only takes its limits and auth flag from its row.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace conveyor::storage {
class MetadataStore;
}
namespace conveyor::queue {
class Queue;
}

namespace conveyor::http {

struct ServerSettings;
class Metrics;

struct Request {
  std::string_view method;          // "GET"
  std::string_view path;            // target without the query
  std::string_view query;           // after '?', still percent-encoded
  std::vector<std::string> params;  // values of the pattern's :params, in order
  std::string user_id;              // set when the route requires auth
  uint64_t request_id = 0;          // for logs
};

struct Response {
  int status = 200;
  std::string body;
  std::string_view content_type = "application/json";
  int64_t retry_after_s = -1;  // >= 0: send Retry-After
};

// What handlers may use. Pointers are never null (ServerDeps are required).
struct HandlerEnv {
  storage::MetadataStore* store;
  queue::Queue* queue;
  Metrics* metrics;
  const ServerSettings* settings;
};

using Handler = Response (*)(const Request&, HandlerEnv&);

enum class RouteKind {
  kSimple,  // handler(Request) -> Response
  kUpload,  // the streaming multipart upload, run by the session
};

// Body limit of a row whose limit is the upload limit (settings) plus the
// multipart overhead allowance.
inline constexpr int64_t kUploadBodyLimit = -1;

enum class Auth {
  kNone,     // open
  kUser,     // Bearer JWT (auth.h); the user id goes to Request::user_id
  kMetrics,  // Bearer METRICS_TOKEN when one is set, else open
};

struct Route {
  std::string_view method;   // "GET", "POST"
  std::string_view pattern;  // "/api/chat/upload/status/:jobId"
  RouteKind kind;
  Handler handler;        // null for kUpload
  Auth auth;              // checked before any body
  bool blocking;          // run on the blocking pool (store/queue calls)
  int64_t body_limit;     // bytes; 0 = no body expected; kUploadBodyLimit
  std::string_view name;  // metrics label
};

// The table, in routes.cc.
const std::vector<Route>& Routes();

struct RouteMatch {
  const Route* route = nullptr;  // null: no route
  bool method_mismatch = false;  // the path exists under another method (405)
  std::vector<std::string> params;
};

RouteMatch MatchRoute(std::string_view method, std::string_view path);

}  // namespace conveyor::http
