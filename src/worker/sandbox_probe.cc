// sandbox_probe: a test-only program (never installed, not reachable from
// `conveyor extract`) that confines itself exactly as the extract child does
// (sandbox::Confine) and then attempts one escape, printing "allowed" or
// "refused: <reason>". sandbox_confine_test runs it.
//
//   sandbox_probe [--no-confine] [--skip LAYERS] [--uid N] [--input FILE] ACTION [ARG]
//   sandbox_probe --fork-server
//
// ACTION: read PATH | write PATH | truncate PATH | environ PID | fork | thread
//         | exec | ptrace PID | kill PID | kill-self | socket-inet | socket-unix | io-uring
//         | read-input | uid | layers | fds (the open descriptors)
//
// --fork-server: an extract server (worker/fork_server.h) as `conveyor
// extract-server` is one, preloaded the same way, whose forked children run
// the request's arguments (the words above, without --input: the input
// arrives on kInputFd) instead of the extract child. The escape tests run
// through it too.
#include <errno.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "processing/processing.h"
#include "worker/confine.h"
#include "worker/fork_server.h"

namespace {

using conveyor::worker::sandbox::ChildLimits;

struct ProbeArgs {
  bool confine = true;
  ChildLimits limits;
  std::string input;
  std::string action;
  std::string arg;
};

// [flags] ACTION [ARG]; false on bad usage.
bool ParseArgs(const std::vector<std::string>& words, ProbeArgs* a) {
  size_t i = 0;
  for (; i < words.size() && words[i].starts_with("--"); ++i) {
    const std::string& flag = words[i];
    if (flag == "--no-confine") a->confine = false;
    else if (flag == "--skip" && i + 1 < words.size()) a->limits.skip = words[++i];
    else if (flag == "--uid" && i + 1 < words.size()) a->limits.uid = std::atoll(words[++i].c_str());
    else if (flag == "--input" && i + 1 < words.size()) a->input = words[++i];
    else return false;
  }
  if (i >= words.size()) return false;
  a->action = words[i];
  a->arg = i + 1 < words.size() ? words[i + 1] : "";
  return true;
}

int Report(bool ok, int err = 0) {
  if (ok) std::printf("allowed\n");
  else std::printf("refused: %s\n", std::strerror(err));
  std::fflush(stdout);
  return 0;
}

int Probe(ProbeArgs a) {
  const std::string& action = a.action;
  const std::string& arg = a.arg;
  if (!a.input.empty()) {
    // The worker's side: the input arrives open on kInputFd.
    int fd = ::open(a.input.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 2;
    if (fd == conveyor::worker::sandbox::kInputFd) {
      (void)fcntl(fd, F_SETFD, 0);  // dup2 onto itself would keep FD_CLOEXEC, close() lose it
    } else {
      if (::dup2(fd, conveyor::worker::sandbox::kInputFd) < 0) return 2;
      ::close(fd);
    }
  }
  conveyor::worker::sandbox::Layers layers;
  if (a.confine) {
    layers = conveyor::worker::sandbox::Confine(a.limits);
  } else {
    conveyor::worker::sandbox::ReleasePreparedConfinement();
  }

  if (action == "fds") {
    std::string open_fds;
    for (int fd = 0; fd < 1024; ++fd) {
      if (fcntl(fd, F_GETFD) >= 0) open_fds += (open_fds.empty() ? "" : " ") + std::to_string(fd);
    }
    std::printf("%s\n", open_fds.c_str());
    return 0;
  }
  if (action == "layers") {
    std::printf("%s\n", layers.ToString().c_str());
    return 0;
  }
  if (action == "uid") {
    std::printf("%u\n", static_cast<unsigned>(getuid()));
    return 0;
  }
  if (action == "read" || action == "environ") {
    std::string path = action == "read" ? arg : "/proc/" + arg + "/environ";
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return Report(false, errno);
    char c;
    ssize_t n = ::read(fd, &c, 1);
    int err = errno;
    ::close(fd);
    return Report(n >= 0, err);
  }
  if (action == "read-input") {
    char c;
    ssize_t n = ::pread(conveyor::worker::sandbox::kInputFd, &c, 1, 0);
    return Report(n == 1, errno);
  }
  if (action == "write") {
    int fd = ::open(arg.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd >= 0) ::close(fd);
    return Report(fd >= 0, errno);
  }
  if (action == "truncate") return Report(::truncate(arg.c_str(), 0) == 0, errno);
  if (action == "fork") {
    pid_t pid = fork();
    if (pid == 0) _exit(0);
    if (pid > 0) waitpid(pid, nullptr, 0);
    return Report(pid >= 0, errno);
  }
  if (action == "thread") {
    bool ran = false;
    try {
      std::thread t([&] { ran = true; });
      t.join();
    } catch (const std::exception&) {
    }
    return Report(ran, EAGAIN);
  }
  if (action == "exec") {
    char* args[] = {const_cast<char*>("/bin/true"), nullptr};
    execv("/bin/true", args);  // returns only on failure; /bin/true prints nothing
    return Report(false, errno);
  }
  if (action == "ptrace") {
    long r = ptrace(PTRACE_SEIZE, std::atoi(arg.c_str()), nullptr, nullptr);
    return Report(r == 0, errno);
  }
  if (action == "kill") return Report(::kill(std::atoi(arg.c_str()), 0) == 0, errno);
  if (action == "kill-self") {  // as abort() and raise() do
    bool ok = ::kill(getpid(), 0) == 0 && syscall(SYS_tgkill, getpid(), gettid(), 0) == 0;
    return Report(ok, errno);
  }
  if (action == "socket-inet" || action == "socket-unix") {
    int fd = ::socket(action == "socket-inet" ? AF_INET : AF_UNIX, SOCK_STREAM, 0);
    if (fd >= 0) ::close(fd);
    return Report(fd >= 0, errno);
  }
  if (action == "io-uring") {
    io_uring_params p{};
    long fd = syscall(__NR_io_uring_setup, 1, &p);
    if (fd >= 0) ::close(static_cast<int>(fd));
    return Report(fd >= 0, errno);
  }
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> words(argv + 1, argv + argc);
  if (words.size() == 1 && words[0] == "--fork-server") {
    // As `conveyor extract-server` starts (app/extract_command.cc).
    conveyor::worker::sandbox::ProtectWorkerProcess();
    conveyor::processing::Preload();
    return conveyor::worker::sandbox::RunForkServer(
        conveyor::worker::sandbox::kInputFd, [](const conveyor::worker::sandbox::SpawnRequest& r) {
          ProbeArgs a;
          a.limits = r.limits;
          return ParseArgs(r.args, &a) && a.input.empty() ? Probe(a) : 2;
        });
  }
  ProbeArgs a;
  a.limits.cpu_seconds = 10;
  a.limits.memory_mb = 512;
  if (!ParseArgs(words, &a)) return 2;
  return Probe(a);
}
