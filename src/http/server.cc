// The listener and the server's lifecycle: Start (bind), Run (serve on
// `threads` threads), Shutdown (stop accepting, drain, cancel, return).
#include "http/server.h"

#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <fcntl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/beast/core/tcp_stream.hpp>
#include <algorithm>
#include <chrono>
#include <string_view>
#include <thread>
#include <vector>

#include "http/internal/server_context.h"

namespace conveyor::http {

namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {
// After the grace period, cancelled sessions get this long to unwind (their
// pool tasks finish, temp files are deleted) before the loop is stopped anyway.
constexpr auto kCancelDeadline = std::chrono::seconds(5);

// Descriptors kept free of connections when max_connections is fitted under
// RLIMIT_NOFILE: the database, Redis, blob files, log, the reserve.
constexpr int kSpareDescriptors = 128;
// A refused connection gets its 503, then up to this long to close its side
// (a lingering close, so it reads the 503 rather than a reset); refusals
// beyond kMaxRefusing at once are closed right after the 503 is written.
constexpr auto kRefuseLinger = std::chrono::seconds(1);
constexpr int kMaxRefusing = 64;
// Accept errors are logged at most once per this interval.
constexpr auto kAcceptLogInterval = std::chrono::seconds(10);

constexpr std::string_view kRefusal =
    "HTTP/1.1 503 Service Unavailable\r\nServer: conveyor\r\n"
    "Content-Type: application/json\r\nRetry-After: 1\r\nConnection: close\r\n"
    "Content-Length: 103\r\n\r\n"
    R"({"success":false,"error":{"code":"too_many_connections","message":"too many connections, retry later"}})";
static_assert(kRefusal.size() - kRefusal.find("\r\n\r\n") - 4 == 103);

// Raises the soft RLIMIT_NOFILE to the hard limit; returns the soft limit in
// force afterwards (-1 if unknown).
int64_t RaiseDescriptorLimit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return -1;
  if (rl.rlim_cur < rl.rlim_max) {
    rlimit raised = rl;
    raised.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) {
      spdlog::info("http: raised the open-files limit from {} to {}",
                   static_cast<int64_t>(rl.rlim_cur), static_cast<int64_t>(rl.rlim_max));
      rl = raised;
    }
  }
  return rl.rlim_cur == RLIM_INFINITY ? std::numeric_limits<int64_t>::max()
                                      : static_cast<int64_t>(rl.rlim_cur);
}

// A refused connection: 503, half-close, a short lingering read, close.
struct Refusal {
  explicit Refusal(net::ip::tcp::socket s) : stream(std::move(s)) {}
  boost::beast::tcp_stream stream;

  net::awaitable<void> Run() {
    stream.expires_after(kRefuseLinger);
    auto [ec, n] = co_await net::async_write(
        stream, net::buffer(kRefusal.data(), kRefusal.size()), net::as_tuple(net::use_awaitable));
    boost::system::error_code ignored;
    stream.socket().shutdown(net::ip::tcp::socket::shutdown_send, ignored);
    if (ec) co_return;
    char scratch[1024];
    for (;;) {
      auto [rec, got] =
          co_await stream.async_read_some(net::buffer(scratch), net::as_tuple(net::use_awaitable));
      if (rec) break;  // EOF, the linger deadline, or a reset
    }
  }
};
}  // namespace

class Server::Impl {
 public:
  Impl(ServerSettings settings, ServerDeps deps)
      : ctx_(std::move(settings), deps),
        acceptor_(net::make_strand(ctx_.ioc)),
        work_(net::make_work_guard(ctx_.ioc)),
        grace_timer_(ctx_.ioc),
        cancel_timer_(ctx_.ioc) {
    ctx_.on_drained = [this] { net::post(ctx_.ioc, [this] { Finish("all connections closed"); }); };
  }

  ~Impl() {
    if (reserve_fd_ >= 0) ::close(reserve_fd_);
    Shutdown();
    // Without Run() nobody would process the shutdown; stop directly.
    ctx_.ioc.stop();
    // The hub's reader stops before the pool its state reads run on.
    if (ctx_.hub) ctx_.hub->Stop();
    ctx_.pool.join();
    // Uploads waiting for their group commit are committed and answered
    // (the answers post to the stopped io_context and go with it).
    if (ctx_.committer) ctx_.committer->Stop();
    // Sessions still owned by unrun handlers are destroyed with the
    // io_context; they must not post to it then.
    ctx_.on_drained = nullptr;
  }

  Result<int> Start() {
    if (!ctx_.deps.store || !ctx_.deps.blobs || !ctx_.deps.queue) {
      return InvalidArgument("server dependencies (store, blobs, queue) are required");
    }
    if (!ctx_.committer) {
      uploads::GroupCommitOptions commit;
      commit.max_batch_rows = static_cast<size_t>(std::max(1, ctx_.settings.upload_commit_max_rows));
      commit.sync_blob_names = ctx_.settings.upload_fsync;
      ctx_.committer = std::make_unique<uploads::GroupCommitter>(*ctx_.deps.store, *ctx_.deps.queue,
                                                                 *ctx_.deps.blobs, commit);
    }
    if (!ctx_.hub && ctx_.deps.events) {
      EventsHub::Options o;
      o.redis = *ctx_.deps.events;
      ctx_.hub = std::make_unique<EventsHub>(std::move(o), ctx_.deps.store,
                                             [this](std::function<void()> fn) {
                                               net::post(ctx_.pool, std::move(fn));
                                             });
      ctx_.hub->Start();
    }
    boost::system::error_code ec;
    auto address = net::ip::make_address(ctx_.settings.bind_address, ec);
    if (ec) return InvalidArgument("bad bind address " + ctx_.settings.bind_address);
    tcp::endpoint ep(address, static_cast<unsigned short>(ctx_.settings.port));
    acceptor_.open(ep.protocol(), ec);
    if (!ec) acceptor_.set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(ep, ec);
    if (!ec) acceptor_.listen(net::socket_base::max_listen_connections, ec);
    if (ec) {
      return Unavailable("cannot listen on " + ctx_.settings.bind_address + ":" +
                         std::to_string(ctx_.settings.port) + ": " + ec.message());
    }
    int port = acceptor_.local_endpoint().port();
    // Every connection is a descriptor: use all the process may have, keep
    // max_connections below it, and hold one spare for refusing connections
    // when they run out anyway.
    int64_t nofile = RaiseDescriptorLimit();
    if (nofile > 0 && ctx_.max_connections > nofile - kSpareDescriptors) {
      int fitted = static_cast<int>(std::max<int64_t>(1, nofile - kSpareDescriptors));
      spdlog::warn("http: MAX_CONNECTIONS {} does not fit the open-files limit {}; using {}",
                   ctx_.max_connections, nofile, fitted);
      ctx_.max_connections = fitted;
    }
    reserve_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    net::co_spawn(acceptor_.get_executor(), AcceptLoop(), [](std::exception_ptr e) {
      if (!e) return;
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        spdlog::error("accept loop ended by an exception: {}", ex.what());
      }
    });
    spdlog::info("http: listening on {}:{} ({} threads, {} blocking)", ctx_.settings.bind_address,
                 port, ctx_.settings.threads, ctx_.settings.blocking_threads);
    return port;
  }

  void Run() {
    std::vector<std::thread> extra;
    for (int i = 1; i < ctx_.settings.threads; ++i) extra.emplace_back([this] { RunLoop(); });
    RunLoop();
    for (auto& t : extra) t.join();
    spdlog::info("http: stopped");
  }

  void Shutdown() {
    if (ctx_.stopping.exchange(true)) return;
    net::post(ctx_.ioc, [this] {
      spdlog::info("http: shutting down; {} connections open", ctx_.open_sessions.load());
      net::post(acceptor_.get_executor(), [this] {
        boost::system::error_code ec;
        acceptor_.close(ec);
      });
      CloseSessions(ctx_, /*hard=*/false);
      if (ctx_.open_sessions.load() == 0) {
        Finish("no connections");
        return;
      }
      grace_timer_.expires_after(std::chrono::milliseconds(ctx_.settings.shutdown_grace_ms));
      grace_timer_.async_wait([this](boost::system::error_code ec) {
        if (ec) return;
        spdlog::warn("http: grace period over; cancelling {} connections",
                     ctx_.open_sessions.load());
        CloseSessions(ctx_, /*hard=*/true);
        cancel_timer_.expires_after(kCancelDeadline);
        cancel_timer_.async_wait([this](boost::system::error_code ec2) {
          if (!ec2) Finish("cancel deadline passed");
        });
      });
    });
  }

 private:
  void Finish(const char* why) {
    spdlog::info("http: stopping the event loop ({})", why);
    work_.reset();
    ctx_.ioc.stop();
  }

  void RunLoop() {
    for (;;) {
      try {
        ctx_.ioc.run();
        return;
      } catch (const std::exception& e) {
        spdlog::error("http: handler threw: {}", e.what());
      }
    }
  }

  net::awaitable<void> AcceptLoop() {
    for (;;) {
      // A named executor, not a temporary inside the co_await expression
      // (GCC 12 relocates those bitwise; see session.cc SendOut).
      auto strand = net::make_strand(ctx_.ioc);
      auto [ec, socket] =
          co_await acceptor_.async_accept(strand, net::as_tuple(net::use_awaitable));
      if (ec) {
        if (ec == net::error::operation_aborted || !acceptor_.is_open()) co_return;
        LogAcceptError(ec);
        if ((ec == net::error::no_descriptors || ec.value() == ENFILE) && ShedWithReserve()) {
          continue;  // one waiting client answered 503; the backlog shrinks
        }
        // Nothing could be shed: back off instead of spinning.
        net::steady_timer t(co_await net::this_coro::executor, std::chrono::milliseconds(50));
        co_await t.async_wait(net::as_tuple(net::use_awaitable));
        continue;
      }
      if (ctx_.stopping.load()) {
        boost::system::error_code ignored;
        socket.close(ignored);
        continue;
      }
      boost::system::error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);
      auto remote = socket.remote_endpoint(ignored);
      std::string client = ignored ? std::string() : remote.address().to_string();
      tcp::socket conn(std::move(socket));
      Admission a = StartSession(ctx_, conn, std::move(client));
      if (a != Admission::kAdmitted) Refuse(std::move(conn), a);
    }
  }

  // Answers an over-limit connection 503 and closes it (a Refusal).
  void Refuse(tcp::socket socket, Admission why) {
    ctx_.metrics.ConnectionRefused();
    if (ctx_.refusing.fetch_add(1) >= kMaxRefusing) {
      // Too many refusals lingering already: best-effort answer, close now.
      ::send(socket.native_handle(), kRefusal.data(), kRefusal.size(),
             MSG_NOSIGNAL | MSG_DONTWAIT);
      boost::system::error_code ignored;
      socket.shutdown(tcp::socket::shutdown_send, ignored);
      socket.close(ignored);
      ctx_.refusing.fetch_sub(1);
      return;
    }
    (void)why;
    auto refusal = std::make_shared<Refusal>(std::move(socket));
    auto ex = refusal->stream.get_executor();
    net::co_spawn(
        ex, [refusal]() -> net::awaitable<void> { co_await refusal->Run(); },
        [this](std::exception_ptr) { ctx_.refusing.fetch_sub(1); });
  }

  // Out of descriptors: frees the reserve descriptor, accepts one waiting
  // connection with it, answers 503, closes it and takes the reserve back.
  // False when nothing was waiting or the reserve is gone.
  bool ShedWithReserve() {
    if (reserve_fd_ < 0) return false;
    pollfd p{acceptor_.native_handle(), POLLIN, 0};
    if (::poll(&p, 1, 0) <= 0) return false;
    ::close(reserve_fd_);
    int fd = ::accept4(acceptor_.native_handle(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd >= 0) {
      ctx_.metrics.ConnectionRefused();
      ::send(fd, kRefusal.data(), kRefusal.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      ::shutdown(fd, SHUT_WR);
      ::close(fd);
    }
    reserve_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    return fd >= 0;
  }

  // Accept errors come in floods (one per waiting connection): log the first,
  // then a count at most once per kAcceptLogInterval.
  void LogAcceptError(const boost::system::error_code& ec) {
    auto now = std::chrono::steady_clock::now();
    if (now - last_accept_log_ < kAcceptLogInterval) {
      ++accept_errors_unlogged_;
      return;
    }
    if (accept_errors_unlogged_ > 0) {
      spdlog::warn("http: accept failed: {} ({} more since the last report)", ec.message(),
                   accept_errors_unlogged_);
    } else {
      spdlog::warn("http: accept failed: {}", ec.message());
    }
    accept_errors_unlogged_ = 0;
    last_accept_log_ = now;
  }

  ServerContext ctx_;
  tcp::acceptor acceptor_;
  net::executor_work_guard<net::io_context::executor_type> work_;
  net::steady_timer grace_timer_;
  net::steady_timer cancel_timer_;
  int reserve_fd_ = -1;  // /dev/null, closed to accept one connection at EMFILE
  // Accept-loop only (its strand):
  std::chrono::steady_clock::time_point last_accept_log_{};
  int64_t accept_errors_unlogged_ = 0;
};

Server::Server(ServerSettings settings, ServerDeps deps)
    : impl_(std::make_unique<Impl>(std::move(settings), deps)) {}
Server::~Server() = default;
Result<int> Server::Start() { return impl_->Start(); }
void Server::Run() { impl_->Run(); }
void Server::Shutdown() { impl_->Shutdown(); }

}  // namespace conveyor::http
