// sandbox_probe: a test-only program (never installed, not reachable from
// `conveyor extract`) that confines itself exactly as the extract child does
// (sandbox::Confine) and then attempts one escape, printing "allowed" or
// "refused: <reason>". sandbox_confine_test runs it.
//
//   sandbox_probe [--no-confine] [--skip LAYERS] [--uid N] [--input FILE] ACTION [ARG]
//
// ACTION: read PATH | write PATH | truncate PATH | environ PID | fork | thread
//         | exec | ptrace PID | kill PID | socket-inet | socket-unix | io-uring
//         | read-input | uid | layers
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

#include "worker/confine.h"

namespace {

using conveyor::worker::sandbox::ChildLimits;

int Report(bool ok, int err = 0) {
  if (ok) std::printf("allowed\n");
  else std::printf("refused: %s\n", std::strerror(err));
  std::fflush(stdout);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  bool confine = true;
  ChildLimits limits;
  limits.cpu_seconds = 10;
  limits.memory_mb = 512;
  std::string input;
  int i = 1;
  for (; i < argc && argv[i][0] == '-' && argv[i][1] == '-'; ++i) {
    std::string flag = argv[i];
    if (flag == "--no-confine") confine = false;
    else if (flag == "--skip" && i + 1 < argc) limits.skip = argv[++i];
    else if (flag == "--uid" && i + 1 < argc) limits.uid = std::atoll(argv[++i]);
    else if (flag == "--input" && i + 1 < argc) input = argv[++i];
    else return 2;
  }
  if (i >= argc) return 2;
  const std::string action = argv[i];
  const std::string arg = i + 1 < argc ? argv[i + 1] : "";
  if (!input.empty()) {
    // The worker's side: the input arrives open on kInputFd.
    int fd = ::open(input.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 || ::dup2(fd, conveyor::worker::sandbox::kInputFd) < 0) return 2;
    ::close(fd);
  }
  conveyor::worker::sandbox::Layers layers;
  if (confine) layers = conveyor::worker::sandbox::Confine(limits);

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
