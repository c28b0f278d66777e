// Hostile requests against the real `conveyor api` (real redis-server,
// SQLite): one table row per attack with the answer it must get, then proof
// that the service is still healthy and its memory stayed bounded.
//
// Each row sends raw bytes (whatever a client could put on the wire) and
// expects a status and error code, or a close without an answer. Rows with a
// `stream` keep sending after the request (an endless chunk-size line, a body
// far over the limit) until the server answers: the answer must come, and the
// client must be able to read it. Time-based rows (slowloris, a trickling or
// stalled body) run against short configured timeouts. Synchronisation is by
// socket events only.
#include <gtest/gtest.h>
#include <openssl/hmac.h>
#include <sys/resource.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "crafted_jwt.h"
#include "service.h"

namespace conveyor::testing {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

constexpr const char* kBoundary = "hostileBoundary42";
constexpr int64_t kMaxUpload = 1024 * 1024;

// A JWT built by hand; `md` null: no signature (alg none).
std::string Jwt(std::string_view header, std::string_view payload, const EVP_MD* md,
                std::string_view secret = Service::kSecret) {
  return CraftJwt(header, payload, md, secret);
}

std::string Exp(int64_t from_now_s) { return std::to_string(std::time(nullptr) + from_now_s); }

struct Part {
  std::string headers;  // after Content-Disposition's `form-data; `
  std::string data;
};

std::string Form(const std::vector<Part>& parts, bool close = true) {
  std::string b;
  for (const auto& p : parts) {
    b += std::string("--") + kBoundary + "\r\nContent-Disposition: form-data; " + p.headers +
         "\r\n\r\n" + p.data + "\r\n";
  }
  if (close) b += std::string("--") + kBoundary + "--\r\n";
  return b;
}

std::string GoodForm(const std::string& session = "s1", const std::string& filename = "a.txt",
                     const std::string& data = "hello hostile world") {
  return Form({{"name=\"session_id\"", session},
               {"name=\"file\"; filename=\"" + filename + "\"\r\nContent-Type: text/plain", data}});
}

std::string Post(const std::string& token, const std::string& body,
                 const std::string& content_type = std::string("multipart/form-data; boundary=") +
                                                   kBoundary,
                 const std::string& extra = "") {
  std::string h = "POST /api/chat/upload/async HTTP/1.1\r\nHost: t\r\n";
  if (!token.empty()) h += "Authorization: Bearer " + token + "\r\n";
  h += "Content-Type: " + content_type + "\r\nContent-Length: " + std::to_string(body.size()) +
       "\r\n" + extra + "\r\n";
  return h + body;
}

std::string PostChunked(const std::string& token, const std::string& chunked_body) {
  return "POST /api/chat/upload/async HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer " + token +
         "\r\nContent-Type: multipart/form-data; boundary=" + kBoundary +
         "\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked_body;
}

std::string Chunked(const std::string& body) {
  char len[32];
  std::snprintf(len, sizeof len, "%zx\r\n", body.size());
  return len + body + "\r\n0\r\n\r\n";
}

std::string Get(const std::string& target, const std::string& token = "") {
  std::string h = "GET " + target + " HTTP/1.1\r\nHost: t\r\n";
  if (!token.empty()) h += "Authorization: Bearer " + token + "\r\n";
  return h + "\r\n";
}

// What a row expects: an answer (status and error code; "" for a success
// body), or status 0: the server closes without answering.
struct Expect {
  int status = 0;
  std::string code;
  bool closes = false;  // Connection: close and the socket closed after it
};

struct Case {
  std::string name;
  std::string request;
  Expect expect;
  // Sent repeatedly after `request` until the answer arrives (at most 64 MiB).
  std::string stream{};
  // Instead of sending `request` while reading: drives the connection and
  // returns the answer (for rows whose order of sends and reads matters).
  std::function<HttpResponse(HttpConnection&)> drive{};
};

std::string ErrorCodeOf(const HttpResponse& r) {
  auto j = nlohmann::json::parse(r.body, nullptr, false);
  if (j.is_discarded()) return "<not json: " + r.body.substr(0, 80) + ">";
  if (j.value("success", false)) return "";
  return j.value("/error/code"_json_pointer, std::string("<no code>"));
}

int64_t RssKiB(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6));
  }
  return -1;
}

void RaiseOwnDescriptorLimit() {
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
}

// Runs one row on a fresh connection; returns a description of what was
// wrong, or "".
std::string RunCase(int port, const Case& c) {
  HttpConnection conn(port);
  if (!conn.connected()) return "could not connect";
  HttpResponse r;
  if (c.drive) {
    r = c.drive(conn);
  } else {
    std::atomic<bool> answered{false};
    std::thread sender([&] {
      if (!conn.Send(c.request) || c.stream.empty()) return;
      for (size_t sent = 0; sent < (size_t{64} << 20) && !answered; sent += c.stream.size()) {
        if (!conn.Send(c.stream)) return;  // the server closed after answering
      }
    });
    r = conn.Read(5s);
    answered = true;
    // A sender blocked on a full socket is released by the server's close
    // (answered rows: after its lingering read) or by ours.
    if (r.status == 0 || c.expect.closes) conn.ClosedByPeer(5s);
    conn.HalfClose();
    sender.join();
  }
  std::string got = std::to_string(r.status) + " " + ErrorCodeOf(r);
  if (c.expect.status == 0) {
    if (r.status != 0) return "expected a close without an answer, got " + got;
    return "";
  }
  if (r.status != c.expect.status) {
    return "expected " + std::to_string(c.expect.status) + ", got " + got;
  }
  if (ErrorCodeOf(r) != c.expect.code) return "expected code " + c.expect.code + ", got " + got;
  if (c.expect.closes) {
    if (r.headers["connection"] != "close") return "no Connection: close";
    if (!conn.ClosedByPeer(5s)) return "the server kept the connection open";
  }
  return "";
}

// The request head of `request` and the first `body_bytes` of its body.
std::string HeadAnd(const std::string& request, size_t body_bytes) {
  return request.substr(0, request.find("\r\n\r\n") + 4 + body_bytes);
}

TEST(Hostile, TableOfHostileRequestsGetsTheirAnswers_Hardening) {
  RaiseOwnDescriptorLimit();
  Service svc({{"MAX_UPLOAD_BYTES", std::to_string(kMaxUpload)},
               {"RATE_LIMIT_PER_MINUTE", "0"},
               {"HEADER_TIMEOUT_MS", "800"},
               {"BODY_IDLE_TIMEOUT_MS", "800"},
               {"BODY_MIN_RATE_BYTES", "4000"},
               {"BODY_RATE_WINDOW_MS", "500"},
               {"LINGER_IDLE_MS", "1000"},
               {"LINGER_MAX_MS", "10000"},
               {"MAX_CHUNK_LINE_BYTES", "4096"},
               {"MAX_TRAILER_BYTES", "8192"},
               {"MAX_CONNECTIONS", "600"},
               {"MAX_CONNECTIONS_PER_CLIENT", "100"},
               {"KEEPALIVE_TIMEOUT_MS", "5000"},
               {"METRICS_TOKEN", "metrics-token-for-the-hostile-test"},
               {"HTTP_THREADS", "2"}});
  svc.StartApi();
  const int port = svc.port();
  const std::string alice = Service::Token("alice");
  const std::string bob = Service::Token("bob");

  // A job of alice's, for bob to ask about; and a warm-up so the RSS baseline
  // includes what any first upload allocates.
  auto first = Upload(port, alice, "s1", {"file", "a.txt", "text/plain", "warm-up"});
  ASSERT_EQ(first.status, 202) << first.body << svc.api().Log();
  const std::string alice_job = Service::Json(first)["data"]["jobId"];
  const int64_t rss0 = RssKiB(svc.api().pid());
  ASSERT_GT(rss0, 0);

  const std::string big_body = GoodForm("s1", "big.bin", std::string(8 * 1024 * 1024, 'x'));
  std::string ten_thousand_parts;
  for (int i = 0; i < 10000; ++i) ten_thousand_parts += Form({{"name=\"f\"", "v"}}, false);
  ten_thousand_parts += std::string("--") + kBoundary + "--\r\n";
  std::string many_headers;
  for (int i = 0; i < 2000; ++i) many_headers += "X-H" + std::to_string(i) + ": v\r\n";

  const std::string hs256 = R"({"alg":"HS256","typ":"JWT"})";
  const std::string claims = R"({"sub":"mallory","exp":)" + Exp(3600) + "}";
  const Expect bad_request{400, "malformed_request", true};
  const Expect bad_body{400, "malformed_body", true};
  const Expect unauthorized{401, "unauthorized", false};
  const Expect closed{0, "", false};

  std::vector<Case> table = {
      // --- paths and names
      {"path traversal in the URL", Get("/api/chat/upload/status/../../../etc/passwd", alice),
       {404, "not_found"}},
      {"encoded traversal in the job id",
       Get("/api/chat/upload/status/..%2F..%2Fetc%2Fpasswd", alice), {404, "not_found"}},
      {"traversal in the file name (kept as metadata)",
       Post(alice, GoodForm("s1", "../../../../etc/passwd")), {202, ""}},
      {"absolute file name", Post(alice, GoodForm("s1", "/etc/shadow")), {202, ""}},
      {"NUL byte in the path", std::string("GET /healthz\0/x HTTP/1.1\r\nHost: t\r\n\r\n", 37),
       bad_request},
      {"encoded NUL in the job id", Get("/api/chat/upload/status/%00", alice), {404, "not_found"}},
      {"NUL byte in a header value",
       std::string("GET /healthz HTTP/1.1\r\nHost: t\r\nX-A: a\0b\r\n\r\n", 44), bad_request},
      {"NUL byte in a header name",
       std::string("GET /healthz HTTP/1.1\r\nHost: t\r\nX\0A: b\r\n\r\n", 42), bad_request},
      {"NUL byte in a form field name",
       Post(alice, Form({{std::string("name=\"sess\0ion_id\"", 18), "s1"},
                         {"name=\"file\"; filename=\"a.txt\"", "x"}})),
       {400, "malformed_body"}},
      {"escape sequence in a header value",
       "GET /healthz HTTP/1.1\r\nHost: t\r\nX-A: \x1b[31mred\r\n\r\n", bad_request},
      {"byte 0xff in the path", "GET /healthz\xff HTTP/1.1\r\nHost: t\r\n\r\n", bad_request},
      // --- header sizes and syntax
      {"oversized header", "GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: " +
                               std::string(64 * 1024, 'a') + "\r\n\r\n",
       {431, "header_too_large", true}},
      {"2,000 header fields", "GET /healthz HTTP/1.1\r\nHost: t\r\n" + many_headers + "\r\n",
       {431, "header_too_large", true}},
      {"garbage request line", "GARBAGE\r\n\r\n", bad_request},
      {"header line without a colon", "GET /healthz HTTP/1.1\r\nHost t\r\n\r\n", bad_request},
      {"duplicate Host", "GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", bad_request},
      {"unknown method", "BREW /healthz HTTP/1.1\r\nHost: t\r\n\r\n",
       {405, "method_not_allowed"}},
      // --- framing (request smuggling)
      {"Transfer-Encoding: gzip",
       "POST /healthz HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n" + Get("/healthz"),
       bad_request},
      {"Transfer-Encoding: chunked, gzip",
       "POST /healthz HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, gzip\r\n\r\n" +
           Get("/healthz"),
       bad_request},
      {"Transfer-Encoding: gzip, chunked",
       "POST /healthz HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
       bad_request},
      {"Content-Length then Transfer-Encoding",
       "POST /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nTransfer-Encoding: "
       "chunked\r\n\r\n0\r\n\r\n",
       bad_request},
      {"Transfer-Encoding then Content-Length",
       "POST /healthz HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: "
       "4\r\n\r\n0\r\n\r\n",
       bad_request},
      {"Transfer-Encoding in HTTP/1.0",
       "POST /healthz HTTP/1.0\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
       bad_request},
      {"duplicate Content-Length, same value",
       "POST /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
       bad_request},
      {"duplicate Content-Length, other value",
       "POST /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
       bad_request},
      {"negative Content-Length", "POST /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n",
       bad_request},
      {"Content-Length past 2^64",
       "POST /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999999999999999999\r\n\r\n",
       bad_request},
      // --- chunked bodies
      {"negative chunk size", PostChunked(alice, "-1\r\nx\r\n0\r\n\r\n"), bad_body},
      {"chunk size overflowing 64 bits", PostChunked(alice, "1ffffffffffffffff\r\nx\r\n"),
       bad_body},
      {"non-hex chunk size", PostChunked(alice, "zz\r\nx\r\n0\r\n\r\n"), bad_body},
      {"chunk data longer than its size", PostChunked(alice, "1\r\nxyz\r\n0\r\n\r\n"), bad_body},
      {"endless chunk-size line (\"1;\" and megabytes)", PostChunked(alice, "1;"), bad_body,
       std::string(64 * 1024, 'a')},
      {"endless trailer", PostChunked(alice, "5\r\nhello\r\n0\r\nX-T: "), bad_body,
       std::string(64 * 1024, 'b')},
      {"chunked body over the upload limit",
       PostChunked(alice, "10000000\r\n--" + std::string(kBoundary) +
                              "\r\nContent-Disposition: form-data; name=\"file\"; "
                              "filename=\"big\"\r\n\r\n"),
       {413, "payload_too_large", true}, std::string(64 * 1024, 'c')},
      {"chunked upload, well formed", PostChunked(alice, Chunked(GoodForm())), {202, ""}},
      // --- multipart bodies
      {"10,000 parts", Post(alice, ten_thousand_parts), bad_body},
      {"missing boundary", Post(alice, GoodForm(), "multipart/form-data"), bad_body},
      {"overlong boundary (200 bytes)",
       Post(alice, GoodForm(), "multipart/form-data; boundary=" + std::string(200, 'b')),
       bad_body},
      {"boundary with a space and a quote",
       Post(alice, GoodForm(), "multipart/form-data; boundary=a\"b c"), bad_body},
      {"not multipart at all", Post(alice, "{}", "application/json"), bad_body},
      {"no closing delimiter", Post(alice, Form({{"name=\"session_id\"", "s1"}}, false)),
       {400, "malformed_body"}},
      {"session_id over its limit", Post(alice, GoodForm(std::string(4096, 's'))),
       {400, "invalid_session_id"}},
      {"message over its limit",
       Post(alice, Form({{"name=\"session_id\"", "s1"},
                         {"name=\"message\"", std::string(70 * 1024, 'm')},
                         {"name=\"file\"; filename=\"a.txt\"", "x"}})),
       {400, "message_too_long"}},
      {"unknown fields over their limit",
       Post(alice, Form({{"name=\"junk\"", std::string(100 * 1024, 'j')}})),
       {400, "malformed_body"}},
      {"two file parts",
       Post(alice, Form({{"name=\"session_id\"", "s1"},
                         {"name=\"file\"; filename=\"a\"", "1"},
                         {"name=\"file\"; filename=\"b\"", "2"}})),
       {400, "malformed_body"}},
      {"empty file", Post(alice, GoodForm("s1", "a.txt", "")), {400, "empty_file"}},
      {"invalid UTF-8 in session_id", Post(alice, GoodForm("s\xff\xfe")),
       {400, "invalid_session_id"}},
      {"overlong UTF-8 in session_id", Post(alice, GoodForm("\xc0\xaf")),
       {400, "invalid_session_id"}},
      {"invalid UTF-8 in message",
       Post(alice, Form({{"name=\"session_id\"", "s1"},
                         {"name=\"message\"", "caf\xc3"},
                         {"name=\"file\"; filename=\"a.txt\"", "x"}})),
       {400, "invalid_message"}},
      {"invalid UTF-8 in a search's session_id",
       Get("/api/chat/memory/search?session_id=%ff%fe&q=x", alice),
       {400, "invalid_session_id"}},
      {"FTS syntax in a search", Get("/api/chat/memory/search?session_id=s1&q=%22NEAR(", alice),
       {200, ""}},
      // --- sizes and time
      {"Content-Length over the limit, whole body sent before reading", "",
       {413, "payload_too_large", true}, "",
       [&](HttpConnection& c) {
         // As curl does without Expect: 100-continue: all 8 MiB, then read.
         if (!c.Send(Post(alice, big_body))) return HttpResponse{};  // reset under our feet
         return c.Read(5s);
       }},
      {"body shorter than Content-Length, then half-close", "", {400, "malformed_body", true}, "",
       [&](HttpConnection& c) {
         c.Send(HeadAnd(Post(alice, GoodForm()), 40));
         c.HalfClose();
         return c.Read(5s);
       }},
      {"slowloris header (never finished)", "GET /healthz HTTP/1.1\r\nHost: t\r\nX-A: ", closed},
      {"upload header and a few body bytes, then silence", HeadAnd(Post(alice, GoodForm()), 10),
       closed},
      {"connection closed mid-body", "", closed, "",
       [&](HttpConnection& c) {
         c.Send(HeadAnd(Post(alice, GoodForm()), 40));
         return HttpResponse{};  // and the connection is closed by its destructor
       }},
      // --- tokens and other users
      {"no token", Post("", GoodForm()), {401, "unauthorized", true}},
      {"alg none", Post(Jwt(R"({"alg":"none"})", claims, nullptr), GoodForm()),
       {401, "unauthorized", true}},
      {"token without exp",
       Get("/api/chat/upload/status/" + alice_job,
           Jwt(hs256, R"({"sub":"alice"})", EVP_sha256())),
       unauthorized},
      {"expired token",
       Get("/api/chat/upload/status/" + alice_job,
           Jwt(hs256, R"({"sub":"alice","exp":)" + Exp(-10) + "}", EVP_sha256())),
       unauthorized},
      {"wrong signature",
       Get("/api/chat/upload/status/" + alice_job,
           Jwt(hs256, R"({"sub":"alice","exp":)" + Exp(3600) + "}", EVP_sha256(),
               "another-secret-another-secret-0123456789")),
       unauthorized},
      {"HS512 token signed with the secret",
       Get("/api/chat/upload/status/" + alice_job,
           Jwt(R"({"alg":"HS512"})", R"({"sub":"alice","exp":)" + Exp(3600) + "}",
               EVP_sha512())),
       unauthorized},
      {"another user's job id", Get("/api/chat/upload/status/" + alice_job, bob),
       {404, "not_found"}},
      {"metrics without their token", Get("/metrics"), unauthorized},
      {"metrics with a user's token", Get("/metrics", alice), unauthorized},
  };
  // A body sent one byte per read of up to 100 ms: far below 4000 bytes per
  // 500 ms, never silent long enough for the idle timeout.
  table.push_back({"body trickling a byte at a time", "", {408, "body_too_slow", true}, "",
                   [&](HttpConnection& c) {
                     std::string req = Post(alice, GoodForm("s1", "slow.txt", std::string(20000, 't')));
                     size_t head_end = req.find("\r\n\r\n") + 4;
                     c.Send(req.substr(0, head_end));
                     for (size_t i = head_end; i < req.size(); ++i) {
                       c.Send(req.substr(i, 1));
                       HttpResponse r = c.Read(100ms);
                       if (r.status != 0) return r;
                     }
                     return HttpResponse{};
                   }});
  int failures = 0;
  for (const Case& c : table) {
    std::string wrong = RunCase(port, c);
    EXPECT_EQ(wrong, "") << "case \"" << c.name << "\"";
    if (!wrong.empty()) ++failures;
  }
  EXPECT_GE(table.size(), 40u);

  // Many idle connections: 1,000 from one address (past its limit: 503 and
  // closed), 1,000 from 20 others (past MAX_CONNECTIONS: idle ones are
  // closed to make room). /healthz from yet another address answers at once.
  {
    std::vector<std::unique_ptr<HttpConnection>> idle;
    int refused = 0;
    for (int i = 0; i < 1000; ++i) {
      idle.push_back(std::make_unique<HttpConnection>(port, "127.0.0.2"));
    }
    for (int i = 0; i < 1000; ++i) {
      idle.push_back(
          std::make_unique<HttpConnection>(port, "127.0.1." + std::to_string(1 + i % 20)));
    }
    for (int i = 0; i < 1000; ++i) {
      if (idle[i]->Read(2s).status == 503) ++refused;
    }
    EXPECT_GE(refused, 850) << "most of one address's 1,000 connections are refused";
    auto start = std::chrono::steady_clock::now();
    auto h = Request(port, "GET", "/healthz", {});
    EXPECT_EQ(h.status, 200);
    EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);
  }

  // Still healthy, still accepting, memory bounded.
  EXPECT_EQ(Request(port, "GET", "/healthz", {}).status, 200);
  EXPECT_EQ(Upload(port, alice, "s1", {"file", "after.txt", "text/plain", "still works"}).status,
            202);
  const int64_t rss1 = RssKiB(svc.api().pid());
  EXPECT_LT(rss1 - rss0, 32 * 1024) << "RSS " << rss0 << " KiB -> " << rss1 << " KiB";
  std::printf("hostile table: %zu cases, %d failed; API RSS %lld KiB -> %lld KiB\n", table.size(),
              failures, static_cast<long long>(rss0), static_cast<long long>(rss1));
  // Stored uploads have server-chosen names only.
  for (const auto& e : fs::recursive_directory_iterator(svc.storage_dir())) {
    if (!e.is_regular_file()) continue;
    std::string name = e.path().filename().string();
    EXPECT_EQ(name.size(), 36u) << e.path();
  }
  EXPECT_TRUE(svc.api().running()) << svc.api().Log();
}

}  // namespace
}  // namespace conveyor::testing
