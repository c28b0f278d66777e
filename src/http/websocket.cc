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

class WsConnection {
 public:
  WsConnection(ServerContext& ctx, Ws& ws, const std::string& user_id)
      : ctx_(ctx), ws_(ws), user_id_(user_id) {}

  // (A reference: GCC 12 mishandles non-trivial by-value coroutine parameters.)
  net::awaitable<void> Run(const std::shared_ptr<PushQueue>& q) {
    q_ = q;
    co_await (ReadLoop() || WriteLoop());
    q_->Close();
  }

 private:
  net::awaitable<void> ReadLoop() {
    beast::flat_buffer buf;
    for (;;) {
      auto [ec, n] = co_await ws_.async_read(buf, AsTuple());
      if (ec) co_return;  // closed, too large (Beast closes with 1009), gone
      if (!ws_.got_text()) {
        buf.consume(buf.size());
        if (!ProtocolError(ErrorMessage(nullptr, "binary messages are not accepted"))) co_return;
        continue;
      }
      std::string text = beast::buffers_to_string(buf.data());
      buf.consume(buf.size());
      if (!co_await OnMessage(text)) co_return;
      if (q_->closed()) co_return;
    }
  }

  net::awaitable<void> WriteLoop() {
    const auto wait = std::chrono::milliseconds(ctx_.settings.push_ping_interval_ms);
    std::string msg;
    for (;;) {
      bool got = co_await q_->Next(wait, &msg);
      if (q_->closed()) co_return;
      if ((co_await net::this_coro::cancellation_state).cancelled() !=
          net::cancellation_type::none) {
        co_return;
      }
      if (!got) continue;  // Beast sends the pings
      ws_.text(true);
      auto [ec, n] = co_await ws_.async_write(net::buffer(msg), AsTuple());
      if (ec) co_return;
    }
  }

  // False to end the connection.
  bool ProtocolError(std::string message) {
    q_->Send(std::move(message));
    return ++errors_ < kMaxProtocolErrors;
  }

  net::awaitable<bool> OnMessage(const std::string& text) {
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
  Ws& ws_;
  const std::string& user_id_;
  std::shared_ptr<PushQueue> q_;
  int errors_ = 0;
};

}  // namespace

net::awaitable<void> ServeWebSocket(ServerContext& ctx, beast::tcp_stream& stream,
                                    const PushRequest& req, const std::string& user_id) {
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
    co_return;
  }
  stream.expires_never();  // the WebSocket's own timeouts apply from here
  Ws ws(stream);
  websocket::stream_base::timeout t;
  t.handshake_timeout = kHandshakeTimeout;
  t.idle_timeout = std::chrono::milliseconds(2 * ctx.settings.push_ping_interval_ms);
  t.keep_alive_pings = true;
  ws.set_option(t);
  ws.set_option(websocket::stream_base::decorator(
      [](websocket::response_type& res) { res.set(beast::http::field::server, "conveyor"); }));
  ws.read_message_max(static_cast<size_t>(ctx.settings.ws_max_message_bytes));
  ws.auto_fragment(false);
  auto [ec] = co_await ws.async_accept(req, AsTuple());
  ctx.metrics.CountRequest("upload_ws", ec ? 400 : 101);
  if (ec) co_return;
  auto q = std::make_shared<PushQueue>(
      stream.get_executor(), ctx.hub.get(), user_id,
      static_cast<size_t>(ctx.settings.push_queue_messages), RenderWs, [&stream] {
        beast::error_code ignored;
        stream.socket().close(ignored);
      });
  WsConnection conn(ctx, ws, user_id);
  co_await conn.Run(q);
}

}  // namespace conveyor::http
