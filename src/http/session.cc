// One client connection: read a request header, route it, answer, repeat.
//
// Design. Each connection is a C++20 coroutine on its own strand, so its
// state needs no locks. The header is read with Beast's parser (bounded by
// max_header_bytes and header_timeout_ms), then checked by
// RequestHeadChecker (request_head.h: framing and bytes; anything that could
// smuggle a request is 400 and close); routing, auth, rate limit and size
// checks are all decided from the header, before a single body byte is read,
// so a refused upload costs only its header. Ordinary routes have no body;
// their handler runs on the blocking pool when it touches the store, or on
// the strand first when its row says so (routing.h, Runs::kInlineFirst: the
// status poll), hopping to the pool only if it cannot answer without
// blocking.
//
// A streaming route's body (the upload) is read by the session and handed to
// the route's BodyConsumer (routing.h) as it arrives, never buffered whole,
// and never through Beast's body parser. A Content-Length body is read
// straight from the socket into fixed 512 KiB buffers (bytes the header read
// already pulled in are taken first). A chunked body is read into the same
// buffers and decoded in place by ChunkedDecoder (chunked.h), which keeps no
// buffer of its own and bounds size lines and trailers, so no framing makes
// the session's memory grow. The two buffers are allocated when the first
// body bytes arrive, not with the header. Each filled buffer goes to the
// consumer's Feed in a pool task while the coroutine reads the next one into
// the other buffer (two buffers, alternating), so socket reads and the
// consumer's work (parse, hash, write) overlap; memory per upload is two
// buffers whatever the file size. The last buffer's Feed and the consumer's
// Finish run in one pool task; Finish answers through a callback (an upload
// answers once its group commit is done, on the committer's thread) and the
// coroutine resumes on its strand with the response. So a small body, which
// fits one buffer, costs one pool hop in total.
//
// Every read has a deadline (keepalive_timeout_ms between requests,
// header_timeout_ms for a header, body_idle_timeout_ms per body read) and a
// body must keep up body_min_rate_bytes per body_rate_window_ms; a connection
// that misses one is closed; an unfinished upload's temp file is deleted when
// its FileSink is destroyed. After an error response with unread body bytes
// the connection is closed (Connection: close) by a lingering close (see
// LingerClose), so the client sees the response instead of a reset.
#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <unordered_map>
#include <variant>

#include "core/ids.h"
#include "core/log.h"
#include "core/metrics.h"
#include "http/auth.h"
#include "http/chunked.h"
#include "http/internal/error_response.h"
#include "http/internal/push.h"
#include "http/internal/query.h"
#include "http/internal/routing.h"
#include "http/internal/server_context.h"
#include "http/request_head.h"

namespace conveyor::http {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using tcp = net::ip::tcp;
using namespace net::experimental::awaitable_operators;

namespace {

// Each of an upload's two read buffers.
constexpr size_t kUploadBufferBytes = 512 * 1024;
// Content-Length may exceed max_upload_bytes by this much before the header
// alone earns a 413: room for the multipart framing, part headers, the
// session_id and a message of up to uploads::kMaxMessageBytes (64 KiB). The
// file part itself is held to max_upload_bytes exactly while it streams.
constexpr int64_t kMultipartOverheadBytes = 128 * 1024;
// First read of a keep-alive connection's next request, and of a body (into
// the small header buffer, before the upload buffers exist).
constexpr size_t kKeepAliveReadBytes = 1024;
constexpr size_t kFirstBodyReadBytes = 4096;
// An idle connection's header buffer is shrunk back when it grew past this.
constexpr size_t kIdleBufferBytes = 4096;

constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";

auto AsTuple() { return net::as_tuple(net::use_awaitable); }

// Runs `fn` on the blocking pool and resumes the calling coroutine on its own
// executor (its strand) with the result. An exception from `fn` is rethrown in
// the coroutine.
//
// `fn` must be trivially copyable (a lambda capturing references and small
// values): GCC 12 mishandles non-trivial by-value coroutine parameters.
template <class F>
net::awaitable<std::invoke_result_t<F&>> OnPool(ServerContext& ctx, F fn) {
  static_assert(std::is_trivially_copyable_v<F>, "capture by reference");
  using R = std::invoke_result_t<F&>;
  auto result = co_await net::async_initiate<decltype(net::use_awaitable),
                                             void(std::exception_ptr, std::optional<R>)>(
      [&ctx](auto handler, F f) {
        // Keep the io_context alive (outstanding work) while the task runs.
        auto home = net::prefer(net::get_associated_executor(handler),
                                net::execution::outstanding_work.tracked);
        net::post(ctx.pool, [handler = std::move(handler), f = std::move(f), home]() mutable {
          std::optional<R> r;
          std::exception_ptr e;
          try {
            r.emplace(f());
          } catch (...) {
            e = std::current_exception();
          }
          net::post(home, [handler = std::move(handler), e, r = std::move(r)]() mutable {
            std::move(handler)(e, std::move(r));
          });
        });
      },
      net::use_awaitable, std::move(fn));
  co_return std::move(*result);
}

// Runs consumer.Feed(last) (unless `last` is empty) and then
// consumer.Finish in one pool task, and resumes the calling coroutine on its
// own executor (its strand) with the response once Finish calls back, from
// whichever thread and however late. A refused Feed answers at once. An
// exception from either is answered 500 (and a late second answer ignored).
net::awaitable<Response> FeedAndFinish(ServerContext& ctx, BodyConsumer& consumer,
                                       std::string_view last, std::string_view request_id) {
  return net::async_initiate<decltype(net::use_awaitable), void(Response)>(
      [&ctx, &consumer, last, request_id](auto handler) {
        auto home = net::prefer(net::get_associated_executor(handler),
                                net::execution::outstanding_work.tracked);
        // The handler is move-only and the callback a std::function: share it.
        auto waiting = std::make_shared<std::optional<decltype(handler)>>(std::move(handler));
        auto answered = std::make_shared<std::atomic<bool>>(false);
        std::function<void(Response)> done = [waiting, answered, home](Response r) {
          if (answered->exchange(true)) return;
          net::post(home, [waiting, r = std::move(r)]() mutable {
            std::move (**waiting)(std::move(r));
          });
        };
        net::post(ctx.pool, [&consumer, last, request_id, done]() {
          ScopedLogContext log_context({std::string(request_id), "", ""});
          try {
            if (!last.empty()) {
              if (auto refused = consumer.Feed(last)) return done(std::move(*refused));
            }
            consumer.Finish(done);
          } catch (const std::exception& e) {
            done(ErrorResponse(Internal(e.what()), {}, request_id));
          } catch (...) {
            done(ErrorResponse(Internal("unknown exception"), {}, request_id));
          }
        });
      },
      net::use_awaitable);
}

std::string_view ToView(beast::string_view s) { return {s.data(), s.size()}; }

// A new request id: a random prefix per process and a counter, so ids are
// unique across processes and cost no random bytes per request.
std::string NewRequestId(ServerContext& ctx) {
  static const std::string prefix = NewUuid().substr(0, 8);
  char buf[32];
  std::snprintf(buf, sizeof buf, "-%012llx",
                static_cast<unsigned long long>(
                    ctx.next_request_id.fetch_add(1, std::memory_order_relaxed)));
  return prefix + buf;
}

// conveyor_http_request_duration_seconds of `route` (route names are the
// route table's literals, so their address is a stable key per thread).
metrics::HistogramValue& RouteLatency(std::string_view route) {
  static auto& family = metrics::DefaultRegistry().Histogram(
      "conveyor_http_request_duration_seconds",
      "HTTP request time from the end of the request header to the response written, by route.",
      {"route"}, metrics::kLatencyBuckets);
  thread_local std::unordered_map<const char*, metrics::HistogramValue*> cache;
  auto [it, added] = cache.try_emplace(route.data(), nullptr);
  if (added) it->second = &family.Get({std::string(route)});
  return *it->second;
}

bool IEquals(std::string_view a, std::string_view b) {
  return beast::iequals(beast::string_view(a.data(), a.size()),
                        beast::string_view(b.data(), b.size()));
}

// What ended a FillBuffer: trivially copyable (it crosses co_await).
enum class FillError {
  kNone,
  kSocket,    // Fill::ec: the client went away, was silent, or half-closed
  kFraming,   // chunked framing refused (Session::body_error_ says why)
  kTooLarge,  // chunked body past the route's limit
  kTooSlow,   // below body_min_rate_bytes per body_rate_window_ms
};

struct Fill {
  FillError error = FillError::kNone;
  beast::error_code ec;  // kSocket
  size_t n = 0;          // bytes placed in the buffer
  bool done = false;     // the body is complete
};

}  // namespace

// Request::fields over the Beast request whose header was read.
class BeastFields final : public RequestFields {
 public:
  explicit BeastFields(const bhttp::request<bhttp::buffer_body>::header_type& h) : h_(h) {}
  std::string_view Get(std::string_view name) const override {
    return ToView(h_[beast::string_view(name.data(), name.size())]);
  }

 private:
  const bhttp::request<bhttp::buffer_body>::header_type& h_;
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(ServerContext& ctx, tcp::socket socket, uint64_t id, std::string client)
      : ctx_(ctx), stream_(std::move(socket)), client_(std::move(client)), id_(id) {
    ctx_.metrics.ConnectionOpened();
  }
  ~Session() {
    ctx_.metrics.ConnectionClosed();
    {
      std::lock_guard lock(ctx_.sessions_mu);
      ctx_.sessions.erase(id_);
      if (auto it = ctx_.sessions_per_client.find(client_);
          it != ctx_.sessions_per_client.end() && --it->second <= 0) {
        ctx_.sessions_per_client.erase(it);
      }
    }
    if (ctx_.open_sessions.fetch_sub(1) == 1 && ctx_.stopping.load() && ctx_.on_drained) {
      ctx_.on_drained();
    }
  }

  net::any_io_executor executor() { return stream_.get_executor(); }

  // Thread-safe: hops to the session's strand.
  void Close(bool hard) {
    net::post(stream_.get_executor(), [self = shared_from_this(), hard] {
      if (hard || self->idle_ || self->push_) {
        beast::error_code ec;
        self->stream_.socket().close(ec);
      }
    });
  }

  // Since when (steady ms) the session waits for a request header; 0 while
  // it serves one. Read from any thread (eviction at max_connections).
  int64_t idle_since_ms() const { return idle_since_ms_.load(std::memory_order_relaxed); }

  net::awaitable<void> Run() {
    for (bool first = true;; first = false) {
      if (ctx_.stopping.load()) break;
      SetIdle(true);
      parser_.emplace();
      parser_->header_limit(static_cast<std::uint32_t>(ctx_.settings.max_header_bytes));
      // Body limits are the route's business, decided after the header; the
      // session reads bodies itself, never through this parser.
      parser_->body_limit(boost::none);
      if (!first && buffer_.size() == 0) {
        if (buffer_.capacity() > kIdleBufferBytes) buffer_.shrink_to_fit();
        // Between two requests: the next one may take keepalive_timeout_ms
        // to start, then header_timeout_ms to arrive whole.
        stream_.expires_after(std::chrono::milliseconds(ctx_.settings.keepalive_timeout_ms));
        auto space = buffer_.prepare(kKeepAliveReadBytes);
        auto [ec, n] = co_await stream_.async_read_some(space, AsTuple());
        if (ec) break;  // closed, idle too long, or shut down
        buffer_.commit(n);
      }
      beast::error_code ec;
      if (!ParseBufferedHeader(&ec)) {
        stream_.expires_after(std::chrono::milliseconds(ctx_.settings.header_timeout_ms));
        auto [rec, n] = co_await bhttp::async_read_header(stream_, buffer_, *parser_, AsTuple());
        ec = rec;
      }
      SetIdle(false);
      request_start_ = std::chrono::steady_clock::now();
      request_id_.clear();
      head_only_ = false;
      if (ec) {
        // After an answered error the rest of the request may still come.
        body_unread_ = true;
        if (ec == bhttp::error::header_limit) {
          out_ = ErrorResponse(InvalidArgument("request header too large"), "header_too_large");
          co_await SendOut("unmatched", false);
        } else if (ec == bhttp::error::end_of_stream || ec == net::error::eof ||
                   ec == beast::error::timeout || ec == net::error::operation_aborted ||
                   ec == net::error::connection_reset || ec == net::error::bad_descriptor) {
          // The client went away, was idle too long, or we are shutting down.
          no_linger_ = true;
        } else {
          out_ = ErrorResponse(InvalidArgument("malformed HTTP request"), "malformed_request");
          co_await SendOut("unmatched", false);
        }
        break;
      }
      if (Status s = CheckHead(); !s.ok()) {
        // The body's extent is unknown: answer and close (RFC 9112 §6.3).
        body_unread_ = true;
        out_ = ErrorResponse(InvalidArgument(s.message()), "malformed_request");
        co_await SendOut("unmatched", false);
        break;
      }
      ctx_.metrics.EnterRequest();
      bool keep_alive = co_await Handle();
      ctx_.metrics.LeaveRequest();
      if (!keep_alive) break;
    }
    if (handed_off_) {
      // The socket is the WebSocket connection's; it keeps this session
      // (the connection's accounting) but none of its buffers.
      ReleaseBuffers();
      co_return;
    }
    co_await LingerClose();
    beast::error_code ec;
    stream_.socket().close(ec);
  }

 private:
  void SetIdle(bool idle) {
    idle_ = idle;
    idle_since_ms_.store(idle ? MonotonicMs() : 0, std::memory_order_relaxed);
  }

  // A keep-alive request's header usually arrives whole in the read that
  // ended the wait between requests: it is parsed here from buffer_, which
  // spares async_read_header's completion (one more trip through the
  // scheduler and the strand per request). True when that settled the
  // header: complete, or an error in *ec (header_limit included: the parser
  // applies it); false when more bytes must be read (the parser keeps what
  // it consumed, and async_read_header goes on from there).
  bool ParseBufferedHeader(beast::error_code* ec) {
    if (buffer_.size() == 0) return false;
    const size_t used = parser_->put(buffer_.data(), *ec);
    buffer_.consume(used);
    if (*ec == bhttp::error::need_more) {
      ec->clear();
      return false;
    }
    return *ec || parser_->is_header_done();
  }

  // The head rules of request_head.h; sets framing_ and body_unread_.
  Status CheckHead() {
    const auto& req = parser_->get();
    RequestHeadChecker check;
    if (Status s = check.Target(ToView(req.target())); !s.ok()) return s;
    for (const auto& field : req) {
      if (Status s = check.Field(ToView(field.name_string()), ToView(field.value())); !s.ok()) {
        return s;
      }
    }
    auto framing = check.Finish(req.version());
    if (!framing) return framing.status();
    framing_ = *framing;
    body_unread_ = framing_.kind == BodyFraming::kChunked ||
                   (framing_.kind == BodyFraming::kContentLength && framing_.content_length > 0);
    return OkStatus();
  }

  // Serves one request whose header is in parser_. True to keep the
  // connection for another request.
  net::awaitable<bool> Handle() {
    auto& req = parser_->get();
    const auto start = std::chrono::steady_clock::now();
    Request r;
    // The client's own id when it is safe to log and echo, else a new one.
    const std::string_view client_id = ToView(req["X-Request-Id"]);
    r.request_id = IsValidRequestId(client_id) ? std::string(client_id) : NewRequestId(ctx_);
    request_id_ = r.request_id;
    r.method = ToView(req.method_string());
    std::string_view target = ToView(req.target());
    size_t q = target.find('?');
    r.path = target.substr(0, q);
    if (q != std::string_view::npos) r.query = target.substr(q + 1);
    r.content_type = ToView(req[bhttp::field::content_type]);
    r.chunked = framing_.kind == BodyFraming::kChunked;
    r.content_length =
        framing_.kind == BodyFraming::kContentLength ? framing_.content_length : 0;
    r.start = start;
    fields_.emplace(req.base());
    r.fields = &*fields_;
    // A HEAD answer has the fields a GET's would have, and no body.
    head_only_ = req.method() == bhttp::verb::head;

    const bool has_body = body_unread_;
    // A response sent before the body was read ends the connection: closing
    // is how the unread body is skipped.
    bool keep_alive = req.keep_alive() && !ctx_.stopping.load();

    RouteMatch m = MatchRoute(r.method, r.path);
    if (m.route == nullptr) {
      Response resp = m.method_mismatch ? ErrorResponse(InvalidArgument("method not allowed"),
                                                        "method_not_allowed")
                                        : ErrorResponse(NotFound("no such route"));
      out_ = std::move(resp);
      co_return co_await SendOut("unmatched", keep_alive && !has_body);
    }
    const Route& route = *m.route;
    r.params = std::move(m.params);

    const PushRoute* push = std::get_if<PushRoute>(&route.handler);
    if (route.auth == Auth::kUser) {
      std::string_view authorization = ToView(req[bhttp::field::authorization]);
      std::string from_query;
      if (authorization.empty() && push && push->kind == PushKind::kWebSocket) {
        // Browsers cannot set headers on a WebSocket: ?access_token=<JWT>.
        from_query = QueryAccessToken(r.query);
        authorization = from_query;
      }
      auto user = ctx_.tokens.Verify(authorization, NowMs() / 1000, &r.tier);
      if (!user) {
        out_ = ErrorResponse(Unauthenticated(user.status().message()), {}, r.request_id);
        co_return co_await SendOut(route.name, keep_alive && !has_body);
      }
      r.user_id = std::move(*user);
    } else if (route.auth == Auth::kMetrics && !MetricsTokenMatches()) {
      out_ = ErrorResponse(Unauthenticated("metrics token required"), {}, r.request_id);
      co_return co_await SendOut(route.name, keep_alive && !has_body);
    }

    if (push) {
      // The connection is the push stream's until it ends; then it closes.
      push_ = true;
      if (push->kind == PushKind::kSse) {
        const std::string last_event_id(ToView(req["Last-Event-ID"]));
        co_await ServeSse(ctx_, stream_, r, last_event_id);
      } else {
        if (co_await ServeWebSocket(ctx_, stream_, req, r.user_id, shared_from_this())) {
          handed_off_ = true;  // the WebSocket connection owns this session now
          co_return false;
        }
      }
      no_linger_ = true;
      co_return false;
    }
    if (std::holds_alternative<StreamHandler>(route.handler)) {
      co_return co_await HandleStream(r, route, keep_alive);
    }
    const Handler handler = std::get<Handler>(route.handler);
    HandlerEnv env = Env();
    // The log context is set around each synchronous stretch (never across
    // a co_await, which may resume on another thread).
    auto run = [&] {
      ScopedLogContext log_context({r.request_id, "", r.user_id});
      return handler(r, env);
    };
    if (route.runs == Runs::kPool) {
      out_ = co_await OnPool(ctx_, run);
    } else {
      env.may_block = false;
      out_ = run();
      if (out_.status == kNeedsPoolStatus && route.runs == Runs::kInlineFirst) {
        env.may_block = true;
        out_ = co_await OnPool(ctx_, run);
      }
    }
    co_return co_await SendOut(route.name, keep_alive && !has_body);
  }

  // METRICS_TOKEN unset, or "Authorization: Bearer <METRICS_TOKEN>" (compared
  // in constant time).
  bool MetricsTokenMatches() {
    const std::string& want = ctx_.settings.metrics_token;
    if (want.empty()) return true;
    auto token = BearerToken(ToView(parser_->get()[bhttp::field::authorization]));
    if (!token || token->size() != want.size()) return false;
    unsigned char diff = 0;
    for (size_t i = 0; i < want.size(); ++i) {
      diff |= static_cast<unsigned char>((*token)[i] ^ want[i]);
    }
    return diff == 0;
  }

  // "Bearer <access_token>" from the query string, or "" without one.
  static std::string QueryAccessToken(std::string_view query) {
    std::string token;
    ParseQuery(query, [&token](std::string& key, std::string& value) {
      if (key == "access_token") token = std::move(value);
    });
    return token.empty() ? std::string() : "Bearer " + token;
  }

  HandlerEnv Env() {
    HandlerEnv env{ctx_.deps.store,  ctx_.deps.queue,       ctx_.deps.blobs,
                   ctx_.committer.get(), &ctx_.limiter,     ctx_.deps.user_limits,
                   &ctx_.metrics,    &ctx_.settings,        &ctx_.status_cache,
                   /*may_block=*/true};
    env.tus = ctx_.deps.tus;
    return env;
  }

  // A streaming route: size checks from the header, the route's start
  // (which may refuse), 100-continue, then the body buffer by buffer into
  // the route's BodyConsumer (see the file comment).
  net::awaitable<bool> HandleStream(const Request& r, const Route& route, bool keep_alive) {
    auto& req = parser_->get();
    const auto& st = ctx_.settings;
    const int64_t body_limit = route.body_limit == kUploadBodyLimit
                                   ? st.max_upload_bytes + kMultipartOverheadBytes
                                   : route.body_limit;
    if (r.content_length > static_cast<std::uint64_t>(body_limit)) {
      out_ = ErrorResponse(
          ResourceExhausted("the upload exceeds " + std::to_string(st.max_upload_bytes) + " bytes"),
          "payload_too_large", r.request_id);
      co_return co_await SendOut(route.name, false);
    }
    HandlerEnv env = Env();
    StreamStart started = std::get<StreamHandler>(route.handler)(r, env);
    if (auto* refused = std::get_if<Response>(&started)) {
      // Refused from the header: the connection stays only when no body
      // bytes are left to skip.
      out_ = std::move(*refused);
      co_return co_await SendOut(route.name, keep_alive && !body_unread_);
    }
    std::unique_ptr<BodyConsumer> consumer = std::move(std::get<1>(started));
    if (IEquals(ToView(req[bhttp::field::expect]), "100-continue")) {
      stream_.expires_after(std::chrono::milliseconds(st.body_idle_timeout_ms));
      auto [ec, n] = co_await net::async_write(
          stream_, net::buffer(kContinue.data(), kContinue.size()), AsTuple());
      if (ec) co_return false;
    }
    body_limit_ = body_limit;
    remaining_ = static_cast<int64_t>(r.content_length);
    if (!r.chunked && r.content_length == 0) {
      // No body (a tus creation without data): straight to the answer.
      body_unread_ = false;
      BodyConsumer& only = *consumer;
      out_ = co_await FeedAndFinish(ctx_, only, {}, r.request_id);
      co_return co_await SendOut(route.name, keep_alive);
    }
    if (r.chunked) {
      ChunkedLimits limits;
      limits.max_line_bytes = static_cast<size_t>(st.max_chunk_line_bytes);
      limits.max_trailer_bytes = static_cast<size_t>(st.max_trailer_bytes);
      chunked_.emplace(limits);
    }
    window_start_ = std::chrono::steady_clock::now();
    window_bytes_ = 0;

    // The upload buffers are allocated only once body bytes arrived: a client
    // that sends a header and then nothing costs a few KiB, not 1 MiB.
    if (buffer_.size() == 0) {
      Fill first = co_await AwaitBody();
      if (first.error != FillError::kNone) co_return co_await BodyReadFailed(first, r, route);
    }
    char* bufs[2] = {Buffer(0), nullptr};
    int cur = 0;
    Fill f = co_await FillBuffer(bufs[cur], r.chunked);
    for (;;) {
      if (f.error != FillError::kNone) {
        if ((f.error == FillError::kSocket || f.error == FillError::kTooSlow) && f.n > 0 &&
            consumer->FeedsCutOffBody()) {
          // What did arrive is kept (a tus PATCH): one last Feed.
          BodyConsumer* c = consumer.get();
          std::string_view got(bufs[cur], f.n);
          (void)co_await OnPool(ctx_, [c, got] { return c->Feed(got); });
        }
        co_return co_await BodyReadFailed(f, r, route);
      }
      std::string_view chunk(bufs[cur], f.n);
      if (f.done) {
        // The last buffer and the answer in one pool task.
        body_unread_ = false;
        BodyConsumer& last = *consumer;
        out_ = co_await FeedAndFinish(ctx_, last, chunk, r.request_id);
        co_return co_await SendOut(route.name, keep_alive);
      }
      if (bufs[1 - cur] == nullptr) bufs[1 - cur] = Buffer(1 - cur);
      // This buffer goes to the consumer while the next one fills.
      BodyConsumer* c = consumer.get();
      auto [refused, next] =
          co_await (OnPool(ctx_, [c, chunk] { return c->Feed(chunk); }) &&
                    FillBuffer(bufs[1 - cur], r.chunked));
      if (refused) {
        out_ = std::move(*refused);
        co_return co_await SendOut(route.name, false);
      }
      f = next;
      cur = 1 - cur;
    }
  }

  // A body read ended in an error: the client is gone or silent (nothing to
  // answer), too slow, or the body broke the framing or a limit (answer, then
  // close).
  net::awaitable<bool> BodyReadFailed(const Fill& f, const Request& r, const Route& route) {
    switch (f.error) {
      case FillError::kTooLarge:
        out_ = ErrorResponse(ResourceExhausted("the upload exceeds " +
                                               std::to_string(ctx_.settings.max_upload_bytes) +
                                               " bytes"),
                             "payload_too_large", r.request_id);
        co_return co_await SendOut(route.name, false);
      case FillError::kFraming:
        out_ = ErrorResponse(InvalidArgument("malformed chunked body: " + body_error_.message()),
                             "malformed_body", r.request_id);
        co_return co_await SendOut(route.name, false);
      case FillError::kTooSlow:
        spdlog::info("request {}: upload below {} bytes per {} ms; closing", r.request_id,
                     ctx_.settings.body_min_rate_bytes, ctx_.settings.body_rate_window_ms);
        // No lingering: that would give a slow client more time, not less.
        no_linger_ = true;
        out_ = ErrorResponse(DeadlineExceeded("the body arrives too slowly"), "body_too_slow",
                             r.request_id);
        co_return co_await SendOut(route.name, false);
      case FillError::kSocket:
      case FillError::kNone:
        break;
    }
    if (f.ec == net::error::eof) {
      // The client half-closed before sending the whole body: it may still
      // read an answer.
      body_unread_ = false;
      out_ = ErrorResponse(InvalidArgument("the body ended early"), "malformed_body", r.request_id);
      co_return co_await SendOut(route.name, false);
    }
    spdlog::info("request {}: upload abandoned: {}", r.request_id, f.ec.message());
    no_linger_ = true;  // silent past its timeout, or gone
    co_return false;
  }

  // Counts `got` body bytes just read against the minimum rate. True when the
  // body is too slow: fewer than body_min_rate_bytes per body_rate_window_ms
  // (pro rata) arrived over a window that has passed.
  bool TooSlow(size_t got) {
    window_bytes_ += static_cast<int64_t>(got);
    const int64_t min_bytes = ctx_.settings.body_min_rate_bytes;
    if (min_bytes <= 0) return false;
    auto now = std::chrono::steady_clock::now();
    int64_t elapsed_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(now - window_start_).count();
    const int64_t window_ms = ctx_.settings.body_rate_window_ms;
    if (elapsed_ms < window_ms) return false;
    // long double: min_bytes * elapsed_ms may pass 2^63 with extreme settings.
    const long double required = static_cast<long double>(min_bytes) * elapsed_ms / window_ms;
    if (static_cast<long double>(window_bytes_) < required) return true;
    window_start_ = now;
    window_bytes_ = 0;
    return false;
  }

  // Waits for the first body bytes into buffer_ (small), under the idle
  // timeout and the minimum rate.
  net::awaitable<Fill> AwaitBody() {
    Fill f;
    stream_.expires_after(std::chrono::milliseconds(ctx_.settings.body_idle_timeout_ms));
    auto space = buffer_.prepare(kFirstBodyReadBytes);
    auto [ec, got] = co_await stream_.async_read_some(space, AsTuple());
    buffer_.commit(got);
    if (ec) {
      f.error = FillError::kSocket;
      f.ec = ec;
    } else if (TooSlow(got)) {
      f.error = FillError::kTooSlow;
    }
    co_return f;
  }

  // Decodes chunked bytes `raw` into `out` (which may be raw itself: decoded
  // data never overtakes the input). Returns the input bytes used, adds the
  // data to f->n; stops at the end of the body or an error (set in `f`).
  size_t Dechunk(std::string_view raw, char* out, Fill* f) {
    size_t pos = 0;
    while (pos < raw.size() && !chunked_->done()) {
      auto e = chunked_->Next(raw.substr(pos));
      if (!e) {
        body_error_ = e.status();
        f->error = FillError::kFraming;
        return pos;
      }
      if (!e->data.empty()) {
        std::memmove(out + f->n, e->data.data(), e->data.size());
        f->n += e->data.size();
      }
      pos += e->consumed;
    }
    if (chunked_->body_bytes() > static_cast<uint64_t>(body_limit_)) f->error = FillError::kTooLarge;
    return pos;
  }

  // Fills `buf` with the next body bytes: up to a whole buffer, or the rest of
  // the body.
  net::awaitable<Fill> FillBuffer(char* buf, bool chunked) {
    Fill f;
    const auto idle = std::chrono::milliseconds(ctx_.settings.body_idle_timeout_ms);
    if (chunked) {
      while (f.error == FillError::kNone && f.n < kUploadBufferBytes && !chunked_->done()) {
        if (buffer_.size() > 0) {
          // Bytes that arrived with the header come first; only as many as
          // surely fit (data is never longer than its framing).
          std::string_view raw(static_cast<const char*>(buffer_.data().data()),
                               std::min(buffer_.size(), kUploadBufferBytes - f.n));
          buffer_.consume(Dechunk(raw, buf, &f));
          continue;
        }
        // Raw bytes go into the free end of the buffer and are decoded in
        // place, so a read never costs more memory than the buffer.
        stream_.expires_after(idle);
        auto space = net::buffer(buf + f.n, kUploadBufferBytes - f.n);
        auto [ec, got] = co_await stream_.async_read_some(space, AsTuple());
        ctx_.metrics.AddBytesReceived(static_cast<int64_t>(got));
        std::string_view raw(buf + f.n, got);
        size_t used = Dechunk(raw, buf, &f);
        if (f.error != FillError::kNone) co_return f;
        if (used < raw.size()) {
          // The body ended: what follows is the next request.
          std::string_view rest = raw.substr(used);
          auto dst = buffer_.prepare(rest.size());
          std::memcpy(dst.data(), rest.data(), rest.size());
          buffer_.commit(rest.size());
        }
        if (ec) {
          f.error = FillError::kSocket;
          f.ec = ec;
          co_return f;
        }
        if (TooSlow(got)) {
          f.error = FillError::kTooSlow;
          co_return f;
        }
      }
      f.done = f.error == FillError::kNone && chunked_->done();
      co_return f;
    }
    const size_t want = static_cast<size_t>(std::min<int64_t>(remaining_, kUploadBufferBytes));
    // Body bytes that arrived with the header come first.
    if (buffer_.size() > 0) {
      size_t take = std::min(buffer_.size(), want);
      std::memcpy(buf, buffer_.data().data(), take);
      buffer_.consume(take);
      f.n = take;
    }
    while (f.n < want) {
      stream_.expires_after(idle);
      auto [ec, got] =
          co_await stream_.async_read_some(net::buffer(buf + f.n, want - f.n), AsTuple());
      f.n += got;
      if (ec) {
        f.error = FillError::kSocket;
        f.ec = ec;
        break;
      }
      if (TooSlow(got)) {
        f.error = FillError::kTooSlow;
        break;
      }
    }
    ctx_.metrics.AddBytesReceived(static_cast<int64_t>(f.n));
    remaining_ -= static_cast<int64_t>(f.n);
    f.done = f.error == FillError::kNone && remaining_ == 0;
    co_return f;
  }

  // Sends out_; with keep_alive false, announces and performs the close.
  // Returns whether the connection stays open.
  //
  // The response travels in a member, set by a statement of its own, because
  // GCC 12 relocates temporaries of a co_await expression into the coroutine
  // frame bitwise: a std::string temporary there ends up pointing into the
  // old location (short-string buffer) and is freed as heap later. So no
  // non-trivial temporary may appear inside a co_await expression here.
  net::awaitable<bool> SendOut(std::string_view route_name, bool keep_alive) {
    Response resp = std::move(out_);
    keep_alive = keep_alive && !ctx_.stopping.load();
    ctx_.metrics.CountRequest(route_name, resp.status);
    if (request_id_.empty()) request_id_ = NewRequestId(ctx_);
    FormatHead(resp, keep_alive, request_id_, &head_);
    body_ = std::move(resp.body);
    if (head_only_) body_.clear();  // its length was announced all the same
    // Head and body go out in one gathered write.
    std::array<net::const_buffer, 2> bufs = {net::buffer(head_), net::buffer(body_)};
    stream_.expires_after(std::chrono::milliseconds(ctx_.settings.body_idle_timeout_ms));
    auto [ec, n] = co_await net::async_write(stream_, bufs, AsTuple());
    RouteLatency(route_name).Observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - request_start_).count());
    if (ec) {
      write_failed_ = true;
      co_return false;
    }
    // Without keep-alive, Run() closes: lingering there, once the request's
    // state (an unfinished upload's temp file) is gone.
    co_return keep_alive;
  }

  // The response's status line and header fields, written by hand into a
  // buffer the connection reuses: building a Beast message costs one
  // allocation per field plus the serializer's machinery, a sizeable share
  // of a small request's CPU.
  static void FormatHead(const Response& resp, bool keep_alive, std::string_view request_id,
                         std::string* out) {
    out->clear();
    out->append("HTTP/1.1 ").append(std::to_string(resp.status)).append(" ");
    // 460 is tus's own status (checksum mismatch), unknown to Beast.
    auto reason = resp.status == 460
                      ? beast::string_view("Checksum Mismatch")
                      : bhttp::obsolete_reason(static_cast<bhttp::status>(resp.status));
    out->append(reason.data(), reason.size());
    out->append("\r\nServer: conveyor\r\nX-Request-Id: ").append(request_id);
    if (!resp.content_type.empty()) out->append("\r\nContent-Type: ").append(resp.content_type);
    if (resp.status == 401) out->append("\r\nWWW-Authenticate: Bearer");
    if (resp.retry_after_s >= 0) {
      out->append("\r\nRetry-After: ").append(std::to_string(resp.retry_after_s));
    }
    if (!resp.extra_headers.empty()) out->append("\r\n").append(resp.extra_headers);
    // HTTP/1.1 connections persist by default; only a close is announced.
    if (!keep_alive) out->append("\r\nConnection: close");
    // A 204 has no body and announces none (RFC 9110 §8.6).
    if (resp.status != 204) out->append("\r\nContent-Length: ").append(std::to_string(resp.body.size()));
    out->append("\r\n\r\n");
  }

  // Lingering close, as nginx does it: half-close, then read and discard
  // what the client still sends until it has been silent for linger_idle_ms
  // or linger_max_ms have passed, then close. Closing with unread bytes
  // would make the kernel send a reset, and a client still writing its body
  // (curl without Expect: 100-continue) would then see the reset instead of
  // our answer. The connection limits bound what lingering connections cost.
  // Skipped when the request was read whole (nothing is coming) and for
  // clients refused as too slow.
  net::awaitable<void> LingerClose() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    if (ec || write_failed_ || no_linger_ || (!body_unread_ && buffer_.size() == 0)) co_return;
    buffer_.clear();
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(ctx_.settings.linger_max_ms);
    const auto idle = std::chrono::milliseconds(ctx_.settings.linger_idle_ms);
    // The upload buffer when there is one; else a small one on the frame.
    char scratch[4096];
    net::mutable_buffer sink =
        bufs_[0] ? net::buffer(bufs_[0].get(), kUploadBufferBytes) : net::buffer(scratch);
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      stream_.expires_after(std::min(left, idle));
      auto [rec, n] = co_await stream_.async_read_some(sink, AsTuple());
      if (rec) break;  // EOF (the client read our answer and closed), silence, reset
    }
  }

  void ReleaseBuffers() {
    parser_.reset();
    buffer_ = beast::flat_buffer();
    bufs_[0].reset();
    bufs_[1].reset();
    out_ = Response();
    std::string().swap(head_);
    std::string().swap(body_);
    std::string().swap(request_id_);
  }

  char* Buffer(int i) {
    // for_overwrite: no zero-fill, so pages cost memory only once written.
    if (!bufs_[i]) bufs_[i] = std::make_unique_for_overwrite<char[]>(kUploadBufferBytes);
    return bufs_[i].get();
  }

  static int64_t MonotonicMs() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }

  ServerContext& ctx_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::buffer_body>> parser_;
  // Upload buffers, allocated on a connection's first upload body and reused
  // by its later ones (no per-request allocation of large blocks).
  std::unique_ptr<char[]> bufs_[2];
  RequestFraming framing_;                 // of the current request (CheckHead)
  std::string request_id_;                 // of the current request ("" until known)
  std::optional<BeastFields> fields_;      // its header fields (Request::fields)
  bool head_only_ = false;                 // a HEAD request: the answer has no body
  std::chrono::steady_clock::time_point request_start_;  // its header was read
  bool body_unread_ = false;               // body bytes of it may still come
  std::optional<ChunkedDecoder> chunked_;  // the current chunked body
  Status body_error_;                      // why the chunked framing was refused
  int64_t body_limit_ = 0;                 // bytes of body the route accepts
  int64_t remaining_ = 0;                  // Content-Length body bytes not read yet
  // Minimum body rate: bytes received since window_start_.
  std::chrono::steady_clock::time_point window_start_;
  int64_t window_bytes_ = 0;
  bool no_linger_ = false;     // close without the lingering read
  bool write_failed_ = false;  // the client stopped reading: nothing to linger for
  Response out_;            // the next response SendOut() writes
  std::string head_;        // SendOut's status line and fields (capacity reused)
  std::string body_;        // the body being written by SendOut
  std::string client_;      // client address (per-client connection count)
  uint64_t id_;
  bool idle_ = false;  // waiting for a request header (Shutdown closes at once)
  bool push_ = false;  // serving a push stream (Shutdown closes it at once too)
  bool handed_off_ = false;  // the socket went to a WebSocket connection
  std::atomic<int64_t> idle_since_ms_{0};
};

namespace {

// The session that has waited longest for a request header, or null.
std::shared_ptr<Session> OldestIdle(ServerContext& ctx) {
  std::vector<std::shared_ptr<Session>> live;
  {
    std::lock_guard lock(ctx.sessions_mu);
    live.reserve(ctx.sessions.size());
    for (auto& [id, weak] : ctx.sessions) {
      if (auto s = weak.lock()) live.push_back(std::move(s));
    }
  }
  // `live` is released outside the lock: a last reference dropped here runs
  // ~Session, which takes sessions_mu.
  std::shared_ptr<Session> oldest;
  int64_t oldest_ms = 0;
  for (auto& s : live) {
    int64_t since = s->idle_since_ms();
    if (since != 0 && (!oldest || since < oldest_ms)) {
      oldest = s;
      oldest_ms = since;
    }
  }
  return oldest;
}

}  // namespace

Admission StartSession(ServerContext& ctx, tcp::socket& socket, std::string client) {
  const int per_client = ctx.settings.max_connections_per_client;
  bool full = false;
  {
    std::lock_guard lock(ctx.sessions_mu);
    auto it = ctx.sessions_per_client.find(client);
    if (per_client > 0 && it != ctx.sessions_per_client.end() && it->second >= per_client) {
      return Admission::kClientFull;
    }
    full = ctx.open_sessions.load() >= ctx.max_connections;
  }
  if (full) {
    // Make room by closing the longest-idle keep-alive connection (nginx
    // reuses connections the same way); the newcomer is admitted at once and
    // the count dips back as the closed session unwinds.
    std::shared_ptr<Session> victim = OldestIdle(ctx);
    if (!victim) return Admission::kServerFull;
    victim->Close(/*hard=*/false);
  }
  std::shared_ptr<Session> session;
  {
    std::lock_guard lock(ctx.sessions_mu);
    uint64_t id = ctx.next_session_id++;
    ctx.open_sessions.fetch_add(1);
    ++ctx.sessions_per_client[client];
    session = std::make_shared<Session>(ctx, std::move(socket), id, std::move(client));
    ctx.sessions.emplace(id, session);
  }
  auto ex = session->executor();
  net::co_spawn(
      ex, [session]() -> net::awaitable<void> { co_await session->Run(); },
      [](std::exception_ptr e) {
        // Exceptions stop here: one connection fails, the server keeps running.
        if (!e) return;
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& ex) {
          spdlog::error("session ended by an exception: {}", ex.what());
        } catch (...) {
          spdlog::error("session ended by an unknown exception");
        }
      });
  return Admission::kAdmitted;
}

void CloseSessions(ServerContext& ctx, bool hard) {
  std::vector<std::shared_ptr<Session>> live;
  {
    std::lock_guard lock(ctx.sessions_mu);
    for (auto& [id, weak] : ctx.sessions) {
      if (auto s = weak.lock()) live.push_back(std::move(s));
    }
  }
  for (auto& s : live) s->Close(hard);
}

}  // namespace conveyor::http
