// Design
// ------
// A child is started one of two ways (SandboxSettings::fork_server):
//
// - forked by an extract server (fork_server.h; the default): one
//   `<binary> extract-server` per binary in this process, started on first
//   use, forks a child per job from a process that has libmagic and the
//   parsers' libraries loaded already. With a lean server the file goes to
//   its child first, and to the full server's only when the lean child
//   answers kUnimplemented (RunSandboxed). The worker passes the child's ends of
//   the pipes and the input over the server's control socket, and learns the
//   child's pid and, at its end, its wait status and CPU time from a status
//   pipe. Kills go through the server, which alone reaps its children.
// - spawned (posix_spawn of `<binary> extract`): stdin is one end of a
//   socketpair, stdout and stderr are pipes, every other descriptor is closed
//   in the child, the signal mask and dispositions are reset (the worker
//   blocks SIGINT/SIGTERM in all threads), and the child leads its own
//   process group so one kill reaches anything it might start.
// Either way stdin is a socketpair (so writing the request after the child
// died is an EPIPE error, not a SIGPIPE that would kill the worker), the
// child applies its rlimits and confinement itself (sandbox_child.cc), and
// its starter sets the same limits again with prlimit() right after the
// start, so a child that skipped them is still bound.
//
// One poll() loop then writes the request, reads stdout (complete lines are
// decoded as they arrive; progress is forwarded) and stderr (kept for the
// log, tail only), and watches the wall-clock deadline and the output cap.
// At EOF on stdout the child is reaped; on a deadline or cap it is SIGKILLed
// first. Every path out of Spawned's scope reaps the child.
#include "worker/sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>

#include "core/fd.h"
#include "core/metrics.h"
#include "worker/confine.h"
#include "worker/fork_server.h"
#include "worker/sandbox_protocol.h"

extern char** environ;

namespace conveyor::worker {
namespace {

using Clock = std::chrono::steady_clock;

// Child stderr kept for the log (its tail).
constexpr size_t kMaxStderrLogBytes = 4096;
// Read size per poll wake-up.
constexpr size_t kReadChunkBytes = 64 << 10;
constexpr char kAllLayers[] = "uid+landlock+seccomp+netns";
// The lowest descriptor the input is parked on before the spawn (so that
// dup2 onto kInputFd always makes a new descriptor without FD_CLOEXEC).
constexpr int kParkFd = 10;
// Variables of the worker's environment a child may see.
constexpr const char* kPassedEnv[] = {"PATH", "LANG", "LC_ALL", "TZ", "TMPDIR", "MAGIC"};

void CloseFd(int& fd) {
  if (fd >= 0) close(fd);
  fd = -1;
}

// A started child: our own (posix_spawn) or the extract server's. The
// destructor kills and reaps it if nobody has.
class Spawned {
 public:
  explicit Spawned(pid_t pid) : pid_(pid) {}
  explicit Spawned(std::unique_ptr<sandbox::ForkedChild> forked)
      : pid_(forked->pid()), forked_(std::move(forked)) {}
  ~Spawned() {
    if (!reaped_) {
      Kill();
      (void)Reap();
    }
  }
  Spawned(const Spawned&) = delete;
  Spawned& operator=(const Spawned&) = delete;

  pid_t pid() const { return pid_; }

  void Kill() {
    if (reaped_) return;
    killed_ = true;
    if (forked_) {
      forked_->Kill();  // the server kills it while it is still unreaped
      return;
    }
    kill(-pid_, SIGKILL);  // its process group
    kill(pid_, SIGKILL);   // in case setpgid did not happen
  }
  bool killed() const { return killed_; }

  // Blocking waitpid; the exit status (as from waitpid).
  int Reap() {
    if (reaped_) return status_;
    if (forked_) {
      forked_->WaitEnd();
      status_ = forked_->status();
      reaped_ = true;
      return status_;
    }
    for (;;) {
      pid_t r = wait4(pid_, &status_, 0, &usage_);
      if (r == pid_) break;
      if (r < 0 && errno != EINTR) {
        status_ = 0;
        break;
      }
    }
    reaped_ = true;
    return status_;
  }

  // Non-blocking reap; true when the child has exited.
  bool TryReap() {
    if (reaped_) return true;
    if (forked_) {
      if (forked_->Wait(Clock::now())) (void)Reap();
      return reaped_;
    }
    pid_t r = wait4(pid_, &status_, WNOHANG, &usage_);
    if (r == pid_ || (r < 0 && errno == ECHILD)) reaped_ = true;
    return reaped_;
  }

  // Waits for the child's exit until `deadline`; true when it has exited.
  bool ReapBy(Clock::time_point deadline) {
    if (forked_) {
      if (forked_->Wait(deadline)) (void)Reap();
      return reaped_;
    }
    while (!TryReap()) {
      if (Clock::now() >= deadline) return false;
      usleep(1000);
    }
    return true;
  }

  double cpu_seconds() const {
    if (forked_) return forked_->cpu_seconds();
    auto s = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
    return s(usage_.ru_utime) + s(usage_.ru_stime);
  }
  int64_t max_rss_bytes() const {
    if (forked_) return forked_->max_rss_bytes();
    return static_cast<int64_t>(usage_.ru_maxrss) * 1024;
  }

  // The extract server died before it reported the child's end (which died
  // with it): the status means nothing.
  bool lost() const { return forked_ && forked_->lost(); }

 private:
  pid_t pid_;
  std::unique_ptr<sandbox::ForkedChild> forked_;
  int status_ = 0;
  struct rusage usage_ {};
  bool reaped_ = false;
  bool killed_ = false;
};

// The environment every child (and the extract server) starts from.
std::vector<std::string> BaseEnvironment() {
  std::vector<std::string> env = {"OMP_THREAD_LIMIT=1"};
  for (const char* name : kPassedEnv) {
    if (const char* v = std::getenv(name)) env.push_back(std::string(name) + "=" + v);
  }
  return env;
}

std::vector<std::string> ChildEnvironment(const SandboxSettings& s) {
  std::vector<std::string> env = BaseEnvironment();
  env.insert(env.end(), s.extra_env.begin(), s.extra_env.end());
  return env;
}

sandbox::ChildLimits ChildLimitsFrom(const SandboxSettings& s) {
  sandbox::ChildLimits l;
  l.cpu_seconds = s.cpu_seconds;
  l.memory_mb = s.memory_mb;
  l.max_open_files = s.max_open_files;
  l.uid = s.uid;
  l.require = s.require;
  return l;
}

// The extract server of `binary`: one per binary in this process, shared by
// every thread, never destroyed (it dies with the process).
sandbox::ForkServer& ServerFor(const std::string& binary) {
  static std::mutex mu;
  static auto* servers = new std::map<std::string, std::unique_ptr<sandbox::ForkServer>>();
  std::lock_guard lock(mu);
  auto& server = (*servers)[binary];
  if (!server) {
    // LD_BIND_NOW: the server resolves every symbol once, so that no child
    // pays for lazy binding of what the server itself never called.
    std::vector<std::string> env = BaseEnvironment();
    env.push_back("LD_BIND_NOW=1");
    server = std::make_unique<sandbox::ForkServer>(std::vector<std::string>{binary, "extract-server"},
                                                   std::move(env));
  }
  return *server;
}

void ObserveChild(Spawned& child) {
  static auto& cpu = metrics::DefaultRegistry().Histogram(
      "conveyor_extract_child_cpu_seconds", "User plus system CPU time of each parser child.", {},
      {0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60});
  static auto& rss = metrics::DefaultRegistry().Histogram(
      "conveyor_extract_child_peak_rss_bytes", "Peak resident set size of each parser child.", {},
      {8e6, 16e6, 32e6, 64e6, 128e6, 256e6, 512e6, 1024e6, 2048e6});
  cpu.Get().Observe(child.cpu_seconds());
  rss.Get().Observe(static_cast<double>(child.max_rss_bytes()));
}

// A child that has given its result is not waited for: its end (the
// kernel's teardown of its memory, then the extract server's report) is
// about a fifth of its life, and the thread goes on with the job meanwhile.
// SettleSandboxChild waits for it later, up to the deadline of its own job,
// and the thread's next child does that first, so that each thread has at
// most one child ending behind it; a thread that ends waits for its own
// (the destructor).
struct EndingChild {
  std::unique_ptr<Spawned> child;
  Clock::time_point deadline;

  // Waits for the child's end (killed once past the deadline) and records
  // its CPU time and peak memory.
  void Settle() {
    if (!child) return;
    if (!child->ReapBy(deadline)) child->Kill();
    (void)child->Reap();
    if (!child->lost()) ObserveChild(*child);
    child.reset();
  }
  ~EndingChild() { Settle(); }
};
thread_local EndingChild t_ending;

void LogIsolationOnce(const std::string& isolation) {
  static std::atomic<bool> logged{false};
  std::string missing = sandbox::MissingLayers(sandbox::ParseLayers(isolation), kAllLayers);
  if (missing.empty() || logged.exchange(true)) return;
  spdlog::warn("sandbox: extract children run without these layers: {} (in place: {})", missing,
               isolation);
}

// What the child's exit status and our own actions mean.
Status ClassifyFailure(const Spawned& child, int status, bool timed_out, bool over_cap,
                       const SandboxSettings& s) {
  if (over_cap) return ResourceExhausted(kExtractedTooLargeMessage);
  if (timed_out) return DeadlineExceeded(kParseTooLongMessage);
  if (WIFEXITED(status)) {
    if (WEXITSTATUS(status) == sandbox::kExitOutOfMemory) {
      return ResourceExhausted(kParseTooMuchMemoryMessage);
    }
    return Internal("extract child exited with status " + std::to_string(WEXITSTATUS(status)) +
                    " without an answer");
  }
  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    if (sig == SIGXCPU) return DeadlineExceeded(kParseTooLongMessage);
    if (sig == SIGKILL) {
      // Not ours: the hard CPU limit, or the kernel's OOM killer.
      if (child.cpu_seconds() + 0.5 >= static_cast<double>(s.cpu_seconds)) {
        return DeadlineExceeded(kParseTooLongMessage);
      }
      return ResourceExhausted(kParseTooMuchMemoryMessage);
    }
    return InvalidArgument(kParserCrashedMessage);
  }
  return Internal("extract child ended in an unknown way");
}

// The child's ends of its stdin, stdout and stderr.
struct ChildEnds {
  int in = -1;
  int out = -1;
  int err = -1;
};

// posix_spawn of `<binary> extract` on `input_fd` (-1: none, with `probe`).
Result<std::unique_ptr<Spawned>> SpawnChild(const SandboxSettings& settings, int input_fd,
                                            bool probe, const ChildEnds& ends) {
  std::vector<std::string> args = {
      settings.binary_path, "extract",
      "--cpu-seconds", std::to_string(settings.cpu_seconds),
      "--memory-mb", std::to_string(settings.memory_mb),
      "--max-open-files", std::to_string(settings.max_open_files),
      "--uid", std::to_string(settings.uid)};
  if (!settings.require.empty()) {
    args.push_back("--require");
    args.push_back(settings.require);
  }
  if (probe) args.push_back("--probe");
  // The input, parked above the descriptors dup2 targets.
  UniqueFd parked;
  if (input_fd >= 0) {
    parked.reset(fcntl(input_fd, F_DUPFD_CLOEXEC, kParkFd));
    if (!parked.valid()) {
      return Unavailable(std::string("sandbox: cannot pass the input: ") + std::strerror(errno));
    }
  }
  std::vector<std::string> env = ChildEnvironment(settings);
  std::vector<char*> argv, envp;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);

  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&fa);
  posix_spawnattr_init(&attr);
  posix_spawn_file_actions_adddup2(&fa, ends.in, STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&fa, ends.out, STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&fa, ends.err, STDERR_FILENO);
  if (parked.valid()) posix_spawn_file_actions_adddup2(&fa, parked.get(), sandbox::kInputFd);
  posix_spawn_file_actions_addclosefrom_np(&fa, sandbox::kInputFd + 1);
  sigset_t empty, defaults;
  sigemptyset(&empty);
  sigemptyset(&defaults);
  for (int sig : {SIGPIPE, SIGINT, SIGTERM, SIGXCPU, SIGXFSZ, SIGHUP, SIGCHLD}) sigaddset(&defaults, sig);
  posix_spawnattr_setsigmask(&attr, &empty);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
                                      POSIX_SPAWN_SETPGROUP);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, settings.binary_path.c_str(), &fa, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    if (rc == EAGAIN || rc == ENOMEM) {
      return Unavailable(std::string("sandbox: cannot start a child: ") + std::strerror(rc));
    }
    return Internal("sandbox: cannot run " + settings.binary_path + ": " + std::strerror(rc));
  }
  auto child = std::make_unique<Spawned>(pid);
  sandbox::LimitFromOutside(pid, ChildLimitsFrom(settings));
  return child;
}

// The same child, forked by the extract server of `server_binary`.
Result<std::unique_ptr<Spawned>> ForkChild(const SandboxSettings& settings,
                                           const std::string& server_binary, int input_fd,
                                           bool probe, const ChildEnds& ends) {
  sandbox::SpawnRequest request;
  request.limits = ChildLimitsFrom(settings);
  request.probe = probe;
  request.env = ChildEnvironment(settings);
  auto forked = ServerFor(server_binary).Spawn(request, {ends.in, ends.out, ends.err, input_fd});
  if (!forked) return forked.status();
  return std::make_unique<Spawned>(std::move(*forked));
}

// Starts the child on `input_fd` (-1: none, with `probe`), writes `request`,
// forwards progress, and returns its answer line: a result, an error or a
// probe. The sandbox's own failures (crash, limits, protocol) are the error.
// On the fork path the child is forked by the server of `server_binary`;
// `deadline` bounds it (wall clock).
Result<sandbox::Message> RunChild(const SandboxSettings& settings, const std::string& server_binary,
                                  Clock::time_point deadline, int input_fd, bool probe,
                                  const std::string& request,
                                  const processing::ProgressFn& progress) {
  // Pipes: O_CLOEXEC so that children other threads spawn meanwhile do not
  // inherit them (posix_spawn's dup2 clears the flag on 0/1/2).
  int in_pair[2] = {-1, -1}, out_pipe[2] = {-1, -1}, err_pipe[2] = {-1, -1};
  auto close_all = [&] {
    for (int* fd : {&in_pair[0], &in_pair[1], &out_pipe[0], &out_pipe[1], &err_pipe[0], &err_pipe[1]}) {
      CloseFd(*fd);
    }
  };
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in_pair) != 0 ||
      pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0) {
    Status s = Unavailable(std::string("sandbox: cannot create pipes: ") + std::strerror(errno));
    close_all();
    return s;
  }
  SettleSandboxChild();
  const ChildEnds ends{in_pair[1], out_pipe[1], err_pipe[1]};
  auto started = settings.fork_server ? ForkChild(settings, server_binary, input_fd, probe, ends)
                                      : SpawnChild(settings, input_fd, probe, ends);
  CloseFd(in_pair[1]);
  CloseFd(out_pipe[1]);
  CloseFd(err_pipe[1]);
  if (!started) {
    close_all();
    return started.status();
  }
  Spawned& child = **started;
  const pid_t pid = child.pid();

  size_t request_sent = 0;
  int in_fd = in_pair[0];
  fcntl(in_fd, F_SETFL, fcntl(in_fd, F_GETFL) | O_NONBLOCK);

  std::string out_buf;           // stdout bytes not yet decoded (a partial line)
  std::string err_tail;          // last bytes of stderr
  int64_t total_bytes = 0;       // stdout + stderr, against max_output_bytes
  bool timed_out = false, over_cap = false, protocol_error = false;
  std::optional<sandbox::Message> answer;  // the result or error line
  Status protocol_status;
  std::vector<char> buf(kReadChunkBytes);

  while (out_pipe[0] >= 0 || err_pipe[0] >= 0) {
    auto now = Clock::now();
    if (now >= deadline) {
      timed_out = true;
      break;
    }
    int wait_ms = static_cast<int>(
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count() + 1);
    pollfd fds[3];
    nfds_t n = 0;
    int out_i = -1, err_i = -1, in_i = -1;
    if (out_pipe[0] >= 0) { out_i = static_cast<int>(n); fds[n++] = {out_pipe[0], POLLIN, 0}; }
    if (err_pipe[0] >= 0) { err_i = static_cast<int>(n); fds[n++] = {err_pipe[0], POLLIN, 0}; }
    if (in_fd >= 0) { in_i = static_cast<int>(n); fds[n++] = {in_fd, POLLOUT, 0}; }
    int ready = poll(fds, n, wait_ms);
    if (ready < 0) {
      if (errno == EINTR) continue;
      protocol_error = true;
      protocol_status = Internal(std::string("sandbox: poll: ") + std::strerror(errno));
      break;
    }
    if (in_i >= 0 && fds[in_i].revents != 0) {
      ssize_t w = send(in_fd, request.data() + request_sent, request.size() - request_sent,
                       MSG_NOSIGNAL);
      if (w > 0) request_sent += static_cast<size_t>(w);
      // Done, or the child stopped reading (it died: stdout tells the rest).
      if (request_sent == request.size() || (w < 0 && errno != EAGAIN && errno != EINTR)) {
        CloseFd(in_pair[0]);
        in_fd = -1;
      }
    }
    if (err_i >= 0 && fds[err_i].revents != 0) {
      ssize_t r = read(err_pipe[0], buf.data(), buf.size());
      if (r > 0) {
        total_bytes += r;
        err_tail.append(buf.data(), static_cast<size_t>(r));
        if (err_tail.size() > kMaxStderrLogBytes) err_tail.erase(0, err_tail.size() - kMaxStderrLogBytes);
      } else if (r == 0 || errno != EINTR) {
        CloseFd(err_pipe[0]);
      }
    }
    if (out_i >= 0 && fds[out_i].revents != 0) {
      ssize_t r = read(out_pipe[0], buf.data(), buf.size());
      if (r > 0) {
        total_bytes += r;
        out_buf.append(buf.data(), static_cast<size_t>(r));
        size_t start = 0;
        for (size_t nl; (nl = out_buf.find('\n', start)) != std::string::npos; start = nl + 1) {
          auto m = sandbox::DecodeLine(std::string_view(out_buf).substr(start, nl - start),
                                       settings.max_output_bytes);
          if (m && (m->type == sandbox::Message::Type::kProbe) != probe &&
              m->type != sandbox::Message::Type::kError && m->type != sandbox::Message::Type::kProgress) {
            m = Internal("extract child answered the wrong question");
          }
          if (!m || answer) {
            protocol_error = true;
            protocol_status = m ? Internal("extract child wrote after its answer") : m.status();
            break;
          }
          if (m->type == sandbox::Message::Type::kProgress) {
            if (progress) progress(m->stage, m->percent);
          } else {
            answer = std::move(*m);
          }
        }
        out_buf.erase(0, start);
        if (protocol_error) break;
      } else if (r == 0 || errno != EINTR) {
        CloseFd(out_pipe[0]);
      }
    }
    if (total_bytes > settings.max_output_bytes) {
      over_cap = true;
      break;
    }
    // A result within the cap is the child's last word: no EOF awaited.
    if (answer && answer->type == sandbox::Message::Type::kResult) break;
  }
  close_all();

  // A result is the child's last word: the thread goes on while it ends
  // (EndingChild). Everything else waits for the exit status, which tells
  // a crash or a limit from an answer.
  const bool result = answer && answer->type == sandbox::Message::Type::kResult;
  if (result && !timed_out && !over_cap && !protocol_error) {
    t_ending.child = std::move(*started);
    t_ending.deadline = deadline;
    return std::move(*answer);
  }
  if (timed_out || over_cap || protocol_error) {
    child.Kill();
  } else {
    // Both streams are closed; the child is exiting. Wait for it up to the
    // deadline (a child that closed its output and hangs is killed).
    if (!child.ReapBy(deadline)) {
      timed_out = true;
      child.Kill();
    }
  }
  int status = child.Reap();
  if (!child.lost() && !probe) ObserveChild(child);
  if (child.lost()) {
    // Not the file's fault: the job is retried (with a new server).
    spdlog::warn("sandbox: the extract server died during the job of child {}", pid);
    return Unavailable("sandbox: the extract server went away during the extraction");
  }

  if (!err_tail.empty() && (!answer || answer->type != sandbox::Message::Type::kResult)) {
    spdlog::info("sandbox: extract child {} stderr: {}", pid, err_tail);
  }
  if (protocol_error) {
    spdlog::warn("sandbox: extract child {} broke the protocol: {}", pid, protocol_status.ToString());
    return protocol_status;
  }
  if (!timed_out && !over_cap && answer && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
    if (answer->type == sandbox::Message::Type::kError) return answer->error;
    return std::move(*answer);
  }
  Status why = ClassifyFailure(child, status, timed_out, over_cap, settings);
  spdlog::info("sandbox: extract child {} failed: {} (status {:#x}, cpu {:.2f}s)", pid,
               why.ToString(), status, child.cpu_seconds());
  return why;
}

}  // namespace

Result<processing::Output> RunSandboxed(const SandboxSettings& settings,
                                        const processing::Input& input,
                                        const processing::Limits& limits,
                                        const processing::ProgressFn& progress) {
  UniqueFd opened;
  int fd = input.fd;
  if (fd < 0) {
    // Callers without a descriptor (tests, tools): open the path here; the
    // child never sees it.
    fd = ::open(input.path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
      int err = errno;
      spdlog::info("sandbox: open {}: {}", input.path, std::strerror(err));
      if (err == ENOENT) return FailedPrecondition(kInputMissingMessage);
      return Unavailable(std::string("sandbox: cannot open the input: ") + std::strerror(err));
    }
    opened.reset(fd);
  }
  const auto deadline = Clock::now() + std::chrono::milliseconds(settings.timeout_ms);
  const std::string request = sandbox::EncodeRequest({input, limits});
  const bool lean = settings.fork_server && !settings.lean_binary_path.empty();
  auto answer = RunChild(settings, lean ? settings.lean_binary_path : settings.binary_path,
                         deadline, fd, /*probe=*/false, request, progress);
  if (lean && answer.code() == Errc::kUnimplemented) {
    // A PDF or an image: the full server's child reads it again from the start.
    answer =
        RunChild(settings, settings.binary_path, deadline, fd, /*probe=*/false, request, progress);
  }
  if (!answer) return answer.status();
  LogIsolationOnce(answer->isolation);
  return std::move(answer->output);
}

void SettleSandboxChild() { t_ending.Settle(); }

pid_t ExtractServerPid(const std::string& binary) { return ServerFor(binary).server_pid(); }

std::string LeanExtractorBeside(const std::string& binary) {
  std::error_code ec;
  const std::filesystem::path resolved = std::filesystem::canonical(binary, ec);
  if (ec) return "";
  const std::filesystem::path lean = resolved.parent_path() / "conveyor-extract";
  if (!std::filesystem::is_regular_file(lean, ec) || ::access(lean.c_str(), X_OK) != 0) return "";
  return lean.string();
}

Result<sandbox::Layers> ProbeSandbox(const SandboxSettings& settings) {
  auto probe = [&](const std::string& binary) -> Result<sandbox::Layers> {
    const auto deadline = Clock::now() + std::chrono::milliseconds(settings.timeout_ms);
    auto answer = RunChild(settings, binary, deadline, -1, /*probe=*/true, "", nullptr);
    if (!answer) return answer.status();
    return sandbox::ParseLayers(answer->isolation);
  };
  auto full = probe(settings.binary_path);
  if (!full || !settings.fork_server || settings.lean_binary_path.empty()) return full;
  auto lean = probe(settings.lean_binary_path);
  if (!lean) return lean.status();
  // Both confine with the same code; were they ever to differ, a layer counts
  // only when both children have it.
  sandbox::Layers both;
  both.uid = full->uid && lean->uid;
  both.landlock = full->landlock && lean->landlock;
  both.landlock_abi = std::min(full->landlock_abi, lean->landlock_abi);
  both.seccomp = full->seccomp && lean->seccomp;
  both.netns = full->netns && lean->netns;
  return both;
}

}  // namespace conveyor::worker
