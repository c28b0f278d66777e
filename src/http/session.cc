// One client connection: read a request header, route it, answer, repeat.
//
// Design. Each connection is a C++20 coroutine on its own strand, so its
// state needs no locks. The header is read with Beast's parser (bounded by
// max_header_bytes and header_timeout_ms); routing, auth, rate limit and size
// checks are all decided from the header, before a single body byte is read,
// so a refused upload costs only its header. Ordinary routes have no body;
// their handler runs on the blocking pool when it touches the store.
//
// The upload body is streamed, never buffered whole. A Content-Length body is
// read straight from the socket into fixed 512 KiB buffers (bytes the header
// read already pulled in are taken first), bypassing Beast's body parser: its
// buffer_body path tops out far below what raw reads reach. A chunked body goes
// through Beast's parser with buffer_body, which does the de-chunking. Each
// filled buffer is scanned by the multipart parser on the strand (a memchr
// scan, cheap), which collects the file part's pieces; then two pool tasks
// hash them (SHA-256, the slowest stage) and write them to the blob at once,
// while the coroutine reads the next buffer (two buffers, alternating). So
// socket reads, hashing and writing overlap. Memory per upload is two buffers
// whatever the file size. A small body fits one buffer and costs one pool hop
// in total: parse, hash, write, commit, insert the row and enqueue happen in
// that one task.
//
// Every read has a deadline (header_timeout_ms for a header, body_idle_timeout_ms
// per body read), and a connection whose deadline passes is closed; an
// unfinished upload's temp file is deleted when its FileSink is destroyed.
// After an error response with unread body bytes the connection is closed
// (Connection: close): after a short, bounded lingering read so the client sees
// the response instead of a reset.
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
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "core/ids.h"
#include "http/internal/error_response.h"
#include "http/internal/routing.h"
#include "http/internal/server_context.h"
#include "http/multipart.h"
#include "uploads/uploads.h"

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
// Form fields other than file/session_id/message are skipped, up to this total.
constexpr size_t kMaxIgnoredFieldBytes = 64 * 1024;
// After an error with unread body: read and discard for at most this long /
// this much, so the client reads our answer rather than a TCP reset.
constexpr auto kLingerTime = std::chrono::milliseconds(500);
constexpr size_t kLingerBytes = 1024 * 1024;

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

std::string_view ToView(beast::string_view s) { return {s.data(), s.size()}; }

bool IEquals(std::string_view a, std::string_view b) {
  return beast::iequals(beast::string_view(a.data(), a.size()),
                        beast::string_view(b.data(), b.size()));
}

// Part header blocks up to 16 KiB: room for a long (10 KB) file name, which is
// accepted and shortened for display rather than refused.
MultipartLimits FormLimits() {
  MultipartLimits l;
  l.max_header_bytes = 16 * 1024;
  return l;
}

// The multipart form of one upload: which part is streaming, the small fields
// buffered so far, and the file sink. Touched only by the pool task of the
// moment (the coroutine awaits each before starting the next).
class UploadForm {
 public:
  UploadForm(ServerContext& ctx, std::string boundary, std::string job_id)
      : ctx_(ctx),
        sink_(*ctx.deps.blobs, std::move(job_id), ctx.settings.max_upload_bytes),
        parser_(std::move(boundary), FormLimits(),
                MultipartCallbacks{[this](const PartHeaders& h) { return OnBegin(h); },
                                   [this](std::string_view d) { return OnData(d); },
                                   [this] {
                                     part_ = Part::kNone;
                                     return OkStatus();
                                   }}) {}

  // Feeds body bytes. An error response when the body is refused.
  std::optional<Response> Feed(std::string_view bytes, uint64_t request_id) {
    if (parser_.Feed(bytes)) return std::nullopt;
    return Refusal(request_id);
  }

  // Ends the body and, if the form is complete, accepts the upload.
  Response Finish(std::string user_id, uint64_t request_id, bool* accepted) {
    *accepted = false;
    if (Status s = parser_.Finish(); !s.ok()) {
      return ErrorResponse(InvalidArgument("malformed multipart body: " + s.message()),
                           "malformed_body", request_id);
    }
    if (!file_seen_) {
      return ErrorResponse(InvalidArgument("the form has no `file` part"), "missing_file",
                           request_id);
    }
    if (session_id_.empty()) {
      return ErrorResponse(InvalidArgument("session_id is required"), "missing_session_id",
                           request_id);
    }
    if (sink_.size() == 0) {
      return ErrorResponse(InvalidArgument("the file is empty"), "empty_file", request_id);
    }
    uploads::AcceptedUpload up;
    up.user_id = std::move(user_id);
    up.session_id = std::move(session_id_);
    up.original_name = std::move(filename_);
    up.mime_type = std::move(mime_type_);
    up.message = std::move(message_);
    uploads::AcceptOptions opts;
    opts.fsync = ctx_.settings.upload_fsync;
    auto r = uploads::Accept(std::move(up), sink_, *ctx_.deps.store, *ctx_.deps.queue, opts);
    if (!r) {
      if (r.code() == Errc::kInvalidArgument) return ErrorResponse(r.status(), {}, request_id);
      // The blob is gone and no row exists: the client may simply retry.
      spdlog::error("request {}: upload not stored: {}", request_id, r.status().ToString());
      return ErrorResponse(Unavailable(r.status().message()), {}, request_id);
    }
    if (!r->enqueued) {
      spdlog::warn("request {}: job {} recorded but not queued; the reconciler will add it",
                   request_id, r->job_id);
    }
    *accepted = true;
    std::string data;
    data.reserve(80);
    data.append(R"({"jobId":")").append(r->job_id).append(R"(","status":"pending"})");
    return SuccessResponse(202, data);
  }

  // Feeds body bytes, collecting the file part's pieces instead of storing
  // them (cheap: the parser's delimiter scan; limits are checked here). The
  // pieces point into `bytes` or the parser's delimiter, so they stay valid
  // until `bytes` is reused. An error response when the body is refused.
  std::optional<Response> Parse(std::string_view bytes, uint64_t request_id) {
    collect_ = true;
    std::optional<Response> refused = Feed(bytes, request_id);
    collect_ = false;
    return refused;
  }
  // Hash and write the collected pieces; the two may run at once.
  Status HashPieces() {
    for (std::string_view p : pieces_) {
      if (Status s = sink_.Hash(p); !s.ok()) return s;
    }
    return OkStatus();
  }
  Status WritePieces() {
    for (std::string_view p : pieces_) {
      if (Status s = sink_.Write(p); !s.ok()) return s;
    }
    return OkStatus();
  }
  void ClearPieces() { pieces_.clear(); }

  bool too_large() const { return too_large_; }

 private:
  enum class Part { kNone, kFile, kSessionId, kMessage, kIgnored };

  Status OnBegin(const PartHeaders& h) {
    if (h.name == "file") {
      if (file_seen_) return Reject(InvalidArgument("more than one `file` part"), "malformed_body");
      file_seen_ = true;
      filename_ = h.filename.value_or("");
      mime_type_ = h.content_type;
      part_ = Part::kFile;
    } else if (h.name == "session_id") {
      session_id_.clear();
      part_ = Part::kSessionId;
    } else if (h.name == "message") {
      message_.clear();
      part_ = Part::kMessage;
    } else {
      part_ = Part::kIgnored;
    }
    return OkStatus();
  }

  Status OnData(std::string_view d) {
    switch (part_) {
      case Part::kFile: {
        Status s = collect_ ? sink_.Count(d.size()) : sink_.Append(d);
        if (s.ok() && collect_) pieces_.push_back(d);
        if (s.code() == Errc::kResourceExhausted) {
          too_large_ = true;
          return Reject(std::move(s), "payload_too_large");
        }
        return s.ok() ? s : Reject(std::move(s), {});
      }
      case Part::kSessionId:
        if (session_id_.size() + d.size() > uploads::kMaxSessionIdBytes) {
          return Reject(InvalidArgument("session_id is longer than " +
                                        std::to_string(uploads::kMaxSessionIdBytes) + " bytes"),
                        "invalid_session_id");
        }
        session_id_.append(d);
        return OkStatus();
      case Part::kMessage:
        if (message_.size() + d.size() > uploads::kMaxMessageBytes) {
          return Reject(InvalidArgument("message is longer than " +
                                        std::to_string(uploads::kMaxMessageBytes) + " bytes"),
                        "message_too_long");
        }
        message_.append(d);
        return OkStatus();
      case Part::kIgnored:
        ignored_bytes_ += d.size();
        if (ignored_bytes_ > kMaxIgnoredFieldBytes) {
          return Reject(InvalidArgument("unknown form fields are too large"), "malformed_body");
        }
        return OkStatus();
      case Part::kNone:
        break;
    }
    return OkStatus();
  }

  Status Reject(Status s, std::string_view code) {
    reject_code_ = code;
    return s;
  }

  Response Refusal(uint64_t request_id) {
    const Status& s = parser_.status();
    if (!reject_code_.empty() || s.code() == Errc::kUnavailable || s.code() == Errc::kInternal) {
      return ErrorResponse(s, reject_code_, request_id);
    }
    // The parser's own errors (bad syntax, too many parts, huge part headers)
    // are all a malformed body as far as the client is concerned.
    return ErrorResponse(InvalidArgument("malformed multipart body: " + s.message()),
                         "malformed_body", request_id);
  }

  ServerContext& ctx_;
  uploads::FileSink sink_;
  MultipartParser parser_;
  Part part_ = Part::kNone;
  bool file_seen_ = false;
  bool too_large_ = false;
  bool collect_ = false;                  // Parse(): gather file pieces
  std::vector<std::string_view> pieces_;  // file bytes gathered by Parse()
  size_t ignored_bytes_ = 0;
  std::string session_id_, message_, filename_, mime_type_;
  std::string_view reject_code_;
};

struct Fill {
  beast::error_code ec;
  size_t n = 0;       // bytes placed in the buffer
  bool done = false;  // the body is complete
};

}  // namespace

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(ServerContext& ctx, tcp::socket socket, uint64_t id)
      : ctx_(ctx), stream_(std::move(socket)), id_(id) {
    ctx_.metrics.ConnectionOpened();
  }
  ~Session() {
    ctx_.metrics.ConnectionClosed();
    {
      std::lock_guard lock(ctx_.sessions_mu);
      ctx_.sessions.erase(id_);
    }
    if (ctx_.open_sessions.fetch_sub(1) == 1 && ctx_.stopping.load() && ctx_.on_drained) {
      ctx_.on_drained();
    }
  }

  net::any_io_executor executor() { return stream_.get_executor(); }

  // Thread-safe: hops to the session's strand.
  void Close(bool hard) {
    net::post(stream_.get_executor(), [self = shared_from_this(), hard] {
      if (hard || self->idle_) {
        beast::error_code ec;
        self->stream_.socket().close(ec);
      }
    });
  }

  net::awaitable<void> Run() {
    for (;;) {
      if (ctx_.stopping.load()) break;
      idle_ = true;
      parser_.emplace();
      parser_->header_limit(static_cast<std::uint32_t>(ctx_.settings.max_header_bytes));
      // Body limits are the route's business, decided after the header.
      parser_->body_limit(boost::none);
      stream_.expires_after(std::chrono::milliseconds(ctx_.settings.header_timeout_ms));
      auto [ec, n] = co_await bhttp::async_read_header(stream_, buffer_, *parser_, AsTuple());
      idle_ = false;
      if (ec) {
        if (ec == bhttp::error::header_limit) {
          out_ = ErrorResponse(InvalidArgument("request header too large"), "header_too_large");
          co_await SendOut("unmatched", false);
        } else if (ec == bhttp::error::end_of_stream || ec == net::error::eof ||
                   ec == beast::error::timeout || ec == net::error::operation_aborted ||
                   ec == net::error::connection_reset || ec == net::error::bad_descriptor) {
          // The client went away, was idle too long, or we are shutting down.
        } else {
          out_ = ErrorResponse(InvalidArgument("malformed HTTP request"), "malformed_request");
          co_await SendOut("unmatched", false);
        }
        break;
      }
      ctx_.metrics.EnterRequest();
      bool keep_alive = co_await Handle();
      ctx_.metrics.LeaveRequest();
      if (!keep_alive) break;
    }
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream_.socket().close(ec);
  }

 private:
  // Serves one request whose header is in parser_. True to keep the
  // connection for another request.
  net::awaitable<bool> Handle() {
    auto& req = parser_->get();
    const auto start = std::chrono::steady_clock::now();
    Request r;
    r.request_id = ctx_.next_request_id.fetch_add(1, std::memory_order_relaxed);
    r.method = ToView(req.method_string());
    std::string_view target = ToView(req.target());
    size_t q = target.find('?');
    r.path = target.substr(0, q);
    if (q != std::string_view::npos) r.query = target.substr(q + 1);

    const bool has_body = parser_->chunked() || parser_->content_length().value_or(0) > 0;
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

    if (route.auth) {
      auto user = ctx_.tokens.Verify(ToView(req[bhttp::field::authorization]), NowMs() / 1000);
      if (!user) {
        out_ = ErrorResponse(Unauthenticated(user.status().message()), {}, r.request_id);
        co_return co_await SendOut(route.name, keep_alive && !has_body);
      }
      r.user_id = std::move(*user);
    }

    if (route.kind == RouteKind::kUpload) {
      co_return co_await HandleUpload(r, route, keep_alive, start);
    }

    HandlerEnv env{ctx_.deps.store, ctx_.deps.queue, &ctx_.metrics, &ctx_.settings};
    if (route.blocking) {
      out_ = co_await OnPool(ctx_, [&] { return route.handler(r, env); });
    } else {
      out_ = route.handler(r, env);
    }
    co_return co_await SendOut(route.name, keep_alive && !has_body);
  }

  net::awaitable<bool> HandleUpload(const Request& r, const Route& route, bool keep_alive,
                                    std::chrono::steady_clock::time_point start) {
    auto& req = parser_->get();
    const auto& st = ctx_.settings;
    const int64_t body_limit = route.body_limit == kUploadBodyLimit
                                   ? st.max_upload_bytes + kMultipartOverheadBytes
                                   : route.body_limit;
    const bool chunked = parser_->chunked();
    const boost::optional<std::uint64_t> content_length = parser_->content_length();

    if (!chunked && content_length.value_or(0) == 0) {
      out_ = ErrorResponse(InvalidArgument("a multipart/form-data body is required"),
                           "malformed_body", r.request_id);
      co_return co_await SendOut(route.name, keep_alive);
    }
    if (content_length && *content_length > static_cast<std::uint64_t>(body_limit)) {
      out_ = ErrorResponse(
          ResourceExhausted("the upload exceeds " + std::to_string(st.max_upload_bytes) + " bytes"),
          "payload_too_large", r.request_id);
      co_return co_await SendOut(route.name, false);
    }
    auto boundary = BoundaryFromContentType(ToView(req[bhttp::field::content_type]));
    if (!boundary) {
      out_ =
          ErrorResponse(InvalidArgument("Content-Type must be multipart/form-data with a boundary"),
                        "malformed_body", r.request_id);
      co_return co_await SendOut(route.name, false);
    }
    int64_t retry_after_s = 0;
    if (!ctx_.limiter.Allow(r.user_id, MonotonicMs(), &retry_after_s)) {
      Response resp = ErrorResponse(ResourceExhausted("too many uploads; retry later"),
                                    "rate_limited", r.request_id);
      resp.retry_after_s = retry_after_s;
      out_ = std::move(resp);
      co_return co_await SendOut(route.name, false);
    }
    if (IEquals(ToView(req[bhttp::field::expect]), "100-continue")) {
      stream_.expires_after(std::chrono::milliseconds(st.body_idle_timeout_ms));
      auto [ec, n] = co_await net::async_write(
          stream_, net::buffer(kContinue.data(), kContinue.size()), AsTuple());
      if (ec) co_return false;
    }
    if (chunked) parser_->body_limit(static_cast<std::uint64_t>(body_limit));
    remaining_ = static_cast<int64_t>(content_length.value_or(0));

    UploadForm form(ctx_, std::move(*boundary), NewUuid());
    char* bufs[2] = {Buffer(0), nullptr};
    int cur = 0;
    Fill f = co_await FillBuffer(bufs[cur], chunked);
    for (;;) {
      if (f.ec) co_return co_await BodyReadFailed(f, bufs[cur], form, r, route);
      std::string_view chunk(bufs[cur], f.n);
      if (f.done) {
        bool accepted = false;
        Response resp = co_await OnPool(ctx_, [&] {
          if (auto refused = form.Feed(chunk, r.request_id)) return std::move(*refused);
          return form.Finish(r.user_id, r.request_id, &accepted);
        });
        if (accepted) {
          ctx_.metrics.UploadAccepted(
              std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
        }
        out_ = std::move(resp);
        co_return co_await SendOut(route.name, keep_alive);
      }
      if (bufs[1 - cur] == nullptr) bufs[1 - cur] = Buffer(1 - cur);
      // Parse here (a delimiter scan: cheap), then hash and write this
      // buffer's file bytes on two pool threads while the next buffer fills:
      // SHA-256 is the slowest stage, so it gets a core of its own.
      if (auto refused = form.Parse(chunk, r.request_id)) {
        out_ = std::move(*refused);
        co_return co_await SendOut(route.name, false);
      }
      auto [hashed, written, next] =
          co_await (OnPool(ctx_, [&form] { return form.HashPieces(); }) &&
                    OnPool(ctx_, [&form] { return form.WritePieces(); }) &&
                    FillBuffer(bufs[1 - cur], chunked));
      form.ClearPieces();
      if (!hashed.ok() || !written.ok()) {
        out_ = ErrorResponse(written.ok() ? hashed : written, {}, r.request_id);
        co_return co_await SendOut(route.name, false);
      }
      f = next;
      cur = 1 - cur;
    }
  }

  // A body read ended in an error: the client is gone or silent (nothing to
  // answer), or the body broke the framing or a limit (answer, then close).
  net::awaitable<bool> BodyReadFailed(const Fill& f, char* buf, UploadForm& form, const Request& r,
                                      const Route& route) {
    if (f.ec == bhttp::error::body_limit) {
      out_ = ErrorResponse(
          ResourceExhausted("the upload exceeds " + std::to_string(ctx_.settings.max_upload_bytes) +
                            " bytes"),
          "payload_too_large", r.request_id);
      co_return co_await SendOut(route.name, false);
    }
    if (f.ec == net::error::eof || f.ec == bhttp::error::partial_message) {
      // The client half-closed before sending the whole body: it may still
      // read an answer.
      out_ = ErrorResponse(InvalidArgument("the body ended early"), "malformed_body", r.request_id);
      co_return co_await SendOut(route.name, false);
    }
    if (f.ec.category() ==
        beast::error_code(bhttp::error::bad_chunk).category()) {  // any HTTP parse error
      out_ =
          ErrorResponse(InvalidArgument("malformed chunked body"), "malformed_body", r.request_id);
      co_return co_await SendOut(route.name, false);
    }
    spdlog::info("request {}: upload abandoned: {}", r.request_id, f.ec.message());
    co_return false;
  }

  // Fills `buf` with the next body bytes: up to a whole buffer, or the rest of
  // the body.
  net::awaitable<Fill> FillBuffer(char* buf, bool chunked) {
    Fill f;
    const auto idle = std::chrono::milliseconds(ctx_.settings.body_idle_timeout_ms);
    if (chunked) {
      while (f.n < kUploadBufferBytes && !parser_->is_done()) {
        auto& body = parser_->get().body();
        body.data = buf + f.n;
        body.size = kUploadBufferBytes - f.n;
        body.more = true;
        stream_.expires_after(idle);
        auto [ec, got] = co_await bhttp::async_read_some(stream_, buffer_, *parser_, AsTuple());
        size_t wrote = kUploadBufferBytes - f.n - body.size;
        f.n += wrote;
        ctx_.metrics.AddBytesReceived(static_cast<int64_t>(wrote));
        if (ec == bhttp::error::need_buffer) ec = {};
        if (ec) {
          f.ec = ec;
          co_return f;
        }
      }
      f.done = parser_->is_done();
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
        f.ec = ec;
        break;
      }
    }
    ctx_.metrics.AddBytesReceived(static_cast<int64_t>(f.n));
    remaining_ -= static_cast<int64_t>(f.n);
    f.done = !f.ec && remaining_ == 0;
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
    FormatHead(resp, keep_alive, &head_);
    body_ = std::move(resp.body);
    // Head and body go out in one gathered write.
    std::array<net::const_buffer, 2> bufs = {net::buffer(head_), net::buffer(body_)};
    stream_.expires_after(std::chrono::milliseconds(ctx_.settings.body_idle_timeout_ms));
    auto [ec, n] = co_await net::async_write(stream_, bufs, AsTuple());
    if (ec) co_return false;
    if (!keep_alive) co_await LingerClose();
    co_return keep_alive;
  }

  // The response's status line and header fields, written by hand into a
  // buffer the connection reuses: building a Beast message costs one
  // allocation per field plus the serializer's machinery, a sizeable share
  // of a small request's CPU.
  static void FormatHead(const Response& resp, bool keep_alive, std::string* out) {
    out->clear();
    out->append("HTTP/1.1 ").append(std::to_string(resp.status)).append(" ");
    auto reason = bhttp::obsolete_reason(static_cast<bhttp::status>(resp.status));
    out->append(reason.data(), reason.size());
    out->append("\r\nServer: conveyor\r\nContent-Type: ").append(resp.content_type);
    if (resp.status == 401) out->append("\r\nWWW-Authenticate: Bearer");
    if (resp.retry_after_s >= 0) {
      out->append("\r\nRetry-After: ").append(std::to_string(resp.retry_after_s));
    }
    // HTTP/1.1 connections persist by default; only a close is announced.
    if (!keep_alive) out->append("\r\nConnection: close");
    out->append("\r\nContent-Length: ").append(std::to_string(resp.body.size()));
    out->append("\r\n\r\n");
  }

  // Half-closes, then discards what the client still sends for a short while
  // so that closing does not reset the connection under our response.
  net::awaitable<void> LingerClose() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    if (ec) co_return;
    stream_.expires_after(kLingerTime);
    char scratch[4096];
    size_t total = buffer_.size();
    buffer_.clear();
    while (total < kLingerBytes) {
      auto [rec, n] = co_await stream_.async_read_some(net::buffer(scratch), AsTuple());
      if (rec) break;
      total += n;
    }
  }

  char* Buffer(int i) {
    if (!bufs_[i]) bufs_[i] = std::make_unique<char[]>(kUploadBufferBytes);
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
  // Upload buffers, allocated on a connection's first upload and reused by
  // its later ones (no per-request allocation of large blocks).
  std::unique_ptr<char[]> bufs_[2];
  int64_t remaining_ = 0;  // Content-Length body bytes not read yet
  Response out_;           // the next response SendOut() writes
  std::string head_;       // SendOut's status line and fields (capacity reused)
  std::string body_;       // the body being written by SendOut
  uint64_t id_;
  bool idle_ = false;  // waiting for a request header (Shutdown closes at once)
};

void StartSession(ServerContext& ctx, tcp::socket socket) {
  std::shared_ptr<Session> session;
  {
    std::lock_guard lock(ctx.sessions_mu);
    uint64_t id = ctx.next_session_id++;
    ctx.open_sessions.fetch_add(1);
    session = std::make_shared<Session>(ctx, std::move(socket), id);
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
