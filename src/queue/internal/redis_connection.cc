#include "queue/internal/redis_connection.h"

#include <hiredis/hiredis.h>
#include <sys/time.h>

#include <algorithm>
#include <utility>

namespace conveyor::queue::internal {
namespace {

timeval ToTimeval(int64_t ms) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(ms / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms % 1000) * 1000);
  return tv;
}

}  // namespace

RedisReply ConvertReply(const redisReply* r) {
  RedisReply out;
  switch (r->type) {
    case REDIS_REPLY_STRING:
      out.type = RedisReply::Type::kString;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_STATUS:
      out.type = RedisReply::Type::kStatus;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ERROR:
      out.type = RedisReply::Type::kError;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_INTEGER:
      out.type = RedisReply::Type::kInteger;
      out.integer = r->integer;
      break;
    case REDIS_REPLY_ARRAY:
      out.type = RedisReply::Type::kArray;
      out.elements.reserve(r->elements);
      for (size_t i = 0; i < r->elements; ++i) out.elements.push_back(ConvertReply(r->element[i]));
      break;
    default:
      out.type = RedisReply::Type::kNil;
  }
  return out;
}

RedisConnection::RedisConnection(RedisOptions options)
    : options_(std::move(options)),
      resolver_(MasterResolver::For(options_)),
      endpoint_{options_.host, options_.port} {}

RedisConnection::~RedisConnection() { Disconnect(); }

void RedisConnection::Disconnect() {
  if (ctx_) {
    redisFree(ctx_);
    ctx_ = nullptr;
  }
}

Status RedisConnection::DropWithError(const std::string& what) {
  std::string detail = ctx_ && ctx_->errstr[0] ? std::string(": ") + ctx_->errstr : "";
  Disconnect();
  // Lost, timed out or refused: the next attempt asks the sentinels again.
  resolver_->Invalidate(endpoint_);
  return Unavailable(Where() + " " + what + detail);
}

Result<RedisReply> RedisConnection::CheckFailover(RedisReply reply) {
  if (!reply.is_error() || !resolver_->follows_sentinels() || !IsFailoverError(reply.str)) {
    return reply;
  }
  Disconnect();
  resolver_->Invalidate(endpoint_);
  return Unavailable(Where() + " cannot take the queue's commands now: " + reply.str);
}

void RedisConnection::LeaveIfMoved() {
  if (ctx_ && resolver_->follows_sentinels() && resolver_->Moved(endpoint_, &generation_)) {
    Disconnect();  // the next command connects to the new master
  }
}

Result<RedisReply> RedisConnection::Setup(const std::vector<std::string>& argv, const char* what) {
  auto r = Run(argv, 0);
  if (!r) return r.status();
  if (r->is_error()) {
    std::string err = r->str;
    Disconnect();
    resolver_->Invalidate(endpoint_);
    return Unavailable(Where() + " " + what + ": " + err);
  }
  return r;
}

Result<void> RedisConnection::EnsureConnected() {
  if (ctx_) return {};
  if (!backoff_.TryStart(ReconnectBackoff::Clock::now())) {
    return Unavailable(Where() + " unreachable; next reconnect attempt pending");
  }
  // Before asking: a change after the answer then shows in Moved().
  generation_ = resolver_->generation();
  auto master = resolver_->Master();
  if (!master) return master.status();
  endpoint_ = *master;

  ctx_ = redisConnectWithTimeout(endpoint_.host.c_str(), endpoint_.port,
                                 ToTimeval(options_.connect_timeout_ms));
  if (!ctx_) return Unavailable("redis: out of memory creating a connection");
  if (ctx_->err) return DropWithError("connect failed");
  if (redisSetTimeout(ctx_, ToTimeval(options_.command_timeout_ms)) != REDIS_OK) {
    return DropWithError("setting the timeout failed");
  }
  if (!options_.password.empty()) {
    if (auto r = Setup({"AUTH", options_.password}, "AUTH refused"); !r) return r.status();
  }
  if (resolver_->follows_sentinels()) {
    // What the sentinels said may already be stale: a demoted master or a
    // replica not promoted yet takes no writes.
    auto role = Run({"ROLE"}, 0);
    if (!role) return role.status();
    if (Status s = MasterResolver::CheckRole(*role, endpoint_); !s.ok()) {
      Disconnect();
      resolver_->Invalidate(endpoint_);
      return s;
    }
  }
  if (!options_.client_name.empty()) {
    // A refusal only costs visibility in dashboards.
    if (auto r = Run({"CLIENT", "SETNAME", options_.client_name}, 0); !r) return r.status();
  }
  // Load every script once per connection (so after a failover on the new
  // master too), so EVALSHA normally hits.
  for (const ScriptSource& s : EmbeddedScripts()) {
    const Script& script = GetScript(s.name);
    auto r = Run({"SCRIPT", "LOAD", script.text}, 0);
    if (!r) return r.status();
    if (r->is_error()) {
      std::string err = r->str;
      const bool failover = resolver_->follows_sentinels() && IsFailoverError(err);
      Disconnect();
      if (failover) {
        resolver_->Invalidate(endpoint_);
        return Unavailable(Where() + " cannot load scripts now: " + err);
      }
      return Internal("redis refused script " + script.name + ": " + err);
    }
  }
  backoff_.Succeeded();
  return {};
}

Result<RedisReply> RedisConnection::Run(const std::vector<std::string>& argv,
                                        int64_t extra_timeout_ms) {
  LeaveIfMoved();
  if (!ctx_) {
    if (auto s = EnsureConnected(); !s) return s.status();
  }
  std::vector<const char*> args;
  std::vector<size_t> lens;
  args.reserve(argv.size());
  lens.reserve(argv.size());
  for (const auto& a : argv) {
    args.push_back(a.data());
    lens.push_back(a.size());
  }
  if (extra_timeout_ms > 0) {
    redisSetTimeout(ctx_, ToTimeval(options_.command_timeout_ms + extra_timeout_ms));
  }
  auto* r = static_cast<redisReply*>(
      redisCommandArgv(ctx_, static_cast<int>(args.size()), args.data(), lens.data()));
  if (!r) return DropWithError(argv.empty() ? "command failed" : argv[0] + " failed");
  RedisReply reply = ConvertReply(r);
  freeReplyObject(r);
  if (extra_timeout_ms > 0) redisSetTimeout(ctx_, ToTimeval(options_.command_timeout_ms));
  return CheckFailover(std::move(reply));
}

Result<RedisReply> RedisConnection::Command(const std::vector<std::string>& argv) {
  return Run(argv, 0);
}

Result<RedisReply> RedisConnection::BlockingCommand(const std::vector<std::string>& argv,
                                                    int64_t block_ms) {
  return Run(argv, std::max<int64_t>(block_ms, 1));
}

Result<RedisReply> RedisConnection::Eval(const Script& script,
                                         const std::vector<std::string>& keys,
                                         const std::vector<std::string>& args) {
  std::vector<std::string> argv;
  argv.reserve(3 + keys.size() + args.size());
  argv.push_back("EVALSHA");
  argv.push_back(script.sha1);
  argv.push_back(std::to_string(keys.size()));
  argv.insert(argv.end(), keys.begin(), keys.end());
  argv.insert(argv.end(), args.begin(), args.end());
  auto reply = Command(argv);
  if (reply && reply->is_error() && reply->str.rfind("NOSCRIPT", 0) == 0) {
    // The server lost its script cache (restart, SCRIPT FLUSH): load and retry.
    auto loaded = Command({"SCRIPT", "LOAD", script.text});
    if (!loaded) return loaded.status();
    if (loaded->is_error()) {
      return Internal("redis refused script " + script.name + ": " + loaded->str);
    }
    reply = Command(argv);
  }
  if (reply && reply->is_error()) {
    return Internal("script " + script.name + " failed: " + reply->str);
  }
  return reply;
}

std::vector<Result<RedisReply>> RedisConnection::EvalPipeline(const std::vector<EvalCall>& calls) {
  std::vector<Result<RedisReply>> out;
  out.reserve(calls.size());
  LeaveIfMoved();
  if (auto s = EnsureConnected(); !s) {
    for (size_t i = 0; i < calls.size(); ++i) out.push_back(s.status());
    return out;
  }
  // hiredis copies each command into its output buffer as it is appended,
  // so the argument arrays point straight into `calls`.
  std::vector<const char*> args;
  std::vector<size_t> lens;
  for (const auto& c : calls) {
    const std::string nkeys = std::to_string(c.keys.size());
    args.assign({"EVALSHA", c.script->sha1.data(), nkeys.data()});
    lens.assign({7, c.script->sha1.size(), nkeys.size()});
    for (const std::vector<std::string>* part : {&c.keys, &c.args}) {
      for (const std::string& a : *part) {
        args.push_back(a.data());
        lens.push_back(a.size());
      }
    }
    if (redisAppendCommandArgv(ctx_, static_cast<int>(args.size()), args.data(), lens.data()) !=
        REDIS_OK) {
      Status s = DropWithError("EVALSHA (pipelined) failed");
      out.assign(calls.size(), Result<RedisReply>(s));
      return out;
    }
  }
  std::vector<RedisReply> replies;
  replies.reserve(calls.size());
  Status lost;  // the connection broke before every reply was read
  for (size_t i = 0; i < calls.size(); ++i) {
    void* raw = nullptr;
    if (redisGetReply(ctx_, &raw) != REDIS_OK || !raw) {
      lost = DropWithError("EVALSHA (pipelined) failed");
      break;
    }
    auto* r = static_cast<redisReply*>(raw);
    replies.push_back(ConvertReply(r));
    freeReplyObject(r);
  }
  for (size_t i = 0; i < calls.size(); ++i) {
    if (i >= replies.size()) {
      out.push_back(lost);
      continue;
    }
    RedisReply& reply = replies[i];
    if (reply.is_error() && resolver_->follows_sentinels() && IsFailoverError(reply.str)) {
      // A replica or a demoted master: this connection is done for.
      if (ctx_) {
        Disconnect();
        resolver_->Invalidate(endpoint_);
      }
      out.push_back(Unavailable(Where() + " cannot take the queue's commands now: " + reply.str));
    } else if (reply.is_error() && reply.str.rfind("NOSCRIPT", 0) == 0) {
      out.push_back(Eval(*calls[i].script, calls[i].keys, calls[i].args));
    } else if (reply.is_error()) {
      out.push_back(Internal("script " + calls[i].script->name + " failed: " + reply.str));
    } else {
      out.push_back(std::move(reply));
    }
  }
  return out;
}

}  // namespace conveyor::queue::internal
