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
#include <chrono>
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
    Shutdown();
    // Without Run() nobody would process the shutdown; stop directly.
    ctx_.ioc.stop();
    ctx_.pool.join();
    // Sessions still owned by unrun handlers are destroyed with the
    // io_context; they must not post to it then.
    ctx_.on_drained = nullptr;
  }

  Result<int> Start() {
    if (!ctx_.deps.store || !ctx_.deps.blobs || !ctx_.deps.queue) {
      return InvalidArgument("server dependencies (store, blobs, queue) are required");
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
        spdlog::warn("http: accept failed: {}", ec.message());
        // Out of descriptors and the like: back off instead of spinning.
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
      StartSession(ctx_, std::move(socket));
    }
  }

  ServerContext ctx_;
  tcp::acceptor acceptor_;
  net::executor_work_guard<net::io_context::executor_type> work_;
  net::steady_timer grace_timer_;
  net::steady_timer cancel_timer_;
};

Server::Server(ServerSettings settings, ServerDeps deps)
    : impl_(std::make_unique<Impl>(std::move(settings), deps)) {}
Server::~Server() = default;
Result<int> Server::Start() { return impl_->Start(); }
void Server::Run() { impl_->Run(); }
void Server::Shutdown() { impl_->Shutdown(); }

}  // namespace conveyor::http
