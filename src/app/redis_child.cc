#include "app/redis_child.h"

#include "core/files.h"
#include "core/ids.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sys/stat.h>

#include <chrono>
#include <fstream>
#include <cstring>
#include <filesystem>
#include <string_view>
#include <thread>
#include <vector>

extern char** environ;

namespace conveyor::app {
namespace {

constexpr int kStartTimeoutMs = 20000;  // redis-server must answer PING within this
constexpr int kStopTimeoutMs = 10000;   // then SIGKILL
constexpr int kPollMs = 20;

int FreeLoopbackPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

// AUTH then PING over a fresh connection; true on "+PONG".
bool Pings(int port, const std::string& password) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = false;
  timeval tv{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  const std::string command = "AUTH " + password + "\r\nPING\r\n";
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::write(fd, command.data(), command.size()) == static_cast<ssize_t>(command.size())) {
    std::string got;
    char buf[64];
    while (got.find("+PONG") == std::string::npos && got.find("-") == std::string::npos) {
      ssize_t n = ::read(fd, buf, sizeof buf);
      if (n <= 0) break;
      got.append(buf, static_cast<size_t>(n));
    }
    ok = got.find("+PONG") != std::string::npos;
  }
  ::close(fd);
  return ok;
}

bool Exited(pid_t pid) {
  int st = 0;
  return ::waitpid(pid, &st, WNOHANG) == pid;
}

}  // namespace

Result<RedisChild> RedisChild::Start(const std::string& dir) {
  // The directory holds the append-only file (every job's data) and the
  // configuration with the password: the service's account only.
  if (Status s = CreatePrivateDirs(dir); !s.ok()) return s;
  ::chmod(dir.c_str(), 0700);
  int port = FreeLoopbackPort();
  if (port <= 0) return Unavailable("no free loopback port for redis-server");
  // A fresh password per run: another local account that finds the port
  // (or takes it first) cannot read or write the queue. It travels in a
  // 0600 configuration file, not argv (which every local user can read).
  const std::string password = NewUuid() + NewUuid();
  const std::string conf = dir + "/redis.conf";
  {
    ::unlink(conf.c_str());
    if (Status s = CreatePrivateFile(conf); !s.ok()) return s;
    std::ofstream out(conf, std::ios::trunc);
    out << "port " << port << "\nbind 127.0.0.1\nprotected-mode yes\n"
        << "requirepass " << password << "\n"
        << "dir " << dir << "\nappendonly yes\nappendfsync everysec\nsave \"\"\n"
        << "daemonize no\nlogfile redis.log\n";
    if (!out) return Unavailable("cannot write " + conf);
  }
  std::vector<std::string> args = {"redis-server", conf};
  std::vector<char*> argv;
  for (auto& s : args) argv.push_back(s.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  // The child must not inherit our blocked signal mask, or SIGTERM would not stop it.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  pid_t pid = -1;
  int rc = posix_spawnp(&pid, argv[0], &fa, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    return Unavailable(std::string("cannot start redis-server (apt-get install redis-server): ") +
                       std::strerror(rc));
  }
  RedisChild child(pid, port, password);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kStartTimeoutMs);
  while (!Pings(port, password)) {
    if (Exited(pid)) {
      child.pid_ = -1;
      return Unavailable("redis-server exited at start; see " + dir + "/redis.log");
    }
    if (std::chrono::steady_clock::now() > deadline) {
      return Unavailable("redis-server did not answer PING in time; see " + dir + "/redis.log");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(kPollMs));
  }
  return child;
}

RedisChild::RedisChild(RedisChild&& o) noexcept
    : pid_(o.pid_), port_(o.port_), password_(std::move(o.password_)) {
  o.pid_ = -1;
}

RedisChild::~RedisChild() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGTERM);  // redis-server flushes the AOF on SIGTERM
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kStopTimeoutMs);
  while (!Exited(pid_)) {
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid_, SIGKILL);
      int st = 0;
      ::waitpid(pid_, &st, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(kPollMs));
  }
}

}  // namespace conveyor::app
