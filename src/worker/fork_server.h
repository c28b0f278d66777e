// File: worker/fork_server.h
//
// The extract server: a pre-started process that forks one sandboxed child
// per job, so that a job pays for a fork instead of an exec, the dynamic
// loader's relocations of a binary linked with poppler and Tesseract, and
// libmagic's start-up (its first lookup compiles the database's patterns).
// RunSandboxed (sandbox.h) uses it unless EXTRACT_FORK_SERVER=off.
//
// Processes:
//   worker ── posix_spawn ──> `conveyor extract-server` (one per binary in a
//   process; started on first use)  ── fork ──> one child per job
// The server is started with the child's scrubbed environment (no secrets
// ever enter its memory, so none can be inherited by a child), descriptors
// 0-2 on /dev/null and its control socket on 3, nothing else. It is
// single-threaded, preloads what every job needs (processing::Preload), makes
// itself non-dumpable, ignores SIGINT/SIGTERM/SIGHUP (the worker's graceful
// stop decides) and loops on its control socket. It dies with the
// worker: PR_SET_PDEATHSIG (the worker starts it from a thread that lives as
// long as the server) and EOF on the control socket; its children die with it
// (PR_SET_PDEATHSIG again).
//
// A child, right after the fork: its own process group, PR_SET_PDEATHSIG,
// default signal dispositions and an empty mask, the worker's descriptors on
// 0 (stdin), 1 (stdout), 2 (stderr) and kInputFd, every other descriptor
// closed (the control socket, other jobs' status pipes), the request's
// environment in place of the server's; then ChildMain, which confines
// itself exactly as `conveyor extract` does (RunExtractChild: rlimits, uid,
// netns, Landlock, seccomp; confine.h). The server sets the same rlimits from
// outside with prlimit() right after the fork, as the worker does for a
// spawned child.
//
// Control socket (AF_UNIX SOCK_SEQPACKET, one message per request, worker ->
// server; the server never answers on it):
//   spawn  'S' + EncodeSpawnRequest(...), SCM_RIGHTS [status, stdin, stdout,
//          stderr] or [status, stdin, stdout, stderr, input]
//   kill   'K' + pid (int32, host order): SIGKILL the process group and the
//          process of that child, if it is still the server's unreaped child
//          (so a pid reused after the child was reaped is never hit)
// Status pipe (one per job, created by the worker, write end sent with the
// spawn request; server -> worker): StatusRecord's, first kStarted with the
// pid (or kFailed with the fork's errno), then kExited with the raw wait
// status and CPU time once the server has reaped the child, then EOF (the
// server closes the pipe). EOF before kExited means the server died (its
// children die with it).
//
// Threads: ForkServer is thread-safe; any number of threads may Spawn at
// once (sendmsg on a SEQPACKET socket sends each request whole). A ForkedChild
// belongs to one thread.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "core/fd.h"
#include "worker/sandbox_protocol.h"

namespace conveyor::worker::sandbox {

// What one forked child runs.
struct SpawnRequest {
  ChildLimits limits;             // the child confines itself with these
  bool probe = false;             // report the layers and exit (ProbeSandbox)
  std::vector<std::string> env;   // the child's whole environment, "NAME=value" each
  std::vector<std::string> args;  // more words for ChildMain (the test probe's action);
                                  // conveyor's children take none
};

// Largest encoded request (environment and arguments included).
inline constexpr size_t kMaxSpawnRequestBytes = 64 << 10;

// The request's bytes after the 'S'. Decode: kInvalidArgument for anything
// malformed or over kMaxSpawnRequestBytes. Pure functions.
std::string EncodeSpawnRequest(const SpawnRequest& request);
Result<SpawnRequest> DecodeSpawnRequest(std::string_view bytes);

// One record on a status pipe; written with one write() (smaller than
// PIPE_BUF, so never split).
struct StatusRecord {
  enum Kind : int32_t { kStarted = 1, kExited = 2, kFailed = 3 };
  int32_t kind = 0;
  int32_t pid = 0;
  int32_t value = 0;  // kExited: the raw wait status; kFailed: fork's errno
  int32_t max_rss_kib = 0;  // kExited: the child's peak resident set (ru_maxrss)
  int64_t cpu_usec = 0;  // kExited: user + system CPU time of the child
};

// The child's main, run in the forked child once its descriptors, process
// group, signals and environment are in place; returns its exit status. It
// must confine itself before reading anything (RunExtractChild does).
using ChildMain = std::function<int(const SpawnRequest& request)>;

// The server's loop, on the control socket `control_fd`; returns 0 when the
// socket reaches EOF (the worker is gone or dropped the server), after
// killing and reaping every child still running. The caller has made this
// process's descriptors what the file comment says.
int RunForkServer(int control_fd, const ChildMain& child_main);

// The descriptors of a child: dup'ed onto 0, 1, 2 and kInputFd (input -1:
// none). They stay owned by the caller.
struct ChildFds {
  int in = -1;
  int out = -1;
  int err = -1;
  int input = -1;
};

class ForkServer;
struct ForkServerProcess;  // one running server (fork_server.cc)

// A child of the fork server, seen from the worker.
class ForkedChild {
 public:
  ~ForkedChild();
  ForkedChild(const ForkedChild&) = delete;
  ForkedChild& operator=(const ForkedChild&) = delete;

  pid_t pid() const { return pid_; }
  // Asks the server to SIGKILL the child's process group (no-op once ended).
  void Kill();
  // Waits until the server reports the child's end or `deadline`; true when
  // it is over: ended (status()) or lost with the server (lost()).
  bool Wait(std::chrono::steady_clock::time_point deadline);
  // Waits for the end of a child that was killed or is exiting; a server
  // that does not report it within 10 s is deemed broken and killed (and
  // the child is then lost()). done() afterwards.
  void WaitEnd();
  bool done() const { return done_; }
  // The raw wait status (as from waitpid) once done() and not lost().
  int status() const { return status_; }
  double cpu_seconds() const { return static_cast<double>(cpu_usec_) / 1e6; }
  int64_t max_rss_bytes() const { return max_rss_kib_ * 1024; }
  // The server died (or was killed as broken) before reporting the end; the
  // child died with it.
  bool lost() const { return lost_; }

 private:
  friend class ForkServer;
  ForkedChild(std::shared_ptr<ForkServerProcess> server, UniqueFd status);
  // Takes in a record (or EOF) that has arrived; false when none has.
  bool ReadRecord();

  std::shared_ptr<ForkServerProcess> server_;
  pid_t pid_ = -1;
  UniqueFd status_fd_;
  bool exited_ = false;  // the kExited record has come (EOF is next)
  bool done_ = false;
  bool lost_ = false;
  int status_ = 0;
  int64_t cpu_usec_ = 0;
  int64_t max_rss_kib_ = 0;
};

// The worker's side: starts the server (on first Spawn, and again whenever
// it is found dead or broken) and sends it requests.
class ForkServer {
 public:
  // `argv`: the server's command line, argv[0] the binary to run
  // (e.g. {"/proc/self/exe", "extract-server"}); `env`: its environment.
  ForkServer(std::vector<std::string> argv, std::vector<std::string> env);
  // Kills the server (its children die with it) and reaps it.
  ~ForkServer();
  ForkServer(const ForkServer&) = delete;
  ForkServer& operator=(const ForkServer&) = delete;

  // Forks a child running `request` on `fds`. A server found dead when the
  // request is sent is replaced and the request sent again. Errors:
  // kInternal when the server cannot be started (e.g. no such binary);
  // kUnavailable when it died or broke with this request (the request may
  // be retried), could not fork, or pipes could not be made.
  Result<std::unique_ptr<ForkedChild>> Spawn(const SpawnRequest& request, const ChildFds& fds);

  // The running server's pid, -1 when none is (tests).
  pid_t server_pid();

 private:
  // The running server, started when there is none (or it is dead).
  Result<std::shared_ptr<ForkServerProcess>> Running();

  const std::vector<std::string> argv_;
  const std::vector<std::string> env_;
  std::mutex mu_;
  std::shared_ptr<ForkServerProcess> current_;  // guarded by mu_
};

}  // namespace conveyor::worker::sandbox
