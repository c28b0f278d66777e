// File: app/redis_child.h
//
// The redis-server `conveyor dev` starts for itself when REDIS_HOST is unset:
// a child process on a free loopback port, persisting to an append-only file
// (appendonly yes, appendfsync everysec) under the given directory, stopped
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

 private:
  RedisChild(pid_t pid, int port) : pid_(pid), port_(port) {}
  pid_t pid_ = -1;
  int port_ = 0;
};

}  // namespace conveyor::app
