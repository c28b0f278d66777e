// Server-Sent Events: GET /api/chat/upload/events/:jobId.
//
// After the session authenticated the request: the job is read for the
// user (unknown or another user's: 404, as the status route answers), then
// the stream starts (200, text/event-stream, Connection: close) with the
// job's current state, then each newer state as it happens, and ends after
// the final one. Every event is
//
//   event: status|progress|completed|failed
//   id: <rank>
//   data: <the status route's `data` object>
//
// The id is the state's rank in the job's life (PushEvent::rank: 0 pending,
// 1 + percent while processing, 1000 completed or failed), so it means the
// same on every API process. A reconnecting EventSource sends it back as
// Last-Event-ID: the stream then sends only states ranked above it, and
// after a final event (1000) it answers 204, which tells EventSource to stop
// reconnecting. Comments (": ping") keep idle streams alive through proxies
// every push_ping_interval_ms. A client that stops reading is closed when
// push_queue_messages messages wait, or when one write takes longer than
// push_write_timeout_ms.
#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <charconv>

#include "core/ids.h"
#include "http/internal/error_response.h"
#include "http/internal/push.h"
#include "http/internal/routing.h"
#include "http/internal/server_context.h"

namespace conveyor::http {

namespace net = boost::asio;
namespace beast = boost::beast;
using namespace net::experimental::awaitable_operators;

namespace {

auto AsTuple() { return net::as_tuple(net::use_awaitable); }

std::string RenderSse(const PushEvent& e) {
  std::string out;
  out.reserve(e.data.size() + 48);
  out.append("event: ").append(e.type()).append("\nid: ").append(std::to_string(e.rank));
  out.append("\ndata: ").append(e.data).append("\n\n");
  return out;
}

// Last-Event-ID as a rank; -1 when absent or not one of ours.
int ParseLastEventId(std::string_view v) {
  int rank = -1;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), rank);
  if (ec != std::errc() || p != v.data() + v.size() || rank < 0) return -1;
  return std::min(rank, PushEvent::kFinalRank);
}

std::string PlainResponse(const Response& r) {
  std::string out = "HTTP/1.1 " + std::to_string(r.status) +
                    (r.status == 404   ? " Not Found"
                     : r.status == 204 ? " No Content"
                                       : " Service Unavailable");
  out += "\r\nServer: conveyor\r\nConnection: close";
  if (r.status != 204) {
    out += "\r\nContent-Type: ";
    out += r.content_type;
    out += "\r\nContent-Length: " + std::to_string(r.body.size());
  }
  out += "\r\n\r\n";
  if (r.status != 204) out += r.body;
  return out;
}

// Reads the job for the user on the blocking pool. (co_spawn needs a
// default-constructible result: the Result goes in a struct.)
struct StateRead {
  Result<std::optional<PushEvent>> state = std::optional<PushEvent>();
};
// (References: GCC 12 mishandles non-trivial by-value coroutine parameters.)
net::awaitable<Result<std::optional<PushEvent>>> ReadState(ServerContext& ctx,
                                                           const std::string& job_id,
                                                           const std::string& user_id) {
  storage::MetadataStore* store = ctx.deps.store;
  // The lambda captures pointers only: GCC 12 relocates the temporaries of
  // a co_await expression bitwise, which breaks a captured std::string.
  const std::string* job = &job_id;
  const std::string* user = &user_id;
  StateRead read = co_await net::co_spawn(
      ctx.pool,
      [store, job, user]() -> net::awaitable<StateRead> {
        co_return StateRead{ReadJobState(*store, *job, *user)};
      },
      net::use_awaitable);
  co_return std::move(read.state);
}

// Reads (and discards) until the client closes or the socket fails.
net::awaitable<void> UntilClientCloses(beast::tcp_stream& stream) {
  char scratch[512];
  for (;;) {
    auto [ec, n] = co_await stream.socket().async_read_some(net::buffer(scratch), AsTuple());
    if (ec) co_return;
  }
}

net::awaitable<void> WriteLoop(ServerContext& ctx, beast::tcp_stream& stream, PushQueue& q) {
  const auto ping = std::chrono::milliseconds(ctx.settings.push_ping_interval_ms);
  const auto write_timeout = std::chrono::milliseconds(ctx.settings.push_write_timeout_ms);
  std::string msg;
  for (;;) {
    bool got = co_await q.Next(ping, &msg);
    if (q.closed()) co_return;
    if ((co_await net::this_coro::cancellation_state).cancelled() != net::cancellation_type::none) {
      co_return;  // the client closed
    }
    if (!got) msg = ": ping\n\n";
    stream.expires_after(write_timeout);
    auto [ec, n] = co_await net::async_write(stream, net::buffer(msg), AsTuple());
    if (ec) co_return;
    stream.expires_never();
    if (got && q.drained_final()) co_return;  // the job is done: so is the stream
  }
}

}  // namespace

net::awaitable<void> ServeSse(ServerContext& ctx, beast::tcp_stream& stream, const Request& r,
                              const std::string& last_event_id) {
  Response refusal;
  const std::string job_id = r.params.at(0);
  const int min_rank = ParseLastEventId(last_event_id);
  std::optional<PushEvent> first;
  if (!ctx.hub) {
    refusal = ErrorResponse(Unavailable("push is not available"), {}, r.request_id);
  } else if (!IsUuid(job_id)) {
    refusal = ErrorResponse(NotFound("job not found"), {}, r.request_id);
  } else {
    auto state = co_await ReadState(ctx, job_id, r.user_id);
    if (!state) {
      refusal = StoreErrorResponse(state.status(), r.request_id);
    } else if (!state->has_value()) {
      refusal = ErrorResponse(NotFound("job not found"), {}, r.request_id);
    } else if (min_rank >= PushEvent::kFinalRank) {
      refusal.status = 204;  // the client saw the final state already
    } else {
      first = std::move(**state);
    }
  }
  if (!first) {
    ctx.metrics.CountRequest("upload_events", refusal.status);
    stream.expires_after(std::chrono::milliseconds(ctx.settings.push_write_timeout_ms));
    std::string text = PlainResponse(refusal);
    co_await net::async_write(stream, net::buffer(text), AsTuple());
    co_return;
  }
  ctx.metrics.CountRequest("upload_events", 200);

  auto q = std::make_shared<PushQueue>(
      stream.get_executor(), ctx.hub.get(), r.user_id,
      static_cast<size_t>(ctx.settings.push_queue_messages), RenderSse, [&stream] {
        beast::error_code ec;
        stream.socket().close(ec);
      });
  std::string head =
      "HTTP/1.1 200 OK\r\nServer: conveyor\r\nContent-Type: text/event-stream\r\n"
      "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\nConnection: close\r\n\r\n";
  if (first->final()) {
    // Nothing more will happen: the state is the whole stream.
    head += RenderSse(*first);
    stream.expires_after(std::chrono::milliseconds(ctx.settings.push_write_timeout_ms));
    co_await net::async_write(stream, net::buffer(head), AsTuple());
    co_return;
  }
  // Subscribed before the second read: a change after that read is an event.
  q->Watch(job_id, min_rank);
  stream.expires_after(std::chrono::milliseconds(ctx.settings.push_write_timeout_ms));
  auto [ec, n] = co_await net::async_write(stream, net::buffer(head), AsTuple());
  if (!ec) {
    auto state = co_await ReadState(ctx, job_id, r.user_id);
    if (state && state->has_value()) {
      q->State(std::make_shared<const PushEvent>(std::move(**state)));
      co_await (UntilClientCloses(stream) || WriteLoop(ctx, stream, *q));
    }
  }
  q->Close();
}

}  // namespace conveyor::http
