// File: http/internal/push.h
//
// What the two push routes share (sse.cc: GET /api/chat/upload/events/:jobId,
// websocket.cc: /api/chat/upload/ws): PushQueue, a connection's subscriber
// of the EventsHub, and the entry points the session (session.cc) calls
// once it has authenticated a push request and hands its socket over.
//
// PushQueue lives on the connection's strand. The hub delivers from its
// threads; Deliver posts to the strand. Per watched job it keeps:
//   ready  whether the job's current state (read after subscribing) has been
//          queued; events that come before it are held, then sent after it
//          if they are newer, so a client always sees the state first and a
//          final event that raced the read is never lost;
//   rank   the highest PushEvent::rank queued: older or repeated states
//          (a progress event overtaken by the state read, a final state
//          delivered twice after a resync) are dropped.
// A job's slot goes at its final event (the hub's subscription too).
// Messages wait in a queue of at most push_queue_messages rendered
// messages; one more closes the connection (a client that does not read).
// A reader takes them either by awaiting Next (SSE) or, without a coroutine
// waiting per connection, by Pop after the wake-up callback (WebSocket).
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/message.hpp>
#include <chrono>
#include <list>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "http/internal/events_hub.h"

namespace conveyor::http {

struct ServerContext;
struct Request;

class PushQueue : public PushSubscriber, public std::enable_shared_from_this<PushQueue> {
 public:
  using Render = std::function<std::string(const PushEvent&)>;
  // `strand`: the connection's; `on_overflow` runs on it when the queue is
  // full (it closes the socket).
  PushQueue(boost::asio::any_io_executor strand, EventsHub* hub, std::string owner,
            size_t max_messages, Render render, std::function<void()> on_overflow);

  void Deliver(std::shared_ptr<const PushEvent> event) override;  // any thread

  // The rest on the strand only.
  // Starts watching `job_id` (subscribes at the hub); events are held until
  // State(). `min_rank`: only states ranked above it are sent (Last-Event-ID).
  void Watch(const std::string& job_id, int min_rank = -1);
  // The job's current state, read after Watch: queued (when newer than what
  // was sent), then the held events.
  void State(const std::shared_ptr<const PushEvent>& state);
  void Unwatch(const std::string& job_id);
  bool watching(const std::string& job_id) const { return jobs_.count(job_id) != 0; }
  size_t watched() const { return jobs_.size(); }
  // A message of the connection itself (a WebSocket error reply).
  void Send(std::string message);
  // Ends everything: unsubscribes, drops the queue, ignores later events.
  void Close();

  // Waits up to `wait` for a message: true with *out set, false on timeout
  // (or when closed/overflowed: check closed()).
  boost::asio::awaitable<bool> Next(std::chrono::milliseconds wait, std::string* out);
  // Takes the next message if there is one (false when empty or closed).
  bool Pop(std::string* out);
  // `wake` runs on the strand each time a message is queued (until Close).
  void OnQueued(std::function<void()> wake) { wake_ = std::move(wake); }
  bool closed() const { return closed_; }
  // The last message taken by Next was the final event of the last watched
  // job (the SSE stream ends after it).
  bool drained_final() const { return drained_final_; }

 private:
  struct Slot {
    bool ready = false;
    int rank = -1;
    std::vector<std::shared_ptr<const PushEvent>> held;
  };
  static constexpr size_t kMaxHeld = 8;

  void OnEvent(const std::shared_ptr<const PushEvent>& e);  // strand
  void Offer(Slot& slot, const std::string& job_id, const PushEvent& e);
  void Enqueue(std::string message, bool final_of_last);

  boost::asio::any_io_executor strand_;
  EventsHub* hub_;
  std::string owner_;
  size_t max_messages_;
  Render render_;
  std::function<void()> on_overflow_;
  boost::asio::steady_timer timer_;
  std::unordered_map<std::string, Slot> jobs_;
  // message, final of the last job. A list: an empty one allocates nothing
  // (a deque allocates its first block at construction, on every idle
  // connection).
  std::list<std::pair<std::string, bool>> queue_;
  std::function<void()> wake_;
  bool closed_ = false;
  bool drained_final_ = false;
};

using PushRequest = boost::beast::http::request<boost::beast::http::buffer_body>;

// GET /api/chat/upload/events/:jobId for the authenticated r.user_id.
// Returns when the stream ended; the caller closes the socket.
boost::asio::awaitable<void> ServeSse(ServerContext& ctx, boost::beast::tcp_stream& stream,
                                      const Request& r, const std::string& last_event_id);

// The WebSocket route for the authenticated `user_id`: the handshake, on
// the caller's coroutine. True when it succeeded: the connection then goes
// on by itself (callbacks on the stream's strand, no coroutine frame kept per
// idle connection), holding `owner` (the session that owns `stream`) until
// either side closes, and closes the socket at the end; the caller must not
// touch `stream` again. False when the request was answered with an error
// or the handshake failed: the caller closes.
boost::asio::awaitable<bool> ServeWebSocket(ServerContext& ctx, boost::beast::tcp_stream& stream,
                                            const PushRequest& req, const std::string& user_id,
                                            const std::shared_ptr<void>& owner);

}  // namespace conveyor::http
