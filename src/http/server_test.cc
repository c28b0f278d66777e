// The HTTP server in-process on a free port, over the fakes in
// tests/support/fakes.h and a real directory blob store, driven by a small
// blocking raw-socket client (so tests can send half a header, stall a body,
// or stop after the header).
#include "http/server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "core/ids.h"
#include "fakes.h"
#include "http/auth.h"
#include "storage/blob_store.h"
#include "storage/metadata_store.h"
#include "test_support.h"

namespace conveyor::http {
namespace {

using namespace std::chrono_literals;
using conveyor::testing::DirBlobStore;
using conveyor::testing::Eventually;
using conveyor::testing::FakeMetadataStore;
using conveyor::testing::FakeQueue;
using conveyor::testing::TempDir;
using nlohmann::json;

constexpr const char* kSecret = "test-secret";
constexpr const char* kBoundary = "----conveyorTestBoundary7MA4YWxk";

std::string Sha256Hex(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  return HexEncode(std::string_view(reinterpret_cast<const char*>(md), len));
}

std::string Token(const std::string& user) {
  auto t = MintToken(kSecret, user, NowMs() / 1000, 3600);
  EXPECT_TRUE(t.ok()) << t.status().ToString();
  return t.ok() ? *t : std::string();
}

std::string RandomBytes(size_t n, uint32_t seed = 1) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

struct Part {
  std::string name;
  std::string data;
  std::optional<std::string> filename;
  std::string content_type;
};

std::string Multipart(const std::vector<Part>& parts, bool close = true) {
  std::string b;
  for (const auto& p : parts) {
    b += "--";
    b += kBoundary;
    b += "\r\nContent-Disposition: form-data; name=\"" + p.name + "\"";
    if (p.filename) b += "; filename=\"" + *p.filename + "\"";
    b += "\r\n";
    if (!p.content_type.empty()) b += "Content-Type: " + p.content_type + "\r\n";
    b += "\r\n";
    b += p.data;
    b += "\r\n";
  }
  if (close) b += std::string("--") + kBoundary + "--\r\n";
  return b;
}

std::string UploadBody(const std::string& file, const std::string& session = "s1",
                       const std::string& filename = "a.txt") {
  return Multipart({{"session_id", session, std::nullopt, ""},
                    {"message", "hello", std::nullopt, ""},
                    {"file", file, filename, "text/plain"}});
}

std::string UploadHeader(const std::string& token, size_t content_length,
                         const std::string& extra = "") {
  std::string h = "POST /api/chat/upload/async HTTP/1.1\r\nHost: t\r\n";
  if (!token.empty()) h += "Authorization: Bearer " + token + "\r\n";
  h += std::string("Content-Type: multipart/form-data; boundary=") + kBoundary + "\r\n";
  h += "Content-Length: " + std::to_string(content_length) + "\r\n";
  h += extra;
  h += "\r\n";
  return h;
}

struct HttpResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  json Json() const { return json::parse(body, nullptr, false); }
};

// A blocking HTTP/1.1 client over one TCP connection.
class Client {
 public:
  // `source`: the local address to connect from (127.0.0.2 and up are
  // loopback too: another client address for per-client limits).
  explicit Client(int port, const char* source = nullptr) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (source != nullptr) {
      sockaddr_in src{};
      src.sin_family = AF_INET;
      ::inet_pton(AF_INET, source, &src.sin_addr);
      ::bind(fd_, reinterpret_cast<sockaddr*>(&src), sizeof src);
    }
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  ~Client() { Close(); }
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  bool connected() const { return connected_; }
  void HalfClose() { ::shutdown(fd_, SHUT_WR); }

  bool Send(std::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  // Reads one response; nullopt on timeout or close before a whole response.
  std::optional<HttpResponse> Read(std::chrono::milliseconds timeout = 5000ms) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    size_t header_end;
    while ((header_end = buf_.find("\r\n\r\n")) == std::string::npos) {
      if (!Fill(deadline)) return std::nullopt;
    }
    HttpResponse r;
    std::string head = buf_.substr(0, header_end);
    buf_.erase(0, header_end + 4);
    r.status = std::atoi(head.substr(9, 3).c_str());
    size_t pos = head.find("\r\n");
    while (pos != std::string::npos) {
      size_t next = head.find("\r\n", pos + 2);
      std::string line =
          head.substr(pos + 2, next == std::string::npos ? std::string::npos : next - pos - 2);
      size_t colon = line.find(':');
      if (colon != std::string::npos) {
        std::string name = line.substr(0, colon);
        for (auto& c : name) c = static_cast<char>(std::tolower(c));
        size_t v = line.find_first_not_of(' ', colon + 1);
        r.headers[name] = v == std::string::npos ? "" : line.substr(v);
      }
      pos = next;
    }
    size_t length = r.headers.count("content-length") ? std::stoul(r.headers["content-length"]) : 0;
    while (buf_.size() < length) {
      if (!Fill(deadline)) return std::nullopt;
    }
    r.body = buf_.substr(0, length);
    buf_.erase(0, length);
    return r;
  }

  // True when the server closes the connection within `timeout` (bytes still
  // arriving are discarded).
  bool WaitClosed(std::chrono::milliseconds timeout = 5000ms) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
      char tmp[65536];
      ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
      if (n <= 0) return true;
    }
  }

 private:
  bool Fill(std::chrono::steady_clock::time_point deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
    char tmp[65536];
    ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
    if (n <= 0) return false;
    buf_.append(tmp, static_cast<size_t>(n));
    return true;
  }

  int fd_ = -1;
  bool connected_ = false;
  std::string buf_;
};

class ServerTest : public ::testing::Test {
 protected:
  ServerTest() : blobs_(dir_ / "blobs") {
    settings_.bind_address = "127.0.0.1";
    settings_.port = 0;
    settings_.threads = 2;
    settings_.blocking_threads = 2;
    settings_.max_upload_bytes = 1024 * 1024;
    settings_.upload_fsync = false;
    settings_.jwt_secret = kSecret;
    settings_.rate_limit_per_minute = 0;
    // Tests wait for closes: a short lingering close keeps them quick.
    settings_.linger_idle_ms = 500;
  }
  ~ServerTest() override { StopServer(); }

  void StartServer() {
    server_ = std::make_unique<Server>(settings_, ServerDeps{&store_, &blobs_, &queue_});
    auto port = server_->Start();
    ASSERT_TRUE(port.ok()) << port.status().ToString();
    port_ = *port;
    runner_ = std::thread([this] { server_->Run(); });
  }

  void StopServer() {
    if (!server_) return;
    server_->Shutdown();
    if (runner_.joinable()) runner_.join();
    server_.reset();
  }

  HttpResponse Request(const std::string& raw) {
    Client c(port_);
    EXPECT_TRUE(c.Send(raw));
    auto r = c.Read();
    EXPECT_TRUE(r.has_value());
    return r.value_or(HttpResponse{});
  }

  HttpResponse Get(const std::string& target, const std::string& token = "") {
    std::string raw = "GET " + target + " HTTP/1.1\r\nHost: t\r\n";
    if (!token.empty()) raw += "Authorization: Bearer " + token + "\r\n";
    return Request(raw + "\r\n");
  }

  HttpResponse Upload(const std::string& body, const std::string& token) {
    return Request(UploadHeader(token, body.size()) + body);
  }

  std::vector<std::string> TempFiles() { return DirBlobStore::ListFiles(blobs_.dir() + "/tmp"); }

  static std::string ErrorCode(const HttpResponse& r) {
    json j = r.Json();
    if (j.is_discarded() || !j.contains("error")) return "<no error body: " + r.body + ">";
    EXPECT_EQ(j["success"], false);
    return j["error"]["code"].get<std::string>();
  }

  static std::string ReadFile(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  TempDir dir_;
  FakeMetadataStore store_;
  FakeQueue queue_;
  DirBlobStore blobs_;
  ServerSettings settings_;
  std::unique_ptr<Server> server_;
  std::thread runner_;
  int port_ = 0;
};

using UploadHandler = ServerTest;

TEST_F(UploadHandler, AcceptsFileAndReturns202) {
  StartServer();
  const std::string file = "hello, conveyor\n";
  HttpResponse r = Upload(UploadBody(file, "sess-1", "notes.txt"), Token("alice"));
  ASSERT_EQ(r.status, 202) << r.body;
  json j = r.Json();
  ASSERT_TRUE(j["success"].get<bool>());
  std::string id = j["data"]["jobId"];
  EXPECT_TRUE(IsUuid(id));
  EXPECT_EQ(j["data"]["status"], "pending");

  auto rows = store_.All();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].id, id);
  EXPECT_EQ(rows[0].user_id, "alice");
  EXPECT_EQ(rows[0].session_id, "sess-1");
  EXPECT_EQ(rows[0].original_name, "notes.txt");
  EXPECT_EQ(rows[0].mime_type, "text/plain");
  EXPECT_EQ(rows[0].size_bytes, static_cast<int64_t>(file.size()));
  EXPECT_EQ(rows[0].sha256_hex, Sha256Hex(file));
  EXPECT_EQ(rows[0].message, "hello");
  EXPECT_EQ(rows[0].storage_path, blobs_.Location(id));
  EXPECT_EQ(ReadFile(rows[0].storage_path), file);

  auto job = queue_.Get(id);
  ASSERT_TRUE(job.has_value());
  EXPECT_EQ(job->name, "file-upload");
  json data = json::parse(job->data_json);
  EXPECT_EQ(data["jobId"], id);
  EXPECT_EQ(data["userId"], "alice");
  EXPECT_EQ(data["sessionId"], "sess-1");
  EXPECT_EQ(data["storagePath"], blobs_.Location(id));
  EXPECT_EQ(data["originalName"], "notes.txt");
  EXPECT_EQ(data["mimeType"], "text/plain");
  EXPECT_EQ(data["size"], file.size());
  EXPECT_EQ(data["message"], "hello");
  EXPECT_TRUE(TempFiles().empty());
}

TEST_F(UploadHandler, LargeContentLengthUploadIsStoredIntact) {
  settings_.max_upload_bytes = 20 * 1024 * 1024;
  StartServer();
  const std::string file = RandomBytes(9 * 1024 * 1024 + 12345, 7);
  HttpResponse r = Upload(UploadBody(file), Token("alice"));
  ASSERT_EQ(r.status, 202) << r.body;
  auto rows = store_.All();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].size_bytes, static_cast<int64_t>(file.size()));
  EXPECT_EQ(rows[0].sha256_hex, Sha256Hex(file));
  EXPECT_TRUE(ReadFile(rows[0].storage_path) == file);
}

// The session reads bodies in 512 KiB buffers; a closing delimiter that
// straddles a buffer edge (at any offset) must still be found, and no
// delimiter byte may leak into the file.
TEST_F(UploadHandler, DelimiterAcrossBufferEdgeIsFound) {
  StartServer();
  const std::string token = Token("alice");
  const size_t kEdge = 512 * 1024;
  const size_t overhead = UploadBody("").size();
  Client c(port_);
  for (int shift = -48; shift <= 48; shift += 3) {
    const size_t file_size = kEdge - overhead + static_cast<size_t>(24 + shift);
    const std::string file = RandomBytes(file_size, static_cast<uint32_t>(shift + 100));
    const std::string body = UploadBody(file);
    ASSERT_TRUE(c.Send(UploadHeader(token, body.size()) + body));
    auto r = c.Read();
    ASSERT_TRUE(r) << shift;
    ASSERT_EQ(r->status, 202) << shift << ": " << r->body;
    std::string id = r->Json()["data"]["jobId"];
    auto row = store_.GetJob(id);
    ASSERT_TRUE(row.ok() && row->has_value());
    EXPECT_EQ((*row)->sha256_hex, Sha256Hex(file)) << shift;
  }
}

TEST_F(UploadHandler, ChunkedUploadIsStoredIntact) {
  settings_.max_upload_bytes = 4 * 1024 * 1024;
  StartServer();
  const std::string file = RandomBytes(3 * 1024 * 1024 + 777, 9);
  const std::string body = UploadBody(file);
  std::string raw = "POST /api/chat/upload/async HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer " +
                    Token("alice") +
                    "\r\nContent-Type: multipart/form-data; boundary=" + kBoundary +
                    "\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (size_t off = 0; off < body.size(); off += 100000) {
    size_t n = std::min<size_t>(100000, body.size() - off);
    char len[32];
    std::snprintf(len, sizeof len, "%zx\r\n", n);
    raw += len;
    raw.append(body, off, n);
    raw += "\r\n";
  }
  raw += "0\r\n\r\n";
  HttpResponse r = Request(raw);
  ASSERT_EQ(r.status, 202) << r.body;
  auto rows = store_.All();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].sha256_hex, Sha256Hex(file));
}

TEST_F(UploadHandler, KeepAliveServesSeveralUploadsOnOneConnection) {
  StartServer();
  Client c(port_);
  const std::string token = Token("alice");
  // Two requests in one write (pipelined), then a third after the answers.
  std::string b1 = UploadBody("first"), b2 = UploadBody("second");
  ASSERT_TRUE(c.Send(UploadHeader(token, b1.size()) + b1 + UploadHeader(token, b2.size()) + b2));
  auto r1 = c.Read();
  auto r2 = c.Read();
  ASSERT_TRUE(r1 && r2);
  EXPECT_EQ(r1->status, 202);
  EXPECT_EQ(r2->status, 202);
  ASSERT_TRUE(c.Send("GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"));
  auto r3 = c.Read();
  ASSERT_TRUE(r3);
  EXPECT_EQ(r3->status, 200);
  EXPECT_EQ(store_.size(), 2u);
}

TEST_F(UploadHandler, MissingFileReturns400AndServerKeepsServing) {
  StartServer();
  std::string body = Multipart({{"session_id", "s1", std::nullopt, ""}});
  HttpResponse r = Upload(body, Token("alice"));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(ErrorCode(r), "missing_file");
  EXPECT_EQ(Upload(UploadBody("x"), Token("alice")).status, 202);
}

TEST_F(UploadHandler, MissingSessionIdReturns400) {
  StartServer();
  std::string body = Multipart({{"file", "data", "a.txt", "text/plain"}});
  HttpResponse r = Upload(body, Token("alice"));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(ErrorCode(r), "missing_session_id");
  r = Upload(UploadBody("data", ""), Token("alice"));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(ErrorCode(r), "missing_session_id");
  EXPECT_EQ(store_.size(), 0u);
}

TEST_F(UploadHandler, EmptyFileReturns400) {
  StartServer();
  HttpResponse r = Upload(UploadBody(""), Token("alice"));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(ErrorCode(r), "empty_file");
  EXPECT_EQ(store_.size(), 0u);
  EXPECT_TRUE(TempFiles().empty());
  EXPECT_EQ(DirBlobStore::ListFiles(blobs_.dir()).size(), 0u);
}

TEST_F(UploadHandler, MalformedBodyReturns400) {
  StartServer();
  HttpResponse r = Upload("this is not multipart at all", Token("alice"));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(ErrorCode(r), "malformed_body");
  // Not multipart/form-data at all.
  std::string raw = "POST /api/chat/upload/async HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer " +
                    Token("alice") +
                    "\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
  r = Request(raw);
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(ErrorCode(r), "malformed_body");
  EXPECT_EQ(Get("/healthz").status, 200);
}

TEST_F(UploadHandler, TruncatedBodyReturns400AndConnectionStaysUsable) {
  StartServer();
  std::string body =
      Multipart({{"session_id", "s1", std::nullopt, ""}, {"file", "abc", "a.txt", "text/plain"}},
                /*close=*/false);
  body.resize(body.size() - 3);
  Client c(port_);
  ASSERT_TRUE(c.Send(UploadHeader(Token("alice"), body.size()) + body));
  auto r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(ErrorCode(*r), "malformed_body");
  ASSERT_TRUE(c.Send("GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"));
  auto h = c.Read();
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
  EXPECT_TRUE(TempFiles().empty());
  EXPECT_EQ(store_.size(), 0u);
}

TEST_F(UploadHandler, BodyEndingBeforeContentLengthReturns400) {
  StartServer();
  std::string body = UploadBody("abcdef");
  Client c(port_);
  ASSERT_TRUE(c.Send(UploadHeader(Token("alice"), body.size() + 100) + body));
  c.HalfClose();  // done sending, still reading
  auto r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(ErrorCode(*r), "malformed_body");
  EXPECT_TRUE(Eventually([&] { return TempFiles().empty(); }, 2000ms));
  EXPECT_EQ(store_.size(), 0u);
}

TEST_F(UploadHandler, NoTokenReturns401WithoutReadingBody) {
  StartServer();
  for (const std::string& token : {std::string(), std::string("not-a-jwt"), Token("alice") + "x"}) {
    Client c(port_);
    // Only the header: the answer must come without any body byte.
    ASSERT_TRUE(c.Send(UploadHeader(token, 5000)));
    auto r = c.Read(2000ms);
    ASSERT_TRUE(r) << "no answer for token '" << token << "'";
    EXPECT_EQ(r->status, 401);
    EXPECT_EQ(ErrorCode(*r), "unauthorized");
    EXPECT_EQ(r->headers["www-authenticate"], "Bearer");
    EXPECT_TRUE(c.WaitClosed(3000ms));
  }
  EXPECT_EQ(Get("/api/chat/upload/status/" + NewUuid()).status, 401);
  EXPECT_EQ(store_.size(), 0u);
}

TEST_F(UploadHandler, ContentLengthOverLimitReturns413BeforeBody) {
  StartServer();
  Client c(port_);
  ASSERT_TRUE(c.Send(UploadHeader(Token("alice"), 50 * 1024 * 1024, "Expect: 100-continue\r\n")));
  auto r = c.Read(2000ms);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413);  // and never a 100 Continue first
  EXPECT_EQ(ErrorCode(*r), "payload_too_large");
  EXPECT_EQ(r->headers["connection"], "close");
  EXPECT_TRUE(c.WaitClosed(3000ms));
}

TEST_F(UploadHandler, ExpectContinueGets100ThenAccepts) {
  StartServer();
  Client c(port_);
  std::string body = UploadBody("data");
  ASSERT_TRUE(c.Send(UploadHeader(Token("alice"), body.size(), "Expect: 100-continue\r\n")));
  auto cont = c.Read(2000ms);
  ASSERT_TRUE(cont);
  EXPECT_EQ(cont->status, 100);
  ASSERT_TRUE(c.Send(body));
  auto r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 202);
}

TEST_F(UploadHandler, ChunkedBodyOverLimitReturns413AndCloses) {
  StartServer();
  Client c(port_);
  std::string head = "POST /api/chat/upload/async HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer " +
                     Token("alice") +
                     "\r\nContent-Type: multipart/form-data; boundary=" + kBoundary +
                     "\r\nTransfer-Encoding: chunked\r\n\r\n";
  ASSERT_TRUE(c.Send(head));
  std::string body = UploadBody(RandomBytes(8 * 1024 * 1024));
  std::atomic<bool> send_failed{false};
  std::thread sender([&] {
    for (size_t off = 0; off < body.size(); off += 65536) {
      size_t n = std::min<size_t>(65536, body.size() - off);
      char len[32];
      std::snprintf(len, sizeof len, "%zx\r\n", n);
      if (!c.Send(len) || !c.Send(std::string_view(body).substr(off, n)) || !c.Send("\r\n")) {
        send_failed = true;
        return;
      }
    }
    c.Send("0\r\n\r\n");
  });
  auto r = c.Read(5000ms);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413);
  EXPECT_EQ(ErrorCode(*r), "payload_too_large");
  EXPECT_TRUE(c.WaitClosed(5000ms));
  sender.join();
  // The server stopped reading (for the upload) soon after the 1 MiB limit.
  std::string metrics = Get("/metrics").body;
  const std::string key = "\nconveyor_upload_bytes_received_total ";
  size_t at = metrics.find(key);
  ASSERT_NE(at, std::string::npos);
  EXPECT_LT(std::stoll(metrics.substr(at + key.size())), 3 * 1024 * 1024) << "read most of the body";
  EXPECT_TRUE(Eventually([&] { return TempFiles().empty(); }, 2000ms));
  EXPECT_EQ(store_.size(), 0u);
}

TEST_F(UploadHandler, HostileFilenamesNeverLeaveTheStorageDir) {
  StartServer();
  const std::vector<std::string> names = {"../../etc/passwd",
                                          "/etc/passwd",
                                          "..\\..\\windows\\system32",
                                          std::string(10000, 'A'),
                                          "r\xC3\xA9sum\xC3\xA9 \xF0\x9F\x93\x84.txt",
                                          "nul\x01"
                                          "byte\x7f.txt",
                                          "..",
                                          "."};
  const std::string token = Token("alice");
  size_t accepted = 0;
  for (const auto& name : names) {
    HttpResponse r = Upload(UploadBody("payload", "s1", name), token);
    // Control characters in a part header are refused by the parser (400);
    // everything else is accepted with the name kept as metadata only.
    if (name.find('\x01') != std::string::npos) {
      EXPECT_EQ(r.status, 400) << r.body;
    } else {
      EXPECT_EQ(r.status, 202) << name.substr(0, 40) << ": " << r.body;
      ++accepted;
    }
  }
  auto everything = DirBlobStore::ListFiles(dir_.path());
  EXPECT_EQ(everything.size(), accepted);
  for (const auto& path : everything) {
    EXPECT_EQ(std::filesystem::path(path).parent_path().string(), blobs_.dir()) << path;
    EXPECT_TRUE(IsUuid(std::filesystem::path(path).filename().string())) << path;
  }
  for (const auto& row : store_.All()) {
    EXPECT_LE(row.original_name.size(), 255u);
    EXPECT_EQ(row.original_name.find('/'), std::string::npos);
    EXPECT_EQ(row.original_name.find('\x01'), std::string::npos);
    EXPECT_NE(row.original_name, "..");
  }
}

TEST_F(UploadHandler, RateLimitReturns429WithRetryAfter) {
  settings_.rate_limit_per_minute = 2;
  StartServer();
  const std::string token = Token("alice");
  EXPECT_EQ(Upload(UploadBody("1"), token).status, 202);
  EXPECT_EQ(Upload(UploadBody("2"), token).status, 202);
  HttpResponse r = Upload(UploadBody("3"), token);
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(ErrorCode(r), "rate_limited");
  ASSERT_TRUE(r.headers.count("retry-after"));
  EXPECT_GE(std::stoi(r.headers["retry-after"]), 1);
  // Another user has a bucket of their own.
  EXPECT_EQ(Upload(UploadBody("4"), Token("bob")).status, 202);
}

TEST_F(UploadHandler, QueueUnavailableStillAccepts) {
  StartServer();
  queue_.fail_add = Errc::kUnavailable;
  HttpResponse r = Upload(UploadBody("data"), Token("alice"));
  EXPECT_EQ(r.status, 202) << r.body;
  EXPECT_EQ(store_.size(), 1u);  // the reconciler re-adds it from the pending row
  EXPECT_EQ(queue_.size(), 0u);
  EXPECT_GE(queue_.add_calls.load(), 2);
}

TEST_F(UploadHandler, InsertFailureReturns503AndRemovesBlob) {
  StartServer();
  store_.fail_insert = Errc::kUnavailable;
  HttpResponse r = Upload(UploadBody("data"), Token("alice"));
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(ErrorCode(r), "service_unavailable");
  EXPECT_EQ(r.Json()["error"]["message"].get<std::string>().find("injected"), std::string::npos);
  EXPECT_TRUE(DirBlobStore::ListFiles(dir_.path()).empty());
  EXPECT_EQ(queue_.size(), 0u);
}

TEST_F(UploadHandler, HeaderTimeoutClosesConnection) {
  settings_.header_timeout_ms = 200;
  StartServer();
  Client c(port_);
  ASSERT_TRUE(c.Send("POST /api/chat/upload/async HTTP/1.1\r\nHost: t\r\n"));
  auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(c.WaitClosed(3000ms));
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2000ms);
}

TEST_F(UploadHandler, HeaderTooLargeReturns431) {
  settings_.max_header_bytes = 2048;
  StartServer();
  Client c(port_);
  ASSERT_TRUE(
      c.Send("GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: " + std::string(4096, 'a') + "\r\n\r\n"));
  auto r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 431);
  EXPECT_EQ(ErrorCode(*r), "header_too_large");
}

TEST_F(UploadHandler, BodyIdleTimeoutDeletesTempFile) {
  settings_.body_idle_timeout_ms = 300;
  StartServer();
  std::string body = UploadBody(RandomBytes(800 * 1024));
  Client c(port_);
  // Enough to fill the first buffer (so the temp file exists), then silence.
  ASSERT_TRUE(c.Send(UploadHeader(Token("alice"), body.size()) + body.substr(0, 600 * 1024)));
  EXPECT_TRUE(Eventually([&] { return !TempFiles().empty(); }, 2000ms));
  EXPECT_TRUE(c.WaitClosed(3000ms));
  EXPECT_TRUE(Eventually([&] { return TempFiles().empty(); }, 2000ms));
  EXPECT_EQ(store_.size(), 0u);
  EXPECT_EQ(Get("/healthz").status, 200);
}

TEST_F(UploadHandler, ShutdownCancelsInFlightUploadAndDeletesTempFile) {
  settings_.shutdown_grace_ms = 200;
  StartServer();
  std::string body = UploadBody(RandomBytes(800 * 1024));
  Client idle(port_);  // an idle keep-alive connection is closed at once
  Client c(port_);
  ASSERT_TRUE(c.Send(UploadHeader(Token("alice"), body.size()) + body.substr(0, 600 * 1024)));
  ASSERT_TRUE(Eventually([&] { return !TempFiles().empty(); }, 2000ms));
  auto start = std::chrono::steady_clock::now();
  server_->Shutdown();
  runner_.join();  // Run() returns
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3000ms);
  EXPECT_TRUE(TempFiles().empty());
  EXPECT_EQ(store_.size(), 0u);
  EXPECT_TRUE(c.WaitClosed(1000ms));
  EXPECT_TRUE(idle.WaitClosed(1000ms));
  server_.reset();
}

TEST_F(UploadHandler, ShutdownLetsAnUploadFinishWithinGrace) {
  settings_.shutdown_grace_ms = 5000;
  StartServer();
  std::string body = UploadBody(RandomBytes(800 * 1024));
  Client c(port_);
  ASSERT_TRUE(c.Send(UploadHeader(Token("alice"), body.size()) + body.substr(0, 600 * 1024)));
  ASSERT_TRUE(Eventually([&] { return !TempFiles().empty(); }, 2000ms));
  server_->Shutdown();
  std::this_thread::sleep_for(100ms);
  ASSERT_TRUE(c.Send(body.substr(600 * 1024)));
  auto r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 202);
  EXPECT_EQ(r->headers["connection"], "close");
  runner_.join();
  server_.reset();
  EXPECT_EQ(store_.size(), 1u);
}


// Hardening: each case was a reproduced attack; see the README's Security
// section for the limits involved.
using Hardening = ServerTest;

std::string ChunkedUploadHead(const std::string& token) {
  return "POST /api/chat/upload/async HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer " + token +
         "\r\nContent-Type: multipart/form-data; boundary=" + kBoundary +
         "\r\nTransfer-Encoding: chunked\r\n\r\n";
}

int64_t RssKiB() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6));
  }
  return -1;
}

// A chunk-size line that never ends ("1;" and then megabytes of extension)
// used to grow the session's read buffer without bound.
TEST_F(Hardening, EndlessChunkSizeLineGets400_Hardening) {
  settings_.max_chunk_line_bytes = 1024;
  StartServer();
  const int64_t rss0 = RssKiB();
  for (int i = 0; i < 4; ++i) {
    Client c(port_);
    ASSERT_TRUE(c.Send(ChunkedUploadHead(Token("alice")) + "1;"));
    // Keep sending extension bytes until the server answers (or 16 MiB).
    const std::string junk(64 * 1024, 'a');
    std::atomic<bool> stop{false};
    std::thread sender([&] {
      for (int k = 0; k < 256 && !stop; ++k) {
        if (!c.Send(junk)) return;
      }
    });
    auto r = c.Read(5000ms);
    stop = true;
    c.HalfClose();
    sender.join();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 400);
    EXPECT_EQ(ErrorCode(*r), "malformed_body");
    EXPECT_EQ(r->headers["connection"], "close");
  }
  // 4 connections, up to 16 MiB each: the server's memory barely moves.
  EXPECT_LT(RssKiB() - rss0, 8 * 1024);
  EXPECT_EQ(Get("/healthz").status, 200);
}

TEST_F(Hardening, EndlessTrailerGets400_Hardening) {
  settings_.max_trailer_bytes = 1024;
  StartServer();
  Client c(port_);
  std::string body = UploadBody("data");
  char len[32];
  std::snprintf(len, sizeof len, "%zx\r\n", body.size());
  ASSERT_TRUE(c.Send(ChunkedUploadHead(Token("alice")) + len + body + "\r\n0\r\nX-Trailer: " +
                     std::string(4096, 'v')));
  auto r = c.Read(5000ms);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(ErrorCode(*r), "malformed_body");
  EXPECT_EQ(store_.size(), 0u);
}

TEST_F(Hardening, ChunkedUploadSplitAtEveryFramingByteIsAccepted) {
  StartServer();
  Client c(port_);
  const std::string body = UploadBody("split framing");
  std::string chunked;
  for (size_t off = 0; off < body.size(); off += 37) {
    size_t n = std::min<size_t>(37, body.size() - off);
    char len[32];
    std::snprintf(len, sizeof len, "%zx;ext=1\r\n", n);
    chunked += len + body.substr(off, n) + "\r\n";
  }
  chunked += "0\r\nX-Done: yes\r\n\r\n";
  // Pipelined: a second request right behind the chunked body.
  ASSERT_TRUE(c.Send(ChunkedUploadHead(Token("alice"))));
  for (char ch : chunked) ASSERT_TRUE(c.Send(std::string(1, ch)));
  ASSERT_TRUE(c.Send("GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"));
  auto r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 202) << r->body;
  auto h = c.Read();
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
}

// Transfer-Encoding other than chunked used to be ignored and the body then
// parsed as the next request.
TEST_F(Hardening, TransferEncodingOtherThanChunkedGets400AndClose_Hardening) {
  StartServer();
  const std::string smuggled = "GET /nope-smuggled HTTP/1.1\r\nHost: t\r\n\r\n";
  for (const std::string te : {"gzip", "chunked, gzip", "gzip, chunked", "identity"}) {
    Client c(port_);
    ASSERT_TRUE(c.Send("POST /healthz HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: " + te +
                       "\r\n\r\n" + smuggled));
    auto r = c.Read();
    ASSERT_TRUE(r) << te;
    EXPECT_EQ(r->status, 400) << te;
    EXPECT_EQ(ErrorCode(*r), "malformed_request") << te;
    EXPECT_EQ(r->headers["connection"], "close") << te;
    EXPECT_FALSE(c.Read(300ms)) << te << ": the body was served as a request";
  }
  for (const std::string fields :
       {"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
        "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
        "Content-Length: 5\r\nContent-Length: 5\r\n", "Content-Length: 5, 5\r\n",
        "Content-Length: +5\r\n", "Content-Length: 0x5\r\n"}) {
    Client c(port_);
    ASSERT_TRUE(c.Send("POST /healthz HTTP/1.1\r\nHost: t\r\n" + fields + "\r\nhello"));
    auto r = c.Read();
    ASSERT_TRUE(r) << fields;
    EXPECT_EQ(r->status, 400) << fields;
    EXPECT_EQ(r->headers["connection"], "close") << fields;
  }
}

// A client that writes its whole body before reading (curl without Expect:
// 100-continue) used to get a reset instead of the 413 when the server closed
// after lingering only 500 ms or 1 MiB; on a loaded machine, always.
TEST_F(Hardening, EarlyAnswerSurvivesAClientStillSendingItsBody_Hardening) {
  settings_.linger_idle_ms = 2000;
  StartServer();
  std::atomic<bool> burn{true};
  std::vector<std::thread> burners;
  for (int i = 0; i < 2; ++i) {
    burners.emplace_back([&] {
      volatile uint64_t x = 0;
      while (burn) x = x * 6364136223846793005ull + 1;
    });
  }
  const std::string body = UploadBody(RandomBytes(8 * 1024 * 1024));  // limit: 1 MiB
  for (int run = 0; run < 3; ++run) {
    Client c(port_);
    ASSERT_TRUE(c.Send(UploadHeader(Token("alice"), body.size()))) << run;
    // The whole body first, then read: the 413 must still be there.
    ASSERT_TRUE(c.Send(body)) << run << ": the server reset the connection";
    auto r = c.Read(5000ms);
    ASSERT_TRUE(r) << run;
    EXPECT_EQ(r->status, 413) << run;
    EXPECT_EQ(ErrorCode(*r), "payload_too_large");
  }
  burn = false;
  for (auto& t : burners) t.join();
}

TEST_F(Hardening, TricklingBodyGets408_Hardening) {
  settings_.body_min_rate_bytes = 1000;
  settings_.body_rate_window_ms = 400;
  StartServer();
  std::string body = UploadBody(RandomBytes(64 * 1024));
  Client c(port_);
  ASSERT_TRUE(c.Send(UploadHeader(Token("alice"), body.size()) + body.substr(0, 10)));
  auto start = std::chrono::steady_clock::now();
  // One byte every 50 ms: never idle long enough for the idle timeout (30 s).
  std::optional<HttpResponse> r;
  for (size_t i = 10; i < body.size() && !r; ++i) {
    c.Send(body.substr(i, 1));
    r = c.Read(50ms);
  }
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 408);
  EXPECT_EQ(ErrorCode(*r), "body_too_slow");
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3000ms);
  EXPECT_TRUE(c.WaitClosed(2000ms));
  EXPECT_TRUE(Eventually([&] { return TempFiles().empty(); }, 2000ms));
}

// 200 uploads stalled after their header used to cost 70 MB: each allocated
// (and zero-filled) its 512 KiB buffers before the first body byte.
TEST_F(Hardening, StalledUploadsCostNoUploadBuffers_Hardening) {
  StartServer();
  const int64_t rss0 = RssKiB();
  std::vector<std::unique_ptr<Client>> stalled;
  const std::string token = Token("alice");
  for (int i = 0; i < 200; ++i) {
    stalled.push_back(std::make_unique<Client>(port_));
    ASSERT_TRUE(stalled.back()->Send(UploadHeader(token, 4 * 1024 * 1024)));
  }
  EXPECT_EQ(Get("/healthz").status, 200);  // every header was read by now
  EXPECT_LT(RssKiB() - rss0, 16 * 1024);
}

TEST_F(Hardening, ConnectionsPerClientAreCappedWith503_Hardening) {
  settings_.max_connections_per_client = 5;
  StartServer();
  std::vector<std::unique_ptr<Client>> held;
  for (int i = 0; i < 5; ++i) {
    held.push_back(std::make_unique<Client>(port_, "127.0.0.2"));
    ASSERT_TRUE(held.back()->connected());
  }
  // Served: the five are open (a request on each proves it).
  for (auto& c : held) {
    ASSERT_TRUE(c->Send("GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"));
    auto r = c->Read();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
  }
  Client over(port_, "127.0.0.2");
  over.Send("GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
  auto r = over.Read(2000ms);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  EXPECT_EQ(ErrorCode(*r), "too_many_connections");
  EXPECT_TRUE(over.WaitClosed(3000ms));
  // Another address is not affected.
  EXPECT_EQ(Get("/healthz").status, 200);
  // A freed slot is usable again.
  held.pop_back();
  EXPECT_TRUE(Eventually(
      [&] {
        Client again(port_, "127.0.0.2");
        again.Send("GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
        auto a = again.Read(1000ms);
        return a && a->status == 200;
      },
      3000ms));
}

TEST_F(Hardening, FullServerClosesIdleConnectionsToServeNewOnes_Hardening) {
  settings_.max_connections = 20;
  settings_.max_connections_per_client = 0;
  StartServer();
  std::vector<std::unique_ptr<Client>> idle;
  for (int i = 0; i < 20; ++i) idle.push_back(std::make_unique<Client>(port_));
  ASSERT_TRUE(Eventually(
      [&] {
        std::string m = Get("/metrics").body;
        return m.find("conveyor_http_connections_open 21") != std::string::npos ||
               m.find("conveyor_http_connections_open 20") != std::string::npos;
      },
      2000ms));
  for (int i = 0; i < 10; ++i) EXPECT_EQ(Get("/healthz").status, 200) << i;
}

TEST_F(Hardening, FullServerOfBusyConnectionsAnswers503_Hardening) {
  settings_.max_connections = 5;
  settings_.max_connections_per_client = 0;
  StartServer();
  std::vector<std::unique_ptr<Client>> busy;
  const std::string token = Token("alice");
  for (int i = 0; i < 5; ++i) {
    busy.push_back(std::make_unique<Client>(port_));
    // The 100 Continue says the server has read this header: the session
    // serves a request now and is no longer an idle one that a newcomer
    // may take the place of (on a loaded machine a probe could otherwise
    // arrive before the server has read the busy ones' headers).
    ASSERT_TRUE(busy.back()->Send(UploadHeader(token, 1000, "Expect: 100-continue\r\n")));
    auto cont = busy.back()->Read(10000ms);
    ASSERT_TRUE(cont && cont->status == 100) << i;
    ASSERT_TRUE(busy.back()->Send("--"));  // mid-body
  }
  ASSERT_TRUE(Eventually(
      [&] {
        Client c(port_);
        c.Send("GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        auto r = c.Read(1000ms);
        return r && r->status == 503 && ErrorCode(*r) == "too_many_connections";
      },
      10000ms));
}

TEST_F(Hardening, IdleKeepAliveConnectionIsClosed) {
  settings_.keepalive_timeout_ms = 300;
  StartServer();
  Client c(port_);
  ASSERT_TRUE(c.Send("GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"));
  ASSERT_TRUE(c.Read());
  auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(c.WaitClosed(3000ms));
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2000ms);
}

TEST_F(Hardening, InvalidUtf8InSessionIdOrMessageGets400_Hardening) {
  StartServer();
  HttpResponse r = Upload(UploadBody("data", "s\xff\xfe"), Token("alice"));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(ErrorCode(r), "invalid_session_id");
  std::string body = Multipart({{"session_id", "s1", std::nullopt, ""},
                                {"message", "caf\xc3", std::nullopt, ""},
                                {"file", "x", "a.txt", "text/plain"}});
  r = Upload(body, Token("alice"));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(ErrorCode(r), "invalid_message");
  EXPECT_EQ(store_.size(), 0u);
  EXPECT_EQ(Upload(UploadBody("data", "caf\xc3\xa9"), Token("alice")).status, 202);
}

TEST_F(Hardening, StoreErrorTextIsNeverSentToClients_Hardening) {
  StartServer();
  store_.fail_insert = Errc::kInvalidArgument;  // as a database refusal would be
  HttpResponse r = Upload(UploadBody("data"), Token("alice"));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(ErrorCode(r), "invalid_request");
  EXPECT_EQ(r.body.find("injected"), std::string::npos) << r.body;
}

TEST_F(Hardening, MetricsNeedTheirTokenWhenOneIsSet) {
  settings_.metrics_token = "metrics-secret";
  StartServer();
  EXPECT_EQ(Get("/metrics").status, 401);
  EXPECT_EQ(Get("/metrics", "wrong").status, 401);
  EXPECT_EQ(Get("/metrics", Token("alice")).status, 401);
  HttpResponse m = Get("/metrics", "metrics-secret");
  EXPECT_EQ(m.status, 200);
  EXPECT_NE(m.body.find("conveyor_http_connections_open"), std::string::npos);
  EXPECT_EQ(Get("/healthz").status, 200);
}

using StatusHandler = ServerTest;

TEST_F(StatusHandler, ReportsEachStateAndHidesOtherUsersJobs) {
  // Every change below must show at once: no cache of final states (with
  // it, the completion written over the failure would show only after
  // STATUS_CACHE_TTL_MS; see CachedFinalStateIsServedUntilItsTtl).
  settings_.status_cache_ttl_ms = 0;
  StartServer();
  HttpResponse up = Upload(UploadBody("data"), Token("alice"));
  ASSERT_EQ(up.status, 202);
  std::string id = up.Json()["data"]["jobId"];
  const std::string path = "/api/chat/upload/status/" + id;

  HttpResponse r = Get(path, Token("alice"));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Json()["data"], json({{"jobId", id}, {"status", "pending"}}));

  ASSERT_TRUE(store_.MarkProcessing(id, 1).ok());
  ASSERT_TRUE(store_.SetProgress(id, 40).ok());
  r = Get(path, Token("alice"));
  EXPECT_EQ(r.Json()["data"]["status"], "processing");
  EXPECT_EQ(r.Json()["data"]["progress"], 40);

  ASSERT_TRUE(store_.MarkFailed(id, "Invalid file format").ok());
  r = Get(path, Token("alice"));
  EXPECT_EQ(r.Json()["data"]["status"], "failed");
  EXPECT_EQ(r.Json()["data"]["error"], "Invalid file format");

  ASSERT_TRUE(
      store_.MarkCompleted(id, "file_x", R"({"aiResponse":{"text":"hi"},"fileId":"file_x"})").ok());
  r = Get(path, Token("alice"));
  EXPECT_EQ(r.Json()["data"]["status"], "completed");
  EXPECT_EQ(r.Json()["data"]["result"]["aiResponse"]["text"], "hi");  // an object, not a string

  r = Get(path, Token("bob"));
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(ErrorCode(r), "not_found");
  EXPECT_EQ(Get("/api/chat/upload/status/" + NewUuid(), Token("alice")).status, 404);
  EXPECT_EQ(Get("/api/chat/upload/status/..%2F..%2Fetc", Token("alice")).status, 404);
  EXPECT_EQ(Get("/api/chat/upload/status/123", Token("alice")).status, 404);
}

// A final state is answered from the cache for the TTL, then read again;
// the same bytes either way, and never to another user.
TEST_F(StatusHandler, CachedFinalStateIsServedUntilItsTtl) {
  settings_.status_cache_ttl_ms = 300;
  StartServer();
  HttpResponse up = Upload(UploadBody("data"), Token("alice"));
  ASSERT_EQ(up.status, 202);
  std::string id = up.Json()["data"]["jobId"];
  const std::string path = "/api/chat/upload/status/" + id;
  ASSERT_TRUE(store_.MarkProcessing(id, 1).ok());
  ASSERT_TRUE(store_.MarkFailed(id, "Invalid file format").ok());
  const auto read_after = std::chrono::steady_clock::now();
  HttpResponse failed = Get(path, Token("alice"));
  ASSERT_EQ(failed.status, 200);
  EXPECT_EQ(failed.body, R"({"success":true,"data":{"jobId":")" + id +
                             R"(","status":"failed","error":"Invalid file format"}})");
  ASSERT_TRUE(store_.MarkFailed(id, "Another error").ok());  // behind the server's back
  HttpResponse cached = Get(path, Token("alice"));
  if (std::chrono::steady_clock::now() - read_after < std::chrono::milliseconds(300)) {
    EXPECT_EQ(cached.body, failed.body);
  }
  HttpResponse other = Get(path, Token("bob"));
  EXPECT_EQ(other.status, 404);
  EXPECT_EQ(other.body, Get("/api/chat/upload/status/" + NewUuid(), Token("bob")).body);
  const std::string want_new =
      R"({"success":true,"data":{"jobId":")" + id + R"(","status":"failed","error":"Another error"}})";
  ASSERT_TRUE(Eventually([&] { return Get(path, Token("alice")).body == want_new; },
                         std::chrono::seconds(3)));
  // Not before the entry's TTL had passed (the server counts whole ms).
  EXPECT_GE(std::chrono::steady_clock::now() - read_after, std::chrono::milliseconds(299));
}

using Routing = ServerTest;

TEST_F(Routing, HealthReadinessMetricsAndUnknownRoutes) {
  StartServer();
  HttpResponse h = Get("/healthz");
  EXPECT_EQ(h.status, 200);
  EXPECT_EQ(h.Json(), json({{"status", "ok"}}));
  EXPECT_EQ(Get("/readyz").status, 200);
  queue_.fail_ping = Errc::kUnavailable;
  EXPECT_EQ(Get("/readyz").status, 503);
  queue_.fail_ping = Errc::kOk;
  store_.fail_ping = Errc::kUnavailable;
  EXPECT_EQ(Get("/readyz").status, 503);

  HttpResponse nf = Get("/nope");
  EXPECT_EQ(nf.status, 404);
  EXPECT_EQ(ErrorCode(nf), "not_found");
  HttpResponse wm = Request("DELETE /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_EQ(wm.status, 405);
  EXPECT_EQ(ErrorCode(wm), "method_not_allowed");

  EXPECT_EQ(Upload(UploadBody("abc"), Token("alice")).status, 202);
  HttpResponse m = Get("/metrics");
  EXPECT_EQ(m.status, 200);
  EXPECT_NE(m.body.find("conveyor_http_requests_total{route=\"healthz\",status=\"200\"} 1"),
            std::string::npos)
      << m.body;
  EXPECT_NE(m.body.find("conveyor_uploads_accepted_total 1"), std::string::npos);
  EXPECT_NE(m.body.find("conveyor_upload_duration_seconds_count 1"), std::string::npos);
  EXPECT_NE(m.body.find("conveyor_upload_bytes_received_total"), std::string::npos);
  EXPECT_NE(m.body.find("conveyor_http_requests_in_flight"), std::string::npos);
}

TEST_F(Routing, ServesItsOpenApiDocumentToAuthenticatedClients) {
  StartServer();
  EXPECT_EQ(Get("/api/openapi.json").status, 401);
  HttpResponse r = Get("/api/openapi.json", Token("alice"));
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.Json()["openapi"], "3.1.0");
  EXPECT_TRUE(r.Json()["paths"].contains("/api/chat/upload/async"));
}

TEST_F(Routing, MemorySearchValidatesAndReturnsOwnChunks) {
  StartServer();
  ASSERT_TRUE(store_.StoreMemory("alice", "s1", "j1", "file_1", {{0, "the quick brown fox"}}).ok());
  ASSERT_TRUE(store_.StoreMemory("bob", "s1", "j2", "file_2", {{0, "the quick brown fox"}}).ok());
  const std::string token = Token("alice");
  EXPECT_EQ(Get("/api/chat/memory/search?q=fox", token).status, 400);
  EXPECT_EQ(Get("/api/chat/memory/search?session_id=s1", token).status, 400);
  EXPECT_EQ(Get("/api/chat/memory/search?session_id=s1&q=fox", "").status, 401);
  HttpResponse r = Get("/api/chat/memory/search?session_id=s1&q=quick%20brown&limit=5", token);
  ASSERT_EQ(r.status, 200) << r.body;
  json results = r.Json()["data"]["results"];
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0]["fileId"], "file_1");
  EXPECT_EQ(results[0]["jobId"], "j1");
  EXPECT_EQ(results[0]["chunkIndex"], 0);
  EXPECT_TRUE(results[0].contains("snippet"));
  EXPECT_TRUE(results[0].contains("score"));
}

}  // namespace
}  // namespace conveyor::http

namespace conveyor::http {
namespace {

// Throughput checks, run by hand (fsync off, fakes for store and queue):
//   http_server_test --gtest_also_run_disabled_tests --gtest_filter='UploadThroughput.*'
using UploadThroughput = ServerTest;

double CpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

int64_t PeakRssKiB() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stoll(line.substr(6));
  }
  return -1;
}

TEST_F(UploadThroughput, DISABLED_OneGiBUpload) {
  settings_.max_upload_bytes = int64_t{2} << 30;
  StartServer();
  const size_t file_size = size_t{1} << 30;
  const std::string head_part =
      Multipart({{"session_id", "s1", std::nullopt, ""}}, false) + "--" + kBoundary +
      "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.bin\"\r\n"
      "Content-Type: application/octet-stream\r\n\r\n";
  const std::string tail = std::string("\r\n--") + kBoundary + "--\r\n";
  const std::string block = RandomBytes(1 << 20, 3);
  Client c(port_);
  auto start = std::chrono::steady_clock::now();
  double cpu0 = CpuSeconds();
  ASSERT_TRUE(
      c.Send(UploadHeader(Token("alice"), head_part.size() + file_size + tail.size()) + head_part));
  for (size_t sent = 0; sent < file_size; sent += block.size()) ASSERT_TRUE(c.Send(block));
  ASSERT_TRUE(c.Send(tail));
  auto r = c.Read(60000ms);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 202) << r->body;
  std::printf("1 GiB upload: %.2f s, %.0f MB/s, CPU (client+server) %.2f s, peak RSS %lld KiB\n",
              secs, file_size / secs / 1e6, CpuSeconds() - cpu0,
              static_cast<long long>(PeakRssKiB()));
  for (const auto& row : store_.All()) std::filesystem::remove(row.storage_path);
}

TEST_F(UploadThroughput, DISABLED_SmallUploadsAt16Connections) {
  StartServer();
  const std::string token = Token("alice");
  const std::string body = UploadBody(RandomBytes(64 * 1024, 5));
  const std::string request = UploadHeader(token, body.size()) + body;
  constexpr int kConnections = 16;
  constexpr int kPerConnection = 1000;
  std::vector<std::vector<double>> lat(kConnections);
  std::vector<std::thread> threads;
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kConnections; ++i) {
    threads.emplace_back([&, i] {
      Client c(port_);
      for (int n = 0; n < kPerConnection; ++n) {
        auto t0 = std::chrono::steady_clock::now();
        if (!c.Send(request)) return;
        auto r = c.Read();
        if (!r || r->status != 202) return;
        lat[i].push_back(
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                .count());
      }
    });
  }
  for (auto& t : threads) t.join();
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::vector<double> all;
  for (auto& v : lat) all.insert(all.end(), v.begin(), v.end());
  ASSERT_EQ(all.size(), size_t{kConnections * kPerConnection});
  std::sort(all.begin(), all.end());
  std::printf("64 KiB uploads: %.0f/s, p50 %.2f ms, p99 %.2f ms\n", all.size() / secs,
              all[all.size() / 2], all[all.size() * 99 / 100]);
  for (const auto& row : store_.All()) std::filesystem::remove(row.storage_path);
}

}  // namespace
}  // namespace conveyor::http

namespace conveyor::http {
namespace {

// The same path over the real SQLite store and local blob store.
TEST(UploadHandlerRealStorage, AcceptsFileWithSqliteStoreAndLocalBlobStore) {
  TempDir dir;
  auto store = storage::OpenMetadataStore("sqlite://" + dir.path() + "/db.sqlite", true);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  auto blobs = storage::OpenLocalBlobStore(dir.path() + "/blobs");
  ASSERT_TRUE(blobs.ok()) << blobs.status().ToString();
  FakeQueue queue;
  ServerSettings settings;
  settings.bind_address = "127.0.0.1";
  settings.port = 0;
  settings.jwt_secret = kSecret;
  settings.upload_fsync = true;
  Server server(settings, ServerDeps{store->get(), blobs->get(), &queue});
  auto port = server.Start();
  ASSERT_TRUE(port.ok());
  std::thread runner([&] { server.Run(); });

  const std::string file = RandomBytes(700 * 1024, 11);  // spans two buffers
  const std::string body = UploadBody(file, "s9", "../../x.bin");
  Client c(*port);
  ASSERT_TRUE(c.Send(UploadHeader(Token("carol"), body.size()) + body));
  auto r = c.Read();
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 202) << r->body;
  std::string id = r->Json()["data"]["jobId"];

  auto row = (*store)->GetJobForUser(id, "carol");
  ASSERT_TRUE(row.ok() && row->has_value());
  EXPECT_EQ((*row)->sha256_hex, Sha256Hex(file));
  EXPECT_EQ((*row)->size_bytes, static_cast<int64_t>(file.size()));
  EXPECT_EQ((*row)->original_name, "x.bin");
  EXPECT_EQ((*row)->storage_path, (*blobs)->Location(id));
  std::ifstream in((*row)->storage_path, std::ios::binary);
  EXPECT_TRUE(std::string(std::istreambuf_iterator<char>(in), {}) == file);

  ASSERT_TRUE(c.Send("GET /api/chat/upload/status/" + id +
                     " HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer " + Token("carol") +
                     "\r\n\r\n"));
  auto s = c.Read();
  ASSERT_TRUE(s);
  EXPECT_EQ(s->status, 200);
  EXPECT_EQ(s->Json()["data"]["status"], "pending");

  server.Shutdown();
  runner.join();
}

}  // namespace
}  // namespace conveyor::http
