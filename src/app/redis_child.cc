#include "app/redis_child.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
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

// One inline PING over a fresh connection; true on "+PONG".
bool Pings(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = false;
  timeval tv{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::write(fd, "PING\r\n", 6) == 6) {
    char buf[16] = {};
    ssize_t n = ::read(fd, buf, sizeof buf - 1);
    ok = n >= 5 && std::string_view(buf, 5) == "+PONG";
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
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Unavailable("cannot create " + dir + ": " + ec.message());
  int port = FreeLoopbackPort();
  if (port <= 0) return Unavailable("no free loopback port for redis-server");
  std::vector<std::string> args = {"redis-server", "--port", std::to_string(port), "--bind",
                                   "127.0.0.1",    "--dir",  dir,  "--appendonly", "yes",
                                   "--appendfsync", "everysec", "--save", "", "--daemonize",
                                   "no", "--logfile", "redis.log"};
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
  RedisChild child(pid, port);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kStartTimeoutMs);
  while (!Pings(port)) {
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

RedisChild::RedisChild(RedisChild&& o) noexcept : pid_(o.pid_), port_(o.port_) { o.pid_ = -1; }

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
