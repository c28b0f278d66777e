// Design
// ------
// Worker side. A ForkServerProcess is one server: the control socket, the
// pid, and a keeper thread that posix_spawns the server and then waits for
// it to exit. The spawning thread matters: PR_SET_PDEATHSIG fires when the
// thread that forked the server ends, and RunSandboxed may be called from
// short-lived threads, so the server is started by a thread that lives
// exactly as long as the server does. The keeper waits with WNOWAIT, marks
// the server exited, and only then reaps it: a kill sent while `exited` is
// false (under the mutex) can only reach the server or its zombie, never a
// process that reused its pid.
//
// ForkServer::Spawn sends the request and the child's descriptors in one
// SEQPACKET message and reads the child's pid from the status pipe it made.
// A send that finds the server dead (EPIPE) starts a new server and sends
// once more; a server that dies after taking the request costs that job
// (kUnavailable, which the queue retries).
//
// Server side. One poll() loop over the control socket and a signalfd for
// SIGCHLD: a spawn request forks (the child never returns to the loop), a
// kill request signals a child still in `live`, and SIGCHLD reaps with
// wait4() and writes each child's status and CPU time to its status pipe.
// Children are only ever reaped here, so a pid in `live` is never reused.
#include "worker/fork_server.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <spdlog/spdlog.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <thread>

#include "worker/confine.h"

namespace conveyor::worker::sandbox {
namespace {

using Clock = std::chrono::steady_clock;

// How long the worker waits for the server to report a fork, and for a
// killed child's end, before it deems the server broken and kills it.
constexpr int64_t kServerReplyMs = 10000;
// Descriptors a spawn request carries: status, stdin, stdout, stderr, input.
constexpr size_t kMaxRequestFds = 5;
// Exit status of a child whose server died before the child started.
constexpr int kExitServerGone = 125;

// --- wire format ------------------------------------------------------------

void PutU32(std::string& out, uint32_t v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof v);
}
void PutI64(std::string& out, int64_t v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof v);
}
void PutStr(std::string& out, const std::string& s) {
  PutU32(out, static_cast<uint32_t>(s.size()));
  out += s;
}
void PutList(std::string& out, const std::vector<std::string>& list) {
  PutU32(out, static_cast<uint32_t>(list.size()));
  for (const auto& s : list) PutStr(out, s);
}

class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  bool U32(uint32_t* v) { return Raw(v, sizeof *v); }
  bool I64(int64_t* v) { return Raw(v, sizeof *v); }
  bool Str(std::string* s) {
    uint32_t n = 0;
    if (!U32(&n) || n > in_.size()) return false;
    s->assign(in_.substr(0, n));
    in_.remove_prefix(n);
    return true;
  }
  bool List(std::vector<std::string>* list) {
    uint32_t n = 0;
    // Each entry takes at least its 4-byte length: a count past that is a lie.
    if (!U32(&n) || n > in_.size() / sizeof(uint32_t)) return false;
    list->resize(n);
    for (auto& s : *list) {
      if (!Str(&s)) return false;
    }
    return true;
  }
  bool empty() const { return in_.empty(); }

 private:
  bool Raw(void* v, size_t n) {
    if (in_.size() < n) return false;
    std::memcpy(v, in_.data(), n);
    in_.remove_prefix(n);
    return true;
  }
  std::string_view in_;
};

// Sends `message` with `fds` attached; 0 or the errno.
int SendMessage(int sock, const std::string& message, const std::vector<int>& fds) {
  iovec iov{const_cast<char*>(message.data()), message.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxRequestFds)] = {};
  if (!fds.empty()) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  for (;;) {
    // Blocks while the server's queue is full, up to the socket's
    // SO_SNDTIMEO (then EAGAIN: a server that stopped reading is broken).
    ssize_t n = sendmsg(sock, &msg, MSG_NOSIGNAL);
    if (n >= 0) return 0;
    if (errno != EINTR) return errno;
  }
}

// Writes one record (a short write cannot happen below PIPE_BUF). A reader
// that went away is no error: nobody is waiting for the record.
void WriteRecord(int fd, const StatusRecord& r) {
  while (write(fd, &r, sizeof r) < 0 && errno == EINTR) {
  }
}

}  // namespace

std::string EncodeSpawnRequest(const SpawnRequest& r) {
  std::string out;
  PutI64(out, r.limits.cpu_seconds);
  PutI64(out, r.limits.memory_mb);
  PutI64(out, r.limits.max_open_files);
  PutI64(out, r.limits.uid);
  PutStr(out, r.limits.require);
  PutStr(out, r.limits.skip);
  PutU32(out, r.probe ? 1 : 0);
  PutList(out, r.env);
  PutList(out, r.args);
  return out;
}

Result<SpawnRequest> DecodeSpawnRequest(std::string_view bytes) {
  if (bytes.size() > kMaxSpawnRequestBytes) return InvalidArgument("spawn request too large");
  Reader in(bytes);
  SpawnRequest r;
  uint32_t probe = 0;
  if (!in.I64(&r.limits.cpu_seconds) || !in.I64(&r.limits.memory_mb) ||
      !in.I64(&r.limits.max_open_files) || !in.I64(&r.limits.uid) || !in.Str(&r.limits.require) ||
      !in.Str(&r.limits.skip) || !in.U32(&probe) || probe > 1 || !in.List(&r.env) ||
      !in.List(&r.args) || !in.empty()) {
    return InvalidArgument("malformed spawn request");
  }
  r.probe = probe == 1;
  for (const auto& e : r.env) {
    if (e.find('=') == std::string::npos || e.find('\0') != std::string::npos) {
      return InvalidArgument("spawn request with a malformed environment entry");
    }
  }
  return r;
}

// --- server -----------------------------------------------------------------

namespace {

// The forked child: descriptors, process group, signals, environment; then
// the child's main. Never returns.
[[noreturn]] void BecomeChild(const SpawnRequest& request, const ChildFds& fds, pid_t server,
                              const ChildMain& child_main) {
  (void)setpgid(0, 0);
  (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != server) _exit(kExitServerGone);  // it died before the line above
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) (void)sigaction(sig, &dfl, nullptr);
  sigset_t none;
  sigemptyset(&none);
  (void)sigprocmask(SIG_SETMASK, &none, nullptr);
  // The received descriptors are all above kInputFd (the server keeps 0-3
  // open), so no dup2 below overwrites a source of a later one.
  if (dup2(fds.in, STDIN_FILENO) < 0 || dup2(fds.out, STDOUT_FILENO) < 0 ||
      dup2(fds.err, STDERR_FILENO) < 0) {
    _exit(kExitServerGone);
  }
  if (fds.input >= 0) {
    if (dup2(fds.input, kInputFd) < 0) _exit(kExitServerGone);
  } else {
    (void)close(kInputFd);
  }
  CloseDescriptorsAbove(kInputFd);  // keeps what PrepareConfinement made
  (void)clearenv();
  for (const auto& e : request.env) (void)putenv(const_cast<char*>(e.c_str()));
  const int status = child_main(request);
  // No exit(): its destructors would free the server's preloaded state
  // (libmagic's compiled database), copying every page they touch, for a
  // process about to vanish. Only stdio's buffers need flushing.
  (void)std::fflush(nullptr);
  _exit(status);
}

class Server {
 public:
  Server(int control_fd, const ChildMain& child_main)
      : control_fd_(control_fd), child_main_(child_main) {}

  int Run() {
    (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
    // A status pipe whose reader left must not kill the server. Nor may a
    // shutdown signal sent to the whole service (a terminal's ^C, a
    // supervisor's SIGTERM to the cgroup): the worker's graceful stop lets
    // running jobs finish, and the server goes when the worker does. Its
    // children get default dispositions back (BecomeChild).
    for (int sig : {SIGPIPE, SIGINT, SIGTERM, SIGHUP}) (void)signal(sig, SIG_IGN);
    // Received descriptors must land above kInputFd (see BecomeChild).
    for (int fd = 0; fd <= kInputFd; ++fd) {
      if (fcntl(fd, F_GETFD) < 0) (void)open("/dev/null", O_RDWR);
    }
    PrepareConfinement();
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, nullptr);
    UniqueFd sigfd(signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK));
    if (!sigfd.valid()) return 1;

    std::vector<char> buf(kMaxSpawnRequestBytes + 2);
    for (;;) {
      pollfd fds[2] = {{control_fd_, POLLIN, 0}, {sigfd.get(), POLLIN, 0}};
      if (poll(fds, 2, -1) < 0) {
        if (errno == EINTR) continue;
        break;
      }
      if (fds[1].revents != 0) {
        signalfd_siginfo info;
        while (read(sigfd.get(), &info, sizeof info) > 0) {
        }
        (void)Reap(WNOHANG);
      }
      if (fds[0].revents != 0 && !Receive(buf)) break;
    }
    // The worker is gone: so are its jobs.
    for (const auto& [pid, fd] : live_) KillChild(pid);
    while (!live_.empty() && Reap(0)) {
    }
    return 0;
  }

 private:
  static void KillChild(pid_t pid) {
    (void)kill(-pid, SIGKILL);
    (void)kill(pid, SIGKILL);
  }

  // Reaps ended children (`flags` 0: waits for one), reporting each; false
  // when there is no child left to wait for.
  bool Reap(int flags) {
    for (;;) {
      int status = 0;
      struct rusage usage {};
      pid_t pid = wait4(-1, &status, flags, &usage);
      if (pid < 0 && errno == EINTR) continue;
      if (pid == 0) return true;
      if (pid < 0) return false;
      auto it = live_.find(pid);
      if (it != live_.end()) {
        auto usec = [](const timeval& t) { return int64_t{t.tv_sec} * 1000000 + t.tv_usec; };
        StatusRecord r;
        r.kind = StatusRecord::kExited;
        r.pid = pid;
        r.value = status;
        r.cpu_usec = usec(usage.ru_utime) + usec(usage.ru_stime);
        r.max_rss_kib = static_cast<int32_t>(usage.ru_maxrss);
        WriteRecord(it->second.get(), r);
        live_.erase(it);
      }
      if (flags == 0) return true;
    }
  }

  // One control message; false when the socket is done (EOF or an error).
  bool Receive(std::vector<char>& buf) {
    iovec iov{buf.data(), buf.size()};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxRequestFds)];
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n = recvmsg(control_fd_, &msg, MSG_CMSG_CLOEXEC);
    if (n < 0) return errno == EINTR || errno == EAGAIN;
    if (n == 0) return false;
    std::vector<UniqueFd> fds;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < count; ++i) {
        int fd;
        std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
        fds.emplace_back(fd);
      }
    }
    std::string_view body(buf.data(), static_cast<size_t>(n));
    if ((msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0 || body.empty()) return true;
    if (body[0] == 'K' && body.size() == 1 + sizeof(int32_t) && fds.empty()) {
      int32_t pid;
      std::memcpy(&pid, body.data() + 1, sizeof pid);
      if (live_.count(pid) != 0) KillChild(pid);
      return true;
    }
    if (body[0] == 'S' && (fds.size() == 4 || fds.size() == 5)) Spawn(body.substr(1), fds);
    return true;  // anything else: ignored, its descriptors closed
  }

  void Spawn(std::string_view body, std::vector<UniqueFd>& fds) {
    UniqueFd status = std::move(fds[0]);
    (void)fcntl(status.get(), F_SETFL, O_NONBLOCK);
    auto request = DecodeSpawnRequest(body);
    if (!request) {
      StatusRecord r;
      r.kind = StatusRecord::kFailed;
      r.value = EINVAL;
      WriteRecord(status.get(), r);
      return;
    }
    ChildFds child_fds{fds[1].get(), fds[2].get(), fds[3].get(),
                       fds.size() == 5 ? fds[4].get() : -1};
    const pid_t server = getpid();
    pid_t pid = fork();
    if (pid == 0) BecomeChild(*request, child_fds, server, child_main_);
    StatusRecord r;
    if (pid < 0) {
      r.kind = StatusRecord::kFailed;
      r.value = errno;
      WriteRecord(status.get(), r);
      return;
    }
    LimitFromOutside(pid, request->limits);
    r.kind = StatusRecord::kStarted;
    r.pid = pid;
    WriteRecord(status.get(), r);
    live_.emplace(pid, std::move(status));
  }

  const int control_fd_;
  const ChildMain& child_main_;
  std::map<pid_t, UniqueFd> live_;  // unreaped children -> their status pipes
};

}  // namespace

int RunForkServer(int control_fd, const ChildMain& child_main) {
  return Server(control_fd, child_main).Run();
}

// --- worker side --------------------------------------------------------------

struct ForkServerProcess {
  ~ForkServerProcess() {
    Kill();
    if (keeper.joinable()) keeper.join();
  }

  // SIGKILLs the server unless it has exited (its children die with it).
  void Kill() {
    std::lock_guard lock(mu);
    broken = true;
    if (pid > 0 && !exited) (void)kill(pid, SIGKILL);
  }

  bool usable() {
    std::lock_guard lock(mu);
    return pid > 0 && !exited && !broken;
  }

  int Send(const std::string& message, const std::vector<int>& fds) {
    return SendMessage(control.get(), message, fds);
  }

  UniqueFd control;
  std::thread keeper;
  std::mutex mu;
  std::condition_variable cv;
  bool started = false;  // the keeper's spawn is done (pid or spawn_error)
  int spawn_error = 0;
  pid_t pid = -1;
  bool exited = false;  // the server has exited (it may not be reaped yet)
  bool broken = false;  // killed, or found dead, by the worker
};

namespace {

// posix_spawn of the server: control socket on 3, /dev/null on 0-2, nothing
// else; default signals, empty mask, its own process group.
int SpawnServer(const std::vector<std::string>& argv_in, const std::vector<std::string>& env_in,
                int control_fd, pid_t* pid) {
  std::vector<std::string> args = argv_in, env = env_in;
  std::vector<char*> argv, envp;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&fa);
  posix_spawnattr_init(&attr);
  posix_spawn_file_actions_adddup2(&fa, control_fd, kInputFd);
  posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addclosefrom_np(&fa, kInputFd + 1);
  sigset_t empty, defaults;
  sigemptyset(&empty);
  sigemptyset(&defaults);
  for (int sig : {SIGPIPE, SIGINT, SIGTERM, SIGXCPU, SIGXFSZ, SIGHUP, SIGCHLD})
    sigaddset(&defaults, sig);
  posix_spawnattr_setsigmask(&attr, &empty);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
  int rc = posix_spawn(pid, argv[0], &fa, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  return rc;
}

Result<std::shared_ptr<ForkServerProcess>> StartServer(const std::vector<std::string>& argv,
                                                       const std::vector<std::string>& env) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
    return Unavailable(std::string("sandbox: cannot create the extract server's socket: ") +
                       std::strerror(errno));
  }
  auto p = std::make_shared<ForkServerProcess>();
  p->control.reset(sv[0]);
  timeval send_timeout{kServerReplyMs / 1000, (kServerReplyMs % 1000) * 1000};
  (void)setsockopt(sv[0], SOL_SOCKET, SO_SNDTIMEO, &send_timeout, sizeof send_timeout);
  UniqueFd server_end(sv[1]);
  ForkServerProcess* raw = p.get();
  const int server_fd = server_end.get();
  p->keeper = std::thread([raw, &argv, &env, server_fd] {
    pid_t pid = -1;
    int rc = SpawnServer(argv, env, server_fd, &pid);
    {
      std::lock_guard lock(raw->mu);
      raw->started = true;
      raw->spawn_error = rc;
      raw->pid = rc == 0 ? pid : -1;
    }
    raw->cv.notify_all();
    if (rc != 0) return;
    // (argv, env and server_fd may be gone from here on.)
    siginfo_t info{};
    while (waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOWAIT) != 0 && errno == EINTR) {
    }
    {
      std::lock_guard lock(raw->mu);
      raw->exited = true;
    }
    while (waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
  });
  std::unique_lock lock(p->mu);
  p->cv.wait(lock, [&] { return p->started; });
  if (p->spawn_error != 0) {
    int rc = p->spawn_error;
    lock.unlock();
    p->keeper.join();
    if (rc == EAGAIN || rc == ENOMEM) {
      return Unavailable(std::string("sandbox: cannot start the extract server: ") +
                         std::strerror(rc));
    }
    return Internal("sandbox: cannot run " + argv[0] + ": " + std::strerror(rc));
  }
  return p;
}

}  // namespace

ForkedChild::ForkedChild(std::shared_ptr<ForkServerProcess> server, UniqueFd status)
    : server_(std::move(server)), status_fd_(std::move(status)) {}

ForkedChild::~ForkedChild() {
  if (done_ || pid_ <= 0) return;
  Kill();
  WaitEnd();
}

void ForkedChild::WaitEnd() {
  if (Wait(Clock::now() + std::chrono::milliseconds(kServerReplyMs))) return;
  server_->Kill();  // broken: its children die with it, and the pipe ends
  if (!Wait(Clock::now() + std::chrono::milliseconds(kServerReplyMs))) {
    lost_ = done_ = true;  // (a server that survives SIGKILL: nothing more to do)
  }
}

void ForkedChild::Kill() {
  if (done_ || pid_ <= 0) return;
  std::string message = "K";
  const int32_t pid = pid_;
  message.append(reinterpret_cast<const char*>(&pid), sizeof pid);
  (void)server_->Send(message, {});  // a dead server has taken its children along
}

bool ForkedChild::ReadRecord() {
  // The end is the kExited record and then EOF: the server closes the pipe
  // right after writing, so once done() nothing of the job is left in it.
  while (!done_) {
    StatusRecord r;
    ssize_t n = read(status_fd_.get(), &r, sizeof r);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return false;
    if (n == static_cast<ssize_t>(sizeof r) && r.kind == StatusRecord::kExited && r.pid == pid_ &&
        !exited_) {
      exited_ = true;
      status_ = r.value;
      cpu_usec_ = r.cpu_usec;
      max_rss_kib_ = r.max_rss_kib;
      continue;
    }
    if (n != 0 || !exited_) {
      lost_ = true;  // EOF first: the server is gone; anything else: it is broken
      server_->Kill();
    }
    done_ = true;
  }
  return true;
}

bool ForkedChild::Wait(Clock::time_point deadline) {
  for (;;) {
    if (ReadRecord()) return true;
    auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return false;
    pollfd p{status_fd_.get(), POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(std::min<int64_t>(left + 1, 1 << 30))) < 0 && errno != EINTR) {
      return false;
    }
  }
}

ForkServer::ForkServer(std::vector<std::string> argv, std::vector<std::string> env)
    : argv_(std::move(argv)), env_(std::move(env)) {}

ForkServer::~ForkServer() = default;  // the process's destructor kills and reaps it

pid_t ForkServer::server_pid() {
  std::lock_guard lock(mu_);
  return current_ && current_->usable() ? current_->pid : -1;
}

Result<std::shared_ptr<ForkServerProcess>> ForkServer::Running() {
  std::lock_guard lock(mu_);
  if (current_ && current_->usable()) return current_;
  if (current_) {
    spdlog::warn("sandbox: the extract server (pid {}) is gone; starting a new one", current_->pid);
  }
  current_.reset();
  auto started = StartServer(argv_, env_);
  if (!started) return started.status();
  current_ = std::move(*started);
  return current_;
}

Result<std::unique_ptr<ForkedChild>> ForkServer::Spawn(const SpawnRequest& request,
                                                       const ChildFds& fds) {
  std::string message = "S" + EncodeSpawnRequest(request);
  if (message.size() > kMaxSpawnRequestBytes + 1) {
    return Internal("sandbox: spawn request over the size limit");
  }
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC | O_NONBLOCK) != 0) {
    return Unavailable(std::string("sandbox: cannot create pipes: ") + std::strerror(errno));
  }
  UniqueFd status_r(pipe_fds[0]), status_w(pipe_fds[1]);
  std::vector<int> send_fds = {status_w.get(), fds.in, fds.out, fds.err};
  if (fds.input >= 0) send_fds.push_back(fds.input);

  std::shared_ptr<ForkServerProcess> server;
  for (int attempt = 0;; ++attempt) {
    auto running = Running();
    if (!running) return running.status();
    server = std::move(*running);
    int err = server->Send(message, send_fds);
    if (err == 0) break;
    server->Kill();  // dead (EPIPE, ECONNRESET) or not reading (EAGAIN)
    if (attempt == 0 && (err == EPIPE || err == ECONNRESET || err == ENOTCONN)) continue;
    return Unavailable(std::string("sandbox: cannot reach the extract server: ") +
                       std::strerror(err));
  }
  status_w.reset();  // the server holds the only write end now

  std::unique_ptr<ForkedChild> child(new ForkedChild(server, std::move(status_r)));
  const auto deadline = Clock::now() + std::chrono::milliseconds(kServerReplyMs);
  for (;;) {
    StatusRecord r;
    ssize_t n = read(child->status_fd_.get(), &r, sizeof r);
    if (n == static_cast<ssize_t>(sizeof r) && r.kind == StatusRecord::kStarted && r.pid > 0) {
      child->pid_ = r.pid;
      return child;
    }
    if (n == static_cast<ssize_t>(sizeof r) && r.kind == StatusRecord::kFailed) {
      if (r.value == EINVAL) return Internal("sandbox: the extract server refused the request");
      return Unavailable(std::string("sandbox: the extract server cannot fork: ") +
                         std::strerror(r.value));
    }
    if (n >= 0 || (errno != EAGAIN && errno != EINTR)) {
      server->Kill();
      return Unavailable("sandbox: the extract server went away");
    }
    auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) {
      server->Kill();
      return Unavailable("sandbox: the extract server does not answer");
    }
    pollfd p{child->status_fd_.get(), POLLIN, 0};
    (void)poll(&p, 1, static_cast<int>(left + 1));
  }
}

}  // namespace conveyor::worker::sandbox
