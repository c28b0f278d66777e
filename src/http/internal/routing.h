// File: http/internal/routing.h
//
// The route table's types (rows in routes.cc) and the Beast-free request and
// response the handlers see. A row's handler is one of two kinds:
//
//   Handler        Request in, Response out, for routes without a body; the
//                  row's `runs` says where the session calls it: on the
//                  connection's strand (kInline), on the blocking pool
//                  (kPool), or on the strand first and then, only if the
//                  handler answers NeedsPool(), on the pool (kInlineFirst:
//                  a read that is usually immediate, such as a status poll
//                  on SQLite, skips the hop to the pool and back).
//   StreamHandler  for a route whose body streams in (the upload): called
//                  with the request head before any body byte is read, it
//                  returns a BodyConsumer, which the session then feeds each
//                  body buffer as it arrives (on the pool, while it reads the
//                  next one) and finally asks for the response.
//
// The session (session.cc) owns the socket: framing, limits, timeouts and
// reading; handlers see bytes and answer with a Response.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace conveyor::storage {
class BlobStore;
class MetadataStore;
}  // namespace conveyor::storage
namespace conveyor::queue {
class Queue;
class UserLimiter;
}  // namespace conveyor::queue
namespace conveyor::uploads {
class GroupCommitter;
class TusStore;
}  // namespace conveyor::uploads

namespace conveyor::http {

struct ServerSettings;
class Metrics;
class RateLimiter;
class StatusCache;

// The request's header fields, for the few handlers that read more than
// Request carries (the tus routes). Valid while the request is served.
class RequestFields {
 public:
  virtual ~RequestFields() = default;
  // The value of field `name` (case-insensitive), "" when absent.
  virtual std::string_view Get(std::string_view name) const = 0;
};

struct Request {
  std::string_view method;          // "GET"
  std::string_view path;            // target without the query
  std::string_view query;           // after '?', still percent-encoded
  std::vector<std::string> params;  // values of the pattern's :params, in order
  std::string user_id;              // set when the route requires auth
  std::string tier;                 // the token's `tier` claim ("" if none)
  std::string request_id;           // X-Request-Id: the client's (if valid) or generated
  std::string_view content_type;    // the Content-Type field ("" when absent)
  bool chunked = false;             // Transfer-Encoding: chunked
  uint64_t content_length = 0;      // Content-Length (0 when chunked or absent)
  // When the request header had been read (for the upload duration metric).
  std::chrono::steady_clock::time_point start;
  const RequestFields* fields = nullptr;  // every header field (null in unit tests)

  std::string_view Field(std::string_view name) const {
    return fields != nullptr ? fields->Get(name) : std::string_view();
  }
};

struct Response {
  int status = 200;
  std::string body;
  std::string_view content_type = "application/json";
  int64_t retry_after_s = -1;  // >= 0: send Retry-After
  // More header fields, written as they are: "Name: value" lines joined by
  // "\r\n", without a final one (the web page's Content-Security-Policy,
  // the tus routes' Upload-Offset...). An empty content_type sends none.
  std::string extra_headers;
};

// What handlers may use. Pointers are never null (ServerDeps are required).
struct HandlerEnv {
  storage::MetadataStore* store;
  queue::Queue* queue;
  storage::BlobStore* blobs;
  uploads::GroupCommitter* committer;  // rows and jobs of accepted uploads
  RateLimiter* limiter;                // uploads per user, this process only
  // Per-user limits shared through Redis (queue/limits.h); null: only
  // `limiter` applies.
  queue::UserLimiter* user_limits;
  Metrics* metrics;
  const ServerSettings* settings;
  StatusCache* status_cache;  // final job states (status_cache.h); may be disabled
  // False while a kInlineFirst handler runs on the strand: it must not block
  // and answers NeedsPool() when it would have to.
  bool may_block = true;
  // Partial uploads of the tus routes (uploads/tus_store.h); null: those
  // routes answer 404.
  uploads::TusStore* tus = nullptr;
};

// Response::status of NeedsPool(): never sent.
inline constexpr int kNeedsPoolStatus = 0;

// What a kInlineFirst handler answers on the strand when it would have to
// block: the session calls it again on the pool (with may_block true).
inline Response NeedsPool() {
  Response r;
  r.status = kNeedsPoolStatus;
  return r;
}

using Handler = Response (*)(const Request&, HandlerEnv&);

// The body of one request to a streaming route, handed over as it arrives.
// The session calls Feed for every body buffer, in order, then Finish once;
// never two calls at once.
class BodyConsumer {
 public:
  virtual ~BodyConsumer() = default;

  // The next bytes of the body (never empty). Runs on the blocking pool, so
  // it may block (hash, write). A response refuses the body: the session
  // sends it and closes the connection without reading the rest.
  virtual std::optional<Response> Feed(std::string_view bytes) = 0;

  // The body is complete. Runs on the blocking pool, right after the last
  // Feed in the same task. Calls `done` exactly once with the response, from
  // any thread, now or later (an upload answers once its group commit is
  // done); the session keeps the consumer alive and the connection waiting
  // until then.
  virtual void Finish(std::function<void(Response)> done) = 0;

  // Whether the bytes that arrived before a body was cut off (the client
  // went away, fell silent or too slow) still go to Feed, whose answer is
  // then ignored, before the consumer is destroyed. A resumable upload keeps
  // them; the default drops them unread.
  virtual bool FeedsCutOffBody() const { return false; }
};

// What a StreamHandler returns: the body's consumer, or a response that
// refuses the request before its body is read.
using StreamStart = std::variant<Response, std::unique_ptr<BodyConsumer>>;

// Called with the request head (body framing in Request) on the
// connection's strand, before any body byte is read: it must not block.
using StreamHandler = StreamStart (*)(const Request&, HandlerEnv&);

// A push route (sse.cc, websocket.cc): the session hands its connection
// over after auth and closes it when the push ends. Auth::kUser on the
// WebSocket row also accepts `?access_token=<JWT>` (browsers cannot set
// headers on a WebSocket).
enum class PushKind { kSse, kWebSocket };
struct PushRoute {
  PushKind kind;
};

// Body limit of a row whose limit is the upload limit (settings) plus the
// multipart overhead allowance.
inline constexpr int64_t kUploadBodyLimit = -1;

enum class Auth {
  kNone,     // open
  kUser,     // Bearer JWT (auth.h); the user id goes to Request::user_id
  kMetrics,  // Bearer METRICS_TOKEN when one is set, else open
};

// Where a row's Handler runs (see the file comment).
enum class Runs {
  kInline,       // on the connection's strand: never blocks
  kPool,         // on the blocking pool: store, queue or file calls
  kInlineFirst,  // on the strand; on the pool when it answers NeedsPool()
};

struct Route {
  std::string_view method;   // "GET", "POST"
  std::string_view pattern;  // "/api/chat/upload/status/:jobId"
  std::variant<Handler, StreamHandler, PushRoute> handler;
  Auth auth;              // checked before any body
  Runs runs;              // Handler: where it runs (StreamHandler: ignored)
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
