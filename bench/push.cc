// Push notifications under load (prints figures; not a test). Run through
// bench/push.sh, which starts redis-server and `conveyor api`.
//
// 1. Latency: uploads `conns` jobs (no worker runs), opens one WebSocket per
//    job and subscribes it, then finishes the jobs one by one as a worker
//    does: the row first (MetadataStore::MarkFailed on the API's SQLite
//    database), then the `failed` event in the queue's events stream (XADD,
//    what the worker's Lua script writes). The time from just before the
//    XADD to the client's receipt of the `failed` message is one sample:
//    p50 and p99 over all jobs, the jobs spaced `gap_us` apart.
// 2. Memory: opens `idle` WebSocket connections that subscribe to nothing
//    and reads the API's VmRSS from /proc before and after.
//
//   push API_PORT REDIS_PORT DB_PATH API_PID JWT_SECRET [conns=1000] [idle=10000] [gap_us=2000]
#include <hiredis/hiredis.h>

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "http/auth.h"
#include "http_client.h"
#include "storage/metadata_store.h"

namespace net = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using Clock = std::chrono::steady_clock;
using conveyor::testing::FormFile;

namespace {

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

int64_t RssKiB(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6));
  }
  return -1;
}

struct Shared {
  net::ip::tcp::endpoint ep;
  std::string token;
  std::atomic<int> ready{0};     // handshaken (and, with a job, its status received)
  std::atomic<int> received{0};  // final messages received
  std::atomic<int> failed{0};
  std::vector<int64_t> got_ns;  // per job: receipt time
};

// `job` by reference ("" for none): GCC 12 mishandles non-trivial by-value
// coroutine parameters.
net::awaitable<void> Conn(Shared& s, int index, const std::string& job) {
  websocket::stream<net::ip::tcp::socket> ws(co_await net::this_coro::executor);
  auto [ec] = co_await ws.next_layer().async_connect(s.ep, net::as_tuple(net::use_awaitable));
  if (ec) {
    s.failed++;
    co_return;
  }
  std::string bearer = "Bearer " + s.token;
  ws.set_option(websocket::stream_base::decorator(
      [bearer](websocket::request_type& req) { req.set(beast::http::field::authorization, bearer); }));
  auto [hec] = co_await ws.async_handshake("127.0.0.1", "/api/chat/upload/ws",
                                           net::as_tuple(net::use_awaitable));
  if (hec) {
    s.failed++;
    co_return;
  }
  beast::flat_buffer buf;
  if (!job.empty()) {
    std::string sub = R"({"type":"subscribe","jobIds":[")" + job + R"("]})";
    co_await ws.async_write(net::buffer(sub), net::use_awaitable);
  } else {
    s.ready++;
  }
  for (;;) {
    auto [rec, n] = co_await ws.async_read(buf, net::as_tuple(net::use_awaitable));
    if (rec) co_return;
    const int64_t now = NowNs();
    std::string text = beast::buffers_to_string(buf.data());
    buf.consume(buf.size());
    auto j = nlohmann::json::parse(text, nullptr, false);
    std::string type = j.value("type", "");
    if (type == "status") s.ready++;
    if (type == "failed" || type == "completed") {
      s.got_ns[static_cast<size_t>(index)] = now;
      s.received++;
    }
  }
}

bool WaitFor(const std::atomic<int>& v, int want, std::chrono::seconds limit) {
  auto end = Clock::now() + limit;
  while (v.load() < want && Clock::now() < end) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  return v.load() >= want;
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 6) {
    std::fprintf(stderr, "usage: push API_PORT REDIS_PORT DB_PATH API_PID JWT_SECRET [conns] [idle] [gap_us]\n");
    return 2;
  }
  const int port = std::atoi(argv[1]);
  const int redis_port = std::atoi(argv[2]);
  const std::string db = argv[3];
  const int api_pid = std::atoi(argv[4]);
  const std::string secret = argv[5];
  const int conns = argc > 6 ? std::atoi(argv[6]) : 1000;
  const int idle = argc > 7 ? std::atoi(argv[7]) : 10000;
  const int gap_us = argc > 8 ? std::atoi(argv[8]) : 2000;

  Shared s;
  s.ep = net::ip::tcp::endpoint(net::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port));
  s.token = *conveyor::http::MintToken(secret, "bench", std::time(nullptr), 3600);

  // 1. Jobs, one WebSocket each.
  std::vector<std::string> jobs;
  for (int i = 0; i < conns; ++i) {
    auto r = conveyor::testing::Upload(port, s.token, "bench",
                                       FormFile{"file", "a.txt", "text/plain", "push bench\n"});
    if (r.status != 202) {
      std::fprintf(stderr, "upload %d: %d %s\n", i, r.status, r.body.c_str());
      return 1;
    }
    jobs.push_back(nlohmann::json::parse(r.body)["data"]["jobId"]);
  }
  s.got_ns.assign(jobs.size(), 0);
  net::io_context ioc(1);
  auto guard = net::make_work_guard(ioc);
  std::thread io([&] { ioc.run(); });
  for (int i = 0; i < conns; ++i) {
    net::co_spawn(ioc, Conn(s, i, jobs[static_cast<size_t>(i)]), net::detached);
  }
  if (!WaitFor(s.ready, conns, std::chrono::seconds(120))) {
    std::fprintf(stderr, "only %d of %d subscribed (%d failed)\n", s.ready.load(), conns,
                 s.failed.load());
    return 1;
  }
  auto store = conveyor::storage::OpenMetadataStore("sqlite://" + db, false);
  if (!store.ok()) {
    std::fprintf(stderr, "store: %s\n", store.status().ToString().c_str());
    return 1;
  }
  redisContext* redis = redisConnect("127.0.0.1", redis_port);
  if (!redis || redis->err) return 1;
  std::vector<int64_t> sent_ns(jobs.size(), 0);
  for (size_t i = 0; i < jobs.size(); ++i) {
    (void)(*store)->MarkFailed(jobs[i], "push bench");
    sent_ns[i] = NowNs();
    auto* reply = static_cast<redisReply*>(
        redisCommand(redis, "XADD bull:file-upload:events * event failed jobId %s failedReason %s prev active",
                     jobs[i].c_str(), "push bench"));
    if (reply) freeReplyObject(reply);
    std::this_thread::sleep_for(std::chrono::microseconds(gap_us));
  }
  WaitFor(s.received, conns, std::chrono::seconds(30));
  std::vector<double> ms;
  for (size_t i = 0; i < jobs.size(); ++i) {
    if (s.got_ns[i] > 0) ms.push_back(static_cast<double>(s.got_ns[i] - sent_ns[i]) / 1e6);
  }
  std::printf("push latency: %d WebSocket connections, %zu of %d final events received, "
              "event->client p50 %.2f ms p99 %.2f ms max %.2f ms (events %d us apart)\n",
              conns, ms.size(), conns, Percentile(ms, 0.5), Percentile(ms, 0.99),
              Percentile(ms, 1.0), gap_us);
  redisFree(redis);

  // 2. Idle connections.
  ioc.stop();
  io.join();
  // (the latency phase's sockets close with the io_context)
  std::this_thread::sleep_for(std::chrono::seconds(2));  // let the API drop them
  const int64_t before = RssKiB(api_pid);
  net::io_context ioc2(1);
  auto guard2 = net::make_work_guard(ioc2);
  std::thread io2([&] { ioc2.run(); });
  s.ready = 0;
  s.failed = 0;
  static const std::string kNoJob;
  for (int i = 0; i < idle; ++i) net::co_spawn(ioc2, Conn(s, i, kNoJob), net::detached);
  bool all = WaitFor(s.ready, idle, std::chrono::seconds(120));
  std::this_thread::sleep_for(std::chrono::seconds(1));
  const int64_t after = RssKiB(api_pid);
  std::printf("push memory: %d idle WebSocket connections open (%s, %d failed): API RSS %.1f MiB "
              "(%.1f MiB before them, %.2f KiB per connection)\n",
              s.ready.load(), all ? "all" : "not all", s.failed.load(), after / 1024.0,
              before / 1024.0, idle > 0 ? static_cast<double>(after - before) / idle : 0.0);
  ioc2.stop();
  io2.join();
  return 0;
}
