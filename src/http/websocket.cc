// WebSocket push: /api/chat/upload/ws.
//
// The session authenticated the upgrade request (Authorization: Bearer, or
// `?access_token=<JWT>` for browsers, which cannot set headers on a
// WebSocket) and hands the socket over. Then, on the connection's strand:
// a reader that takes client messages and a writer that drains the
// connection's PushQueue (http/internal/push.h), until either side closes.
//
// Client messages (text frames, JSON):
//   {"type":"subscribe","jobIds":["<id>",...]}
//   {"type":"unsubscribe","jobIds":["<id>",...]}
// Server messages:
//   {"type":"status"|"progress"|"completed"|"failed","jobId":"<id>","data":{...}}
//     where data is the status route's `data`; on subscribe the job's
//     current state comes first (`status`, or at once the final event); a
//     job's subscription ends with its final event.
//   {"type":"error","jobId":"<id>","error":"job not found"}
//     for an unknown job or another user's (never its data);
//   {"type":"error","error":"..."} for a message that is not understood.
// Limits: ws_max_message_bytes per client message (larger: close 1009),
// ws_max_subscriptions per connection (a subscribe past it is refused
// whole), push_queue_messages waiting messages (one more: the connection
// closes), pings every push_ping_interval_ms (no answer for twice that: the
// connection closes; Beast's keep-alive), kMaxProtocolErrors error replies
// (then close 1008).
#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/websocket.hpp>
#include <nlohmann/json.hpp>
#include <array>
#include <unordered_set>

#include "core/ids.h"
#include "http/internal/push.h"
#include "http/internal/server_context.h"

namespace conveyor::http {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using namespace net::experimental::awaitable_operators;
using nlohmann::json;

namespace {

constexpr int kMaxProtocolErrors = 16;
// Room for client messages a connection keeps between them.
constexpr size_t kKeptMessageBytes = 1024;
constexpr auto kHandshakeTimeout = std::chrono::seconds(10);

auto AsTuple() { return net::as_tuple(net::use_awaitable); }

using Ws = websocket::stream<beast::tcp_stream&>;

std::string RenderWs(const PushEvent& e) {
  std::string out;
  out.reserve(e.data.size() + e.job_id.size() + 40);
  out.append(R"({"type":")").append(e.type()).append(R"(","jobId":")").append(e.job_id);
  out.append(R"(","data":)").append(e.data).append("}");
  return out;
}

std::string ErrorMessage(const std::string* job_id, std::string_view error) {
  json j = {{"type", "error"}};
  if (job_id) j["jobId"] = *job_id;
  j["error"] = error;
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

struct Read {
  std::string job_id;
  Result<std::optional<PushEvent>> state = std::optional<PushEvent>();
};

// Reads each job for the user on the blocking pool, in one task.
net::awaitable<std::vector<Read>> ReadStates(ServerContext& ctx, const std::vector<std::string>& ids,
                                             const std::string& user_id) {
  storage::MetadataStore* store = ctx.deps.store;
  // Pointers only in the lambda (GCC 12 and co_await temporaries: sse.cc).
  const std::vector<std::string>* list = &ids;
  const std::string* user = &user_id;
  std::vector<Read> out = co_await net::co_spawn(
      ctx.pool,
      [store, list, user]() -> net::awaitable<std::vector<Read>> {
        std::vector<Read> reads;
        reads.reserve(list->size());
        for (const auto& id : *list) reads.push_back(Read{id, ReadJobState(*store, id, *user)});
        co_return reads;
      },
      net::use_awaitable);
  co_return out;
}

// One WebSocket connection after its handshake. It lives on the heap, kept
// alive by its pending operations, and is driven by completion callbacks on
// the stream's strand, so an idle connection costs its objects and one
// pending read, not a chain of coroutine frames (the session's coroutine has
// ended). A client message is handled by a short coroutine (it may read the
// database), and the next read starts when it is done.
class WsConnection : public std::enable_shared_from_this<WsConnection> {
 public:
  WsConnection(ServerContext& ctx, beast::tcp_stream& stream, const std::shared_ptr<void>& owner,
               const std::string& user_id)
      : ctx_(ctx), owner_(owner), ws_(stream), user_id_(user_id) {}

  net::awaitable<boost::system::error_code> Accept(const PushRequest& req) {
    websocket::stream_base::timeout t;
    t.handshake_timeout = kHandshakeTimeout;
    t.idle_timeout = std::chrono::milliseconds(2 * ctx_.settings.push_ping_interval_ms);
    t.keep_alive_pings = true;
    ws_.set_option(t);
    ws_.set_option(websocket::stream_base::decorator(
        [](websocket::response_type& res) { res.set(beast::http::field::server, "conveyor"); }));
    ws_.read_message_max(static_cast<size_t>(ctx_.settings.ws_max_message_bytes));
    ws_.auto_fragment(false);
    auto [ec] = co_await ws_.async_accept(req, AsTuple());
    co_return ec;
  }

  void Start() {
    std::weak_ptr<WsConnection> weak = weak_from_this();
    q_ = std::make_shared<PushQueue>(
        ws_.get_executor(), ctx_.hub.get(), user_id_,
        static_cast<size_t>(ctx_.settings.push_queue_messages), RenderWs, [weak] {
          if (auto self = weak.lock()) self->Finish();
        });
    q_->OnQueued([weak] {
      if (auto self = weak.lock()) self->Write();
    });
    ReadNext();
  }

 private:
  void ReadNext() {
    ws_.async_read_some(net::buffer(chunk_),
                        [self = shared_from_this()](beast::error_code ec, size_t n) {
                          self->OnRead(ec, n);
                        });
  }

  void OnRead(beast::error_code ec, size_t n) {
    // Closed, too large (Beast closes with 1009), silent past the ping
    // timeout, or gone.
    if (ec || q_->closed()) return Finish();
    message_.append(chunk_.data(), n);
    if (!ws_.is_message_done()) return ReadNext();
    if (!ws_.got_text()) {
      message_.clear();
      if (!ProtocolError(ErrorMessage(nullptr, "binary messages are not accepted"))) return Close();
      return ReadNext();
    }
    net::co_spawn(ws_.get_executor(), HandleMessage(),
                  [self = shared_from_this()](std::exception_ptr e, bool go_on) {
                    self->message_.clear();
                    if (self->message_.capacity() > kKeptMessageBytes) {
                      std::string().swap(self->message_);  // a big subscribe's room goes
                    }
                    if (e || !go_on) return self->Close();
                    if (self->q_->closed()) return self->Finish();
                    self->ReadNext();
                  });
  }

  // Starts sending the next queued message unless one is being sent.
  void Write() {
    if (writing_ || !q_->Pop(&out_)) return;
    writing_ = true;
    ws_.text(true);
    ws_.async_write(net::buffer(out_), [self = shared_from_this()](beast::error_code ec, size_t) {
      self->writing_ = false;
      self->out_.clear();
      if (ec) return self->Finish();
      self->Write();
    });
  }

  // The client broke the protocol too often: close with 1008.
  void Close() {
    if (closing_) return;
    closing_ = true;
    q_->Close();
    ws_.async_close(websocket::close_code::policy_error,
                    [self = shared_from_this()](beast::error_code) { self->Finish(); });
  }

  // Ends the connection: no more events, and the socket closes (which ends
  // any pending operation; the last one releases this object and the session).
  void Finish() {
    q_->Close();
    beast::error_code ignored;
    ws_.next_layer().socket().close(ignored);
  }

  // False to end the connection.
  bool ProtocolError(std::string message) {
    q_->Send(std::move(message));
    return ++errors_ < kMaxProtocolErrors;
  }

  net::awaitable<bool> HandleMessage() {
    const std::string& text = message_;  // stable until the next ReadNext
    json j = json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      co_return ProtocolError(ErrorMessage(nullptr, "a message must be a JSON object"));
    }
    auto type = j.find("type");
    auto ids = j.find("jobIds");
    if (type == j.end() || !type->is_string()) {
      co_return ProtocolError(ErrorMessage(nullptr, "a message needs a string `type`"));
    }
    const std::string& t = type->get_ref<const std::string&>();
    if (t != "subscribe" && t != "unsubscribe") {
      co_return ProtocolError(
          ErrorMessage(nullptr, "unknown type (expected subscribe or unsubscribe)"));
    }
    if (ids == j.end() || !ids->is_array()) {
      co_return ProtocolError(ErrorMessage(nullptr, "`jobIds` must be an array of job ids"));
    }
    std::vector<std::string> list;
    for (const auto& id : *ids) {
      if (!id.is_string()) {
        co_return ProtocolError(ErrorMessage(nullptr, "`jobIds` must be an array of job ids"));
      }
      list.push_back(id.get<std::string>());
    }
    if (t == "unsubscribe") {
      for (const auto& id : list) q_->Unwatch(id);
      co_return true;
    }
    co_await Subscribe(list);
    co_return true;
  }

  net::awaitable<void> Subscribe(const std::vector<std::string>& requested) {
    const size_t limit = static_cast<size_t>(ctx_.settings.ws_max_subscriptions);
    if (requested.size() > limit) {
      ProtocolError(ErrorMessage(nullptr, "too many subscriptions: at most " +
                                              std::to_string(limit) + " jobs per connection"));
      co_return;
    }
    // New, distinct ids of job shape; others are answered at once.
    std::vector<std::string> ids;
    std::unordered_set<std::string_view> seen;
    for (const auto& id : requested) {
      if (q_->watching(id) || !seen.insert(id).second) continue;
      if (!IsUuid(id)) {
        q_->Send(ErrorMessage(&id, "job not found"));
        continue;
      }
      ids.push_back(id);
    }
    if (q_->watched() + ids.size() > limit) {
      ProtocolError(ErrorMessage(nullptr, "too many subscriptions: at most " +
                                              std::to_string(limit) + " jobs per connection"));
      co_return;
    }
    if (ids.empty()) co_return;
    // First read: ownership, and finished jobs need no subscription.
    std::vector<Read> first = co_await ReadStates(ctx_, ids, user_id_);
    std::vector<std::string> live;
    for (Read& r : first) {
      if (!r.state) {
        q_->Send(ErrorMessage(&r.job_id, "temporarily unavailable, subscribe again"));
      } else if (!r.state->has_value()) {
        q_->Send(ErrorMessage(&r.job_id, "job not found"));
      } else if ((*r.state)->final()) {
        q_->Send(RenderWs(**r.state));
      } else {
        q_->Watch(r.job_id);
        live.push_back(r.job_id);
      }
    }
    if (live.empty() || q_->closed()) co_return;
    // Second read, after subscribing: whatever happens later is an event.
    std::vector<Read> second = co_await ReadStates(ctx_, live, user_id_);
    for (Read& r : second) {
      if (r.state && r.state->has_value()) {
        q_->State(std::make_shared<const PushEvent>(std::move(**r.state)));
      } else {
        q_->Unwatch(r.job_id);
        q_->Send(ErrorMessage(&r.job_id, r.state ? "job not found"
                                                  : "temporarily unavailable, subscribe again"));
      }
    }
  }

  ServerContext& ctx_;
  std::shared_ptr<void> owner_;  // the session: owns the socket under ws_
  Ws ws_;
  std::string user_id_;
  std::shared_ptr<PushQueue> q_;
  std::string message_;  // the client message being read
  std::string out_;      // the message being sent
  std::array<char, 128> chunk_;  // where frames are read; message_ collects them
  int errors_ = 0;
  bool writing_ = false;
  bool closing_ = false;
};

}  // namespace

net::awaitable<bool> ServeWebSocket(ServerContext& ctx, beast::tcp_stream& stream,
                                    const PushRequest& req, const std::string& user_id,
                                    const std::shared_ptr<void>& owner) {
  if (!ctx.hub || !websocket::is_upgrade(req)) {
    const bool no_hub = !ctx.hub;
    ctx.metrics.CountRequest("upload_ws", no_hub ? 503 : 426);
    std::string body =
        no_hub ? R"({"success":false,"error":{"code":"unavailable","message":"push is not available"}})"
               : R"({"success":false,"error":{"code":"upgrade_required","message":"a WebSocket upgrade is expected"}})";
    std::string text = std::string(no_hub ? "HTTP/1.1 503 Service Unavailable"
                                          : "HTTP/1.1 426 Upgrade Required\r\nUpgrade: websocket") +
                       "\r\nServer: conveyor\r\nConnection: close\r\nContent-Type: application/json"
                       "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    stream.expires_after(std::chrono::milliseconds(ctx.settings.push_write_timeout_ms));
    co_await net::async_write(stream, net::buffer(text), AsTuple());
    co_return false;
  }
  stream.expires_never();  // the WebSocket's own timeouts apply from here
  auto conn = std::make_shared<WsConnection>(ctx, stream, owner, user_id);
  auto ec = co_await conn->Accept(req);
  ctx.metrics.CountRequest("upload_ws", ec ? 400 : 101);
  if (ec) co_return false;
  conn->Start();
  co_return true;
}

}  // namespace conveyor::http
