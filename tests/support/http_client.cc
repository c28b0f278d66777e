#include "http_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>

namespace conveyor::testing {

HttpConnection::HttpConnection(int port) : HttpConnection(port, std::string()) {}

HttpConnection::HttpConnection(int port, const std::string& source_address) {
  fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
  if (!source_address.empty()) {
    sockaddr_in src{};
    src.sin_family = AF_INET;
    if (::inet_pton(AF_INET, source_address.c_str(), &src.sin_addr) != 1 ||
        ::bind(fd_, reinterpret_cast<sockaddr*>(&src), sizeof src) != 0) {
      ::close(fd_);
      fd_ = -1;
      return;
    }
  }
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd_);
    fd_ = -1;
    return;
  }
  int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

HttpConnection::~HttpConnection() {
  if (fd_ >= 0) ::close(fd_);
}

bool HttpConnection::Send(const std::string& bytes) {
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

void HttpConnection::HalfClose() { ::shutdown(fd_, SHUT_WR); }

namespace {

// Reads more bytes into `buf` within `deadline`; false on EOF/error/timeout.
bool ReadMore(int fd, std::string& buf, std::chrono::steady_clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
  if (left.count() <= 0) return false;
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
  char tmp[65536];
  ssize_t n = ::recv(fd, tmp, sizeof tmp, 0);
  if (n <= 0) return false;
  buf.append(tmp, static_cast<size_t>(n));
  return true;
}

std::string Lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

HttpResponse HttpConnection::Read(std::chrono::milliseconds timeout) {
  HttpResponse r;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  size_t end;
  while ((end = buf_.find("\r\n\r\n")) == std::string::npos) {
    if (!ReadMore(fd_, buf_, deadline)) return r;
  }
  std::string head = buf_.substr(0, end);
  buf_.erase(0, end + 4);
  size_t line_end = head.find("\r\n");
  std::string status_line = head.substr(0, line_end);
  if (status_line.size() >= 12) r.status = std::atoi(status_line.c_str() + 9);
  size_t pos = line_end == std::string::npos ? head.size() : line_end + 2;
  while (pos < head.size()) {
    size_t e = head.find("\r\n", pos);
    if (e == std::string::npos) e = head.size();
    std::string line = head.substr(pos, e - pos);
    size_t colon = line.find(':');
    if (colon != std::string::npos) {
      std::string v = line.substr(colon + 1);
      v.erase(0, v.find_first_not_of(" \t"));
      r.headers[Lower(line.substr(0, colon))] = v;
    }
    pos = e + 2;
  }
  if (r.headers.count("content-length")) {
    size_t len = std::stoul(r.headers["content-length"]);
    while (buf_.size() < len) {
      if (!ReadMore(fd_, buf_, deadline)) break;
    }
    r.body = buf_.substr(0, std::min(len, buf_.size()));
    buf_.erase(0, r.body.size());
  } else if (Lower(r.headers["transfer-encoding"]) == "chunked") {
    for (;;) {
      size_t le;
      while ((le = buf_.find("\r\n")) == std::string::npos) {
        if (!ReadMore(fd_, buf_, deadline)) return r;
      }
      size_t n = std::stoul(buf_.substr(0, le), nullptr, 16);
      while (buf_.size() < le + 2 + n + 2) {
        if (!ReadMore(fd_, buf_, deadline)) return r;
      }
      r.body += buf_.substr(le + 2, n);
      buf_.erase(0, le + 2 + n + 2);
      if (n == 0) break;
    }
  }
  return r;
}

bool HttpConnection::ClosedByPeer(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
    char tmp[65536];
    ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
    if (n <= 0) return true;  // EOF or reset
  }
}

std::string MultipartBody(const std::string& boundary,
                          const std::vector<std::pair<std::string, std::string>>& fields,
                          const std::vector<FormFile>& files) {
  std::string b;
  for (const auto& [k, v] : fields) {
    b += "--" + boundary + "\r\nContent-Disposition: form-data; name=\"" + k + "\"\r\n\r\n" + v +
         "\r\n";
  }
  for (const auto& f : files) {
    b += "--" + boundary + "\r\nContent-Disposition: form-data; name=\"" + f.field +
         "\"; filename=\"" + f.filename + "\"\r\nContent-Type: " + f.content_type + "\r\n\r\n" +
         f.data + "\r\n";
  }
  b += "--" + boundary + "--\r\n";
  return b;
}

HttpResponse Request(int port, const std::string& method, const std::string& target,
                     const std::map<std::string, std::string>& headers, const std::string& body) {
  HttpConnection c(port);
  if (!c.connected()) return {};
  std::string req = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
  for (const auto& [k, v] : headers) req += k + ": " + v + "\r\n";
  if (!body.empty() || method == "POST") req += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  req += "\r\n";
  req += body;
  c.Send(req);
  return c.Read();
}

HttpResponse Upload(int port, const std::string& token, const std::string& session_id,
                    const FormFile& file, const std::string& message) {
  const std::string boundary = "----conveyorTestBoundary7MA4YWxkTrZu0gW";
  std::vector<std::pair<std::string, std::string>> fields = {{"session_id", session_id}};
  if (!message.empty()) fields.push_back({"message", message});
  return Request(port, "POST", "/api/chat/upload/async",
                 {{"Authorization", "Bearer " + token},
                  {"Content-Type", "multipart/form-data; boundary=" + boundary}},
                 MultipartBody(boundary, fields, {file}));
}

}  // namespace conveyor::testing
