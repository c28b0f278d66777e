// File: app/redis_child.h
//
// The redis-server `conveyor dev` starts for itself when REDIS_HOST is unset:
// a child process on a free loopback port with a password generated for the
// run (requirepass, written to a 0600 redis.conf in the 0700 directory),
// persisting to an append-only file (appendonly yes, appendfsync everysec)
// under the given directory, stopped
// (SIGTERM, then SIGKILL after kStopTimeoutMs) when the object is destroyed.
#pragma once

#include <sys/types.h>

#include <string>

#include "core/error.h"

namespace conveyor::app {

class RedisChild {
 public:
  // Starts redis-server (found in PATH) and waits until it answers PING.
  // kUnavailable if it is missing or does not come up in time.
  static Result<RedisChild> Start(const std::string& dir);

  RedisChild(RedisChild&& other) noexcept;
  RedisChild& operator=(RedisChild&&) = delete;
  ~RedisChild();

  int port() const { return port_; }
  // The AUTH password clients must use (REDIS_PASSWORD).
  const std::string& password() const { return password_; }

 private:
  RedisChild(pid_t pid, int port, std::string password)
      : pid_(pid), port_(port), password_(std::move(password)) {}
  pid_t pid_ = -1;
  int port_ = 0;
  std::string password_;
};

}  // namespace conveyor::app
