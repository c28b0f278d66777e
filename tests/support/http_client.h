// File: tests/support/http_client.h
//
// A deliberately small blocking HTTP/1.1 client over a raw socket, so tests
// control exactly which bytes go out and when (headers without a body,
// truncated bodies, chunked bodies, stalls).
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace conveyor::testing {

struct HttpResponse {
  int status = 0;  // 0 when no response could be read
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
};

class HttpConnection {
 public:
  explicit HttpConnection(int port);
  // Connects from `source_address` (127.0.0.2 and up are loopback too: a
  // distinct client address for per-client limits).
  HttpConnection(int port, const std::string& source_address);
  ~HttpConnection();
  HttpConnection(const HttpConnection&) = delete;
  HttpConnection& operator=(const HttpConnection&) = delete;

  bool connected() const { return fd_ >= 0; }
  // Sends raw bytes; false if the peer closed or reset.
  bool Send(const std::string& bytes);
  // Ends our side (shutdown SHUT_WR); the response can still be read.
  void HalfClose();
  // Reads one response (status line, headers, Content-Length or chunked body).
  HttpResponse Read(std::chrono::milliseconds timeout = std::chrono::seconds(30));
  // True when the server closed the connection (EOF or reset) within `timeout`.
  bool ClosedByPeer(std::chrono::milliseconds timeout);

 private:
  int fd_ = -1;
  std::string buf_;
};

// A multipart/form-data body; `files` is {field, filename, content type, data}.
struct FormFile {
  std::string field = "file";
  std::string filename = "a.txt";
  std::string content_type = "text/plain";
  std::string data;
};
std::string MultipartBody(const std::string& boundary,
                          const std::vector<std::pair<std::string, std::string>>& fields,
                          const std::vector<FormFile>& files);

// One request on a fresh connection.
HttpResponse Request(int port, const std::string& method, const std::string& target,
                     const std::map<std::string, std::string>& headers,
                     const std::string& body = "");

// POST /api/chat/upload/async with a multipart body.
HttpResponse Upload(int port, const std::string& token, const std::string& session_id,
                    const FormFile& file, const std::string& message = "");

}  // namespace conveyor::testing
