#include "queue/internal/async_redis.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <algorithm>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <deque>
#include <future>
#include <string>
#include <string_view>
#include <thread>
#include <utility>

namespace conveyor::queue::internal {
namespace {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

// The Asio adapter: hiredis's event hooks on a stream_descriptor that shares
// the context's socket (hiredis closes it; the descriptor only waits on it).
// Each wait is one-shot and re-armed after its handler while hiredis still
// wants the event. Writes on a connected socket skip the wait: the socket is
// nearly always writable, so the write is posted to run after the handlers
// already queued (whose commands then leave in the same write), and only a
// write that leaves data behind waits for writability. The object keeps itself alive until hiredis calls
// cleanup (the context is being freed); waits still pending then hold a
// reference, see `dead_`, and do nothing.
class AsioEvents : public std::enable_shared_from_this<AsioEvents> {
 public:
  AsioEvents(redisAsyncContext* ac, asio::io_context& io) : ac_(ac), sd_(io, ac->c.fd) {}

  static void Attach(redisAsyncContext* ac, asio::io_context& io) {
    auto e = std::make_shared<AsioEvents>(ac, io);
    e->self_ = e;
    ac->ev.data = e.get();
    ac->ev.addRead = [](void* p) { static_cast<AsioEvents*>(p)->Want(&AsioEvents::want_read_); };
    ac->ev.delRead = [](void* p) { static_cast<AsioEvents*>(p)->want_read_ = false; };
    ac->ev.addWrite = [](void* p) { static_cast<AsioEvents*>(p)->WantWrite(); };
    ac->ev.delWrite = [](void* p) { static_cast<AsioEvents*>(p)->want_write_ = false; };
    ac->ev.cleanup = [](void* p) { static_cast<AsioEvents*>(p)->Cleanup(); };
    // The connect in progress completes on writability, replies on readability.
    e->WantWrite();
    e->Want(&AsioEvents::want_read_);
  }

 private:
  void WantWrite() {
    want_write_ = true;
    if (in_write_) return;  // the write under way decides what follows
    if (!(ac_->c.flags & REDIS_CONNECTED)) {
      Arm(false);  // the connect completes on writability
      return;
    }
    if (write_posted_ || dead_) return;
    write_posted_ = true;
    asio::post(sd_.get_executor(), [self = shared_from_this()] {
      self->write_posted_ = false;
      if (self->dead_ || !self->want_write_) return;
      self->Write();
      self->Arm(false);  // data left behind: wait until the socket drains
    });
  }

  void Write() {
    in_write_ = true;
    redisAsyncHandleWrite(ac_);
    in_write_ = false;
  }

  void Want(bool AsioEvents::*flag) {
    this->*flag = true;
    Arm(flag == &AsioEvents::want_read_);
  }

  void Arm(bool read) {
    bool& armed = read ? read_armed_ : write_armed_;
    bool want = read ? want_read_ : want_write_;
    if (dead_ || !want || armed) return;
    armed = true;
    sd_.async_wait(read ? asio::posix::stream_descriptor::wait_read
                        : asio::posix::stream_descriptor::wait_write,
                   [self = shared_from_this(), read](const boost::system::error_code& ec) {
                     (read ? self->read_armed_ : self->write_armed_) = false;
                     if (ec || self->dead_) return;
                     if (read && self->want_read_) redisAsyncHandleRead(self->ac_);
                     if (!read && self->want_write_) self->Write();
                     // The handler may have freed the context (cleanup: dead_).
                     self->Arm(read);
                   });
  }

  void Cleanup() {
    std::shared_ptr<AsioEvents> keep = std::move(self_);
    dead_ = true;
    boost::system::error_code ignored;
    sd_.cancel(ignored);
    (void)sd_.release();  // hiredis closes the socket itself
  }

  redisAsyncContext* const ac_;
  asio::posix::stream_descriptor sd_;
  std::shared_ptr<AsioEvents> self_;
  bool want_read_ = false, want_write_ = false;
  bool read_armed_ = false, write_armed_ = false;
  bool write_posted_ = false, in_write_ = false;
  bool dead_ = false;
};

// Replies are built by hiredis's reader straight into RedisReply trees (its
// object functions, below), so a reply is allocated once, not once by hiredis
// and again by a copy. A root is a ReplyRoot; every other value lives in its
// parent's `elements`, sized when the array is created, and is never moved
// until the callback takes the root's value. hiredis frees only roots
// (freeObject), which frees the whole tree.
//
// `head` mirrors what hiredis itself reads of a root that has no callback (an
// error the server sends on its own before closing: type and str), so it
// must stay the first member.
struct ReplyRoot {
  redisReply head{};
  RedisReply value;
};

RedisReply* SlotFor(const redisReadTask* task, ReplyRoot** root) {
  if (task->parent == nullptr) {
    *root = new ReplyRoot;
    return &(*root)->value;
  }
  *root = nullptr;
  // The parent is an array: a root's value, or an element of one.
  void* parent = task->parent->obj;
  RedisReply* array = task->parent->parent == nullptr ? &static_cast<ReplyRoot*>(parent)->value
                                                      : static_cast<RedisReply*>(parent);
  return &array->elements[static_cast<size_t>(task->idx)];
}

void* Placed(ReplyRoot* root, RedisReply* slot) {
  return root != nullptr ? static_cast<void*>(root) : static_cast<void*>(slot);
}

void* CreateString(const redisReadTask* task, char* str, size_t len) {
  ReplyRoot* root;
  RedisReply* r = SlotFor(task, &root);
  r->type = task->type == REDIS_REPLY_ERROR    ? RedisReply::Type::kError
            : task->type == REDIS_REPLY_STATUS ? RedisReply::Type::kStatus
                                               : RedisReply::Type::kString;
  r->str.assign(str, len);
  if (root != nullptr) {
    root->head.type = task->type;
    root->head.str = root->value.str.data();
    root->head.len = root->value.str.size();
  }
  return Placed(root, r);
}

void* CreateArray(const redisReadTask* task, int elements) {
  ReplyRoot* root;
  RedisReply* r = SlotFor(task, &root);
  r->type = RedisReply::Type::kArray;
  r->elements.resize(static_cast<size_t>(std::max(elements, 0)));
  if (root != nullptr) root->head.type = REDIS_REPLY_ARRAY;
  return Placed(root, r);
}

void* CreateInteger(const redisReadTask* task, long long value) {
  ReplyRoot* root;
  RedisReply* r = SlotFor(task, &root);
  r->type = RedisReply::Type::kInteger;
  r->integer = value;
  if (root != nullptr) root->head.type = REDIS_REPLY_INTEGER;
  return Placed(root, r);
}

void* CreateNil(const redisReadTask* task) {
  ReplyRoot* root;
  RedisReply* r = SlotFor(task, &root);
  r->type = RedisReply::Type::kNil;
  if (root != nullptr) root->head.type = REDIS_REPLY_NIL;
  return Placed(root, r);
}

void FreeRoot(void* root) { delete static_cast<ReplyRoot*>(root); }

redisReplyObjectFunctions kReplyFunctions = {CreateString, CreateArray, CreateInteger, CreateNil,
                                             FreeRoot};

}  // namespace

class AsyncRedis::Impl {
 public:
  explicit Impl(RedisOptions options)
      : options_(std::move(options)),
        resolver_(MasterResolver::For(options_)),
        endpoint_{options_.host, options_.port},
        timer_(io_),
        work_(asio::make_work_guard(io_)) {
    thread_ = std::thread([this] { io_.run(); });
  }

  ~Impl() {
    asio::post(io_, [this] {
      timer_.cancel();
      Drop();
      work_.reset();
    });
    thread_.join();
  }

  void EvalAsync(std::vector<EvalCommand> calls, Done done) {
    // Built here, so the I/O thread does no more than send it.
    auto batch = std::make_shared<Batch>();
    batch->replies.assign(calls.size(), Result<RedisReply>(Unavailable("")));
    batch->calls = std::move(calls);
    batch->left = batch->calls.size();
    batch->done = std::move(done);
    asio::post(io_, [this, batch = std::move(batch)]() mutable { SendBatch(std::move(batch)); });
  }

 private:
  // One socket's life. Replies arrive in the order the commands were sent,
  // so the deadline of the oldest unanswered command is at the front.
  struct Conn {
    redisAsyncContext* ac = nullptr;
    RedisAddress endpoint;  // where it connects
    std::deque<Clock::time_point> deadlines;
    Status broken;  // set when setup was refused: every reply is this error
    bool lost = false;  // the socket is gone or going
  };

  // A command's completion, the privdata of its hiredis callback.
  struct Pending {
    Impl* impl;
    std::shared_ptr<Conn> conn;
    std::function<void(Result<RedisReply>)> fn;
  };

  // All calls of one EvalAsync.
  struct Batch {
    std::vector<EvalCommand> calls;
    Replies replies;
    size_t left = 0;
    Done done;

    void Finish(size_t i, Result<RedisReply> r) {
      replies[i] = std::move(r);
      if (--left == 0) done(std::move(replies));
    }
  };

  // One script call's completion, the privdata of its hiredis callback.
  struct ScriptPending {
    Impl* impl;
    std::shared_ptr<Conn> conn;
    std::shared_ptr<Batch> batch;
    size_t index;
    bool as_eval = false;  // resent as EVAL after NOSCRIPT
  };

  std::string Where() const { return resolver_->Describe(endpoint_); }

  void SendBatch(std::shared_ptr<Batch> batch) {
    const size_t n = batch->calls.size();
    if (n == 0) {
      batch->done({});
      return;
    }
    if (current_ && resolver_->Moved(current_->endpoint, &generation_)) {
      // The sentinels named another master: its calls still waiting fail
      // (kUnavailable), these go to the new one.
      last_error_ = Unavailable(Where() + " is no longer the master");
      Drop();
    }
    std::shared_ptr<Conn> conn = Ensure();
    for (size_t i = 0; i < n; ++i) {
      if (!conn) {
        batch->Finish(i, Status(last_error_));
        continue;
      }
      SendScript(new ScriptPending{this, conn, batch, i});
    }
  }

  // EVALSHA, or EVAL after NOSCRIPT (which also loads the script).
  void SendScript(ScriptPending* raw) {
    std::unique_ptr<ScriptPending> p(raw);
    EvalCommand& call = p->batch->calls[p->index];
    std::string eval;
    std::string_view bytes;
    if (p->as_eval) {
      eval = call.Eval();
      bytes = eval;
    } else {
      bytes = call.Evalsha();
    }
    Conn& conn = *p->conn;
    if (conn.lost || redisAsyncFormattedCommand(conn.ac, &Impl::OnScriptReply, p.get(),
                                                bytes.data(), bytes.size()) != REDIS_OK) {
      p->batch->Finish(p->index, Unavailable(Where() + " script " + call.script().name +
                                             " not sent: connection closing"));
      return;
    }
    (void)p.release();  // hiredis hands it back to OnScriptReply
    Sent(conn);
  }

  static void OnScriptReply(redisAsyncContext* ac, void* raw, void* privdata) {
    std::unique_ptr<ScriptPending> p(static_cast<ScriptPending*>(privdata));
    Result<RedisReply> r = p->impl->TakeReply(p->conn, ac, raw);
    if (r && r->is_error() && !p->as_eval && r->str.rfind("NOSCRIPT", 0) == 0 &&
        !p->conn->lost) {
      p->as_eval = true;
      p->impl->SendScript(p.release());
      return;
    }
    const EvalCommand& call = p->batch->calls[p->index];
    if (r && r->is_error()) {
      r = Internal("script " + call.script().name + " failed: " + r->str);
    }
    p->batch->Finish(p->index, std::move(r));
  }

  // Appends one command to the connection's output; `fn` gets its reply.
  void Send(const std::shared_ptr<Conn>& conn, const std::vector<std::string>& argv,
            std::function<void(Result<RedisReply>)> fn) {
    std::vector<const char*> args;
    std::vector<size_t> lens;
    args.reserve(argv.size());
    lens.reserve(argv.size());
    for (const std::string& a : argv) {
      args.push_back(a.data());
      lens.push_back(a.size());
    }
    auto* p = new Pending{this, conn, std::move(fn)};
    if (conn->lost || redisAsyncCommandArgv(conn->ac, &Impl::OnReply, p,
                                            static_cast<int>(args.size()), args.data(),
                                            lens.data()) != REDIS_OK) {
      std::unique_ptr<Pending> owned(p);
      owned->fn(Unavailable(Where() + " " + argv[0] + " failed: connection closing"));
      return;
    }
    Sent(*conn);
  }

  // A command is on its way: its reply is due within the command timeout.
  void Sent(Conn& conn) {
    const bool connecting = !(conn.ac->c.flags & REDIS_CONNECTED);
    conn.deadlines.push_back(
        Clock::now() + std::chrono::milliseconds(options_.command_timeout_ms +
                                                 (connecting ? options_.connect_timeout_ms : 0)));
    ArmTimer();
  }

  static void OnReply(redisAsyncContext* ac, void* raw, void* privdata) {
    std::unique_ptr<Pending> p(static_cast<Pending*>(privdata));
    p->fn(p->impl->TakeReply(p->conn, ac, raw));
  }

  // A reply (nullptr: the connection is gone) as a result. A failover error
  // ends the connection: every reply behind this one fails too.
  Result<RedisReply> TakeReply(const std::shared_ptr<Conn>& conn, redisAsyncContext* ac,
                               void* raw) {
    if (!conn->deadlines.empty()) conn->deadlines.pop_front();
    if (!raw) {
      std::string detail = ac->errstr ? std::string(": ") + ac->errstr : "";
      return Unavailable(Where() + " connection lost" + detail);
    }
    if (!conn->broken.ok()) return conn->broken;
    RedisReply reply = std::move(static_cast<ReplyRoot*>(raw)->value);
    if (reply.is_error() && resolver_->follows_sentinels() && IsFailoverError(reply.str)) {
      Status why = Unavailable(Where() + " cannot take the queue's commands now: " + reply.str);
      Abandon(conn, why);
      return why;
    }
    return reply;
  }

  // The live connection, or a new one; nullptr inside the backoff window or
  // when the connection cannot even be started (last_error_ says why).
  // With sentinels, asking them (on a first connection or after a failure)
  // blocks this thread for a moment: no call could be sent meanwhile anyway.
  std::shared_ptr<Conn> Ensure() {
    if (current_) return current_;
    if (!backoff_.TryStart(Clock::now())) {
      last_error_ = Unavailable(Where() + " unreachable; next reconnect attempt pending");
      return nullptr;
    }
    // Before asking: a change after the answer then shows in Moved().
    generation_ = resolver_->generation();
    auto master = resolver_->Master();
    if (!master) {
      last_error_ = master.status();
      return nullptr;
    }
    endpoint_ = *master;

    redisAsyncContext* ac = redisAsyncConnect(endpoint_.host.c_str(), endpoint_.port);
    if (!ac) {
      last_error_ = Unavailable("redis: out of memory creating a connection");
      return nullptr;
    }
    if (ac->err) {
      last_error_ = Unavailable(Where() + " connect failed: " + ac->errstr);
      redisAsyncFree(ac);
      resolver_->Invalidate(endpoint_);
      return nullptr;
    }
    ac->c.reader->fn = &kReplyFunctions;
    auto conn = std::make_shared<Conn>();
    conn->ac = ac;
    conn->endpoint = endpoint_;
    ac->data = this;
    AsioEvents::Attach(ac, io_);
    redisAsyncSetConnectCallback(ac, &Impl::OnConnect);
    redisAsyncSetDisconnectCallback(ac, &Impl::OnDisconnect);
    current_ = conn;
    Setup(conn);
    return conn;
  }

  // Gives up on `conn` (a refusal in setup, a node that is no master): the
  // replies behind become `why`, the socket closes once the replies already
  // sent are in, and the next connection asks the sentinels again.
  void Abandon(const std::shared_ptr<Conn>& conn, const Status& why) {
    if (!conn->broken.ok()) return;
    conn->broken = why;
    last_error_ = why;
    resolver_->Invalidate(conn->endpoint);
    if (!conn->lost) {
      conn->lost = true;
      redisAsyncDisconnect(conn->ac);
    }
    if (current_ == conn) current_ = nullptr;
  }

  // AUTH, ROLE (with sentinels), CLIENT SETNAME, SCRIPT LOAD of every script:
  // sent ahead of the first call, in the same write. A refusal breaks the
  // connection: the replies behind it become that error and the socket is
  // closed.
  void Setup(const std::shared_ptr<Conn>& conn) {
    auto refuse_on_error = [this, conn](std::string what) {
      return [this, conn, what = std::move(what)](Result<RedisReply> r) {
        if (!r || !r->is_error()) return;
        Abandon(conn, Unavailable(Where() + " " + what + ": " + r->str));
      };
    };
    if (!options_.password.empty()) {
      Send(conn, {"AUTH", options_.password}, refuse_on_error("AUTH refused"));
    }
    if (resolver_->follows_sentinels()) {
      // What the sentinels said may already be stale: a demoted master or a
      // replica not promoted yet takes no writes.
      Send(conn, {"ROLE"}, [this, conn](Result<RedisReply> r) {
        if (!r) return;
        if (Status s = MasterResolver::CheckRole(*r, conn->endpoint); !s.ok()) Abandon(conn, s);
      });
    }
    if (!options_.client_name.empty()) {
      Send(conn, {"CLIENT", "SETNAME", options_.client_name}, [](Result<RedisReply>) {});
    }
    const auto& scripts = EmbeddedScripts();
    for (size_t i = 0; i < scripts.size(); ++i) {
      const Script& s = GetScript(scripts[i].name);
      auto on_error = refuse_on_error("refused script " + s.name);
      if (i + 1 < scripts.size()) {
        Send(conn, {"SCRIPT", "LOAD", s.text}, std::move(on_error));
        continue;
      }
      // The last setup reply: the connection works, the backoff starts over.
      Send(conn, {"SCRIPT", "LOAD", s.text},
           [this, conn, on_error = std::move(on_error)](Result<RedisReply> r) {
             on_error(r);
             if (r && conn->broken.ok()) backoff_.Succeeded();
           });
    }
  }

  static void OnConnect(const redisAsyncContext* ac, int status) {
    if (status == REDIS_OK) return;
    // hiredis frees the context next (its callbacks get no reply).
    auto* self = static_cast<Impl*>(ac->data);
    self->Forget(ac, Unavailable(self->Where() + " connect failed: " +
                                 (ac->errstr ? ac->errstr : "?")));
  }

  static void OnDisconnect(const redisAsyncContext* ac, int status) {
    auto* self = static_cast<Impl*>(ac->data);
    self->Forget(ac, Unavailable(self->Where() + " connection lost: " +
                                 (ac->errstr ? ac->errstr : "closed")));
  }

  // hiredis is freeing `ac`: it is no longer the live connection.
  void Forget(const redisAsyncContext* ac, Status why) {
    if (current_ && current_->ac == ac) {
      current_->lost = true;
      resolver_->Invalidate(current_->endpoint);
      current_ = nullptr;
      last_error_ = std::move(why);  // else Drop() or a refusal already said why
    }
  }

  // Frees the live connection now (timeout, shutdown): its waiting calls
  // fail with kUnavailable. Never called from inside a hiredis callback.
  void Drop() {
    if (!current_) return;
    std::shared_ptr<Conn> conn = std::move(current_);
    conn->lost = true;
    resolver_->Invalidate(conn->endpoint);
    redisAsyncFree(conn->ac);
  }

  // One timer watches the oldest unanswered command of the live connection.
  // It is moved earlier when that deadline is (a command sent once the
  // slower setup calls are answered); a wait it replaces ends aborted.
  void ArmTimer() {
    if (!current_ || current_->deadlines.empty()) return;
    const Clock::time_point at = current_->deadlines.front();
    if (timer_armed_ && timer_at_ <= at) return;
    timer_armed_ = true;
    timer_at_ = at;
    timer_.expires_at(at);
    timer_.async_wait([this](const boost::system::error_code& ec) {
      if (ec) return;  // replaced by an earlier deadline, or shutting down
      timer_armed_ = false;
      if (current_ && !current_->deadlines.empty() &&
          current_->deadlines.front() <= Clock::now()) {
        last_error_ = Unavailable(Where() + " timed out");
        Drop();
        return;
      }
      ArmTimer();
    });
  }

  const RedisOptions options_;
  const std::shared_ptr<MasterResolver> resolver_;
  RedisAddress endpoint_;  // of the live connection, or the last one tried (I/O thread)
  uint64_t generation_ = 0;  // the resolver's, seen when it connected (Moved)
  asio::io_context io_;
  asio::steady_timer timer_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::thread thread_;

  // Owned by the I/O thread.
  std::shared_ptr<Conn> current_;
  Status last_error_;
  bool timer_armed_ = false;
  Clock::time_point timer_at_{};
  ReconnectBackoff backoff_;
};

AsyncRedis::AsyncRedis(RedisOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}

AsyncRedis::~AsyncRedis() = default;

void AsyncRedis::EvalAsync(std::vector<EvalCommand> calls, Done done) {
  impl_->EvalAsync(std::move(calls), std::move(done));
}

AsyncRedis::Replies AsyncRedis::EvalPipeline(std::vector<EvalCommand> calls) {
  std::promise<Replies> promise;
  std::future<Replies> replies = promise.get_future();
  EvalAsync(std::move(calls), [&promise](Replies r) { promise.set_value(std::move(r)); });
  return replies.get();
}

Result<RedisReply> AsyncRedis::Eval(EvalCommand call) {
  std::vector<EvalCommand> calls;
  calls.push_back(std::move(call));
  return std::move(EvalPipeline(std::move(calls))[0]);
}

}  // namespace conveyor::queue::internal
