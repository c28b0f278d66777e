// File: tests/integration/push_client.h
//
// Blocking SSE and WebSocket clients for the push tests and the push
// benchmark (Beast, synchronous, with a receive timeout so a missing event
// fails the test instead of hanging it).
#pragma once

#include <sys/socket.h>
#include <sys/time.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace conveyor::testing {

namespace push_net = boost::asio;
namespace push_beast = boost::beast;

inline void SetReceiveTimeout(int fd, std::chrono::milliseconds t) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(t.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((t.count() % 1000) * 1000);
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

// One Server-Sent Events stream.
struct SseEvent {
  std::string event, id, data;
};

class SseClient {
 public:
  // Sends the GET; Status() then reads the response head.
  SseClient(int port, const std::string& target, const std::map<std::string, std::string>& headers,
            std::chrono::milliseconds timeout = std::chrono::seconds(30))
      : socket_(ioc_) {
    push_net::ip::tcp::endpoint ep(push_net::ip::make_address("127.0.0.1"),
                                   static_cast<unsigned short>(port));
    socket_.connect(ep);
    SetReceiveTimeout(socket_.native_handle(), timeout);
    std::string req = "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n";
    for (const auto& [k, v] : headers) req += k + ": " + v + "\r\n";
    req += "\r\n";
    push_net::write(socket_, push_net::buffer(req));
  }

  // The response's status code (0 if none), reading the head.
  int Status() {
    while (buf_.find("\r\n\r\n") == std::string::npos) {
      if (!Fill()) return 0;
    }
    size_t end = buf_.find("\r\n\r\n");
    head_ = buf_.substr(0, end);
    buf_.erase(0, end + 4);
    return std::stoi(head_.substr(9, 3));
  }
  const std::string& head() const { return head_; }
  const std::string& rest() const { return buf_; }

  // The next event, nullopt at EOF or timeout. Comments are skipped.
  std::optional<SseEvent> Next() {
    for (;;) {
      size_t end;
      while ((end = buf_.find("\n\n")) == std::string::npos) {
        if (!Fill()) return std::nullopt;
      }
      std::string block = buf_.substr(0, end);
      buf_.erase(0, end + 2);
      SseEvent e;
      bool any = false;
      size_t pos = 0;
      while (pos <= block.size()) {
        size_t nl = block.find('\n', pos);
        std::string line = block.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
        pos = nl == std::string::npos ? block.size() + 1 : nl + 1;
        if (line.empty() || line[0] == ':') continue;
        size_t colon = line.find(": ");
        if (colon == std::string::npos) continue;
        std::string k = line.substr(0, colon), v = line.substr(colon + 2);
        any = true;
        if (k == "event") e.event = v;
        if (k == "id") e.id = v;
        if (k == "data") e.data = v;
      }
      if (any) return e;
    }
  }

  // True when the server closed the stream (EOF) before the timeout.
  bool Ended() {
    while (true) {
      char c[256];
      boost::system::error_code ec;
      size_t n = socket_.read_some(push_net::buffer(c), ec);
      if (ec == push_net::error::eof) return true;
      if (ec) return false;
      buf_.append(c, n);
    }
  }

 private:
  bool Fill() {
    char c[4096];
    boost::system::error_code ec;
    size_t n = socket_.read_some(push_net::buffer(c), ec);
    if (ec) return false;
    buf_.append(c, n);
    return true;
  }

  push_net::io_context ioc_;
  push_net::ip::tcp::socket socket_;
  std::string buf_, head_;
};

// One WebSocket connection to /api/chat/upload/ws.
class WsClient {
 public:
  // Handshakes with `bearer` in the Authorization header (empty: none) and
  // `query` appended to the target. ok() tells whether it was accepted;
  // refused() the HTTP status of a refusal.
  WsClient(int port, const std::string& bearer, const std::string& query = "",
           std::chrono::milliseconds timeout = std::chrono::seconds(30))
      : ws_(ioc_) {
    push_net::ip::tcp::endpoint ep(push_net::ip::make_address("127.0.0.1"),
                                   static_cast<unsigned short>(port));
    boost::system::error_code ec;
    ws_.next_layer().connect(ep, ec);
    if (ec) return;
    SetReceiveTimeout(ws_.next_layer().native_handle(), timeout);
    ws_.set_option(push_beast::websocket::stream_base::decorator(
        [bearer](push_beast::websocket::request_type& req) {
          if (!bearer.empty()) req.set(push_beast::http::field::authorization, "Bearer " + bearer);
        }));
    push_beast::websocket::response_type res;
    ws_.handshake(res, "127.0.0.1", "/api/chat/upload/ws" + query, ec);
    status_ = static_cast<int>(res.result_int());
    ok_ = !ec;
  }

  bool ok() const { return ok_; }
  int status() const { return status_; }

  bool Send(const nlohmann::json& j) { return SendText(j.dump()); }
  bool SendText(const std::string& s) {
    boost::system::error_code ec;
    ws_.text(true);
    ws_.write(push_net::buffer(s), ec);
    return !ec;
  }
  bool SendBinary(const std::string& s) {
    boost::system::error_code ec;
    ws_.binary(true);
    ws_.write(push_net::buffer(s), ec);
    return !ec;
  }
  // The next message as JSON; nullopt when closed or timed out.
  std::optional<nlohmann::json> Next() {
    push_beast::flat_buffer b;
    boost::system::error_code ec;
    ws_.read(b, ec);
    if (ec) {
      last_error_ = ec;
      return std::nullopt;
    }
    return nlohmann::json::parse(push_beast::buffers_to_string(b.data()), nullptr, false);
  }
  // The next message of `type` for `job` (others skipped).
  std::optional<nlohmann::json> NextOf(const std::string& type, const std::string& job) {
    for (;;) {
      auto m = Next();
      if (!m) return m;
      if ((*m)["type"] == type && m->value("jobId", std::string()) == job) return m;
    }
  }
  boost::system::error_code last_error() const { return last_error_; }
  push_beast::websocket::stream<push_net::ip::tcp::socket>& stream() { return ws_; }

 private:
  push_net::io_context ioc_;
  push_beast::websocket::stream<push_net::ip::tcp::socket> ws_;
  bool ok_ = false;
  int status_ = 0;
  boost::system::error_code last_error_;
};

}  // namespace conveyor::testing
