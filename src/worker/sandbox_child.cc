// The child of RunSandboxed. Order matters: limits and isolation are in place
// before a single byte of the request (or the file) is read, so that even a
// bug in request parsing runs confined.
#include "worker/sandbox_child.h"

#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <malloc.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <csignal>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <vector>

namespace conveyor::worker::sandbox {
namespace {

// Bytes per allocation of the "alloc" fault, and per write of "flood".
constexpr size_t kFaultAllocBytes = 16 << 20;
constexpr size_t kFaultFloodBytes = 64 << 10;

[[noreturn]] void OnOutOfMemory() { _exit(kExitOutOfMemory); }

// Lowers a limit to `value` (never raises the hard limit: that would fail).
void SetLimit(int resource, rlim_t soft, rlim_t hard) {
  struct rlimit cur {};
  if (getrlimit(resource, &cur) == 0 && cur.rlim_max != RLIM_INFINITY) {
    hard = std::min(hard, cur.rlim_max);
    soft = std::min(soft, hard);
  }
  struct rlimit lim {soft, hard};
  (void)setrlimit(resource, &lim);
}

// Writes all of `s` to stdout; a broken pipe ends the process (SIGPIPE), as
// it should: the parent is gone or gave up on us.
void WriteOut(std::string_view s) {
  while (!s.empty()) {
    ssize_t n = write(STDOUT_FILENO, s.data(), s.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      _exit(1);
    }
    s.remove_prefix(static_cast<size_t>(n));
  }
}

// A seccomp filter making socket() fail with EACCES (and, on x86-64, every
// x32 or 32-bit syscall, which this binary never makes and which could
// otherwise reach socketcall). Everything else is allowed.
bool DenySockets() {
#if defined(__x86_64__)
  constexpr uint32_t kArch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
  constexpr uint32_t kArch = AUDIT_ARCH_AARCH64;
#else
  return false;
#endif
#if defined(__x86_64__) || defined(__aarch64__)
  constexpr uint32_t kDeny = SECCOMP_RET_ERRNO | (EACCES & SECCOMP_RET_DATA);
  struct sock_filter filter[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, kArch, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, kDeny),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
#if defined(__x86_64__)
      BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000 /* __X32_SYSCALL_BIT */, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, kDeny),
#endif
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_socket, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, kDeny),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog prog {};
  prog.len = static_cast<unsigned short>(sizeof(filter) / sizeof(filter[0]));
  prog.filter = filter;
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return false;
  return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0;
#endif
}

// Applies every limit and as much isolation as the kernel grants; returns
// how the process is cut off from the network.
std::string Confine(const ChildLimits& l) {
  // Die with the worker thread that started us.
  (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
  // Only stdin, stdout and stderr; posix_spawn closed the rest already, this
  // covers a child started some other way.
  (void)syscall(SYS_close_range, 3U, ~0U, 0U);

  const rlim_t cpu = static_cast<rlim_t>(std::max<int64_t>(l.cpu_seconds, 1));
  SetLimit(RLIMIT_CPU, cpu, cpu + 1);  // SIGXCPU at the soft limit, SIGKILL a second later
  const rlim_t as = static_cast<rlim_t>(std::max<int64_t>(l.memory_mb, 16)) << 20;
  SetLimit(RLIMIT_AS, as, as);
  SetLimit(RLIMIT_FSIZE, 0, 0);  // no files written (pipes are not files)
  SetLimit(RLIMIT_CORE, 0, 0);
  const rlim_t files = static_cast<rlim_t>(std::max<int64_t>(l.max_open_files, 8));
  SetLimit(RLIMIT_NOFILE, files, files);
  (void)prctl(PR_SET_DUMPABLE, 0);
  // Each malloc arena reserves 64 MiB of address space; a parser library
  // that starts threads would otherwise spend RLIMIT_AS on reservations.
  (void)mallopt(M_ARENA_MAX, 2);

  bool netns = unshare(CLONE_NEWUSER | CLONE_NEWNET) == 0;
  bool seccomp = DenySockets();
  if (netns && seccomp) return "netns+seccomp";
  if (netns) return "netns";
  if (seccomp) return "seccomp";
  return "none";
}

[[noreturn]] void InjectFault(TestFault fault) {
  switch (fault) {
    case TestFault::kCrash:
      std::abort();
    case TestFault::kSpin: {
      volatile uint64_t n = 0;
      for (;;) n = n + 1;
    }
    case TestFault::kAlloc: {
      std::vector<char*> held;
      for (;;) {
        char* p = new char[kFaultAllocBytes];  // the new-handler exits when this fails
        std::memset(p, 1, kFaultAllocBytes);
        held.push_back(p);
      }
    }
    case TestFault::kFlood: {
      // A result line that never ends, like a parser emitting text forever.
      WriteOut("{\"result\":{\"text\":\"");
      std::string block(kFaultFloodBytes, 'x');
      for (;;) WriteOut(block);
    }
    case TestFault::kNone:
      break;
  }
  std::abort();
}

}  // namespace

TestFault ParseTestFault(const std::string& name) {
  if (name == "crash") return TestFault::kCrash;
  if (name == "spin") return TestFault::kSpin;
  if (name == "alloc") return TestFault::kAlloc;
  if (name == "flood") return TestFault::kFlood;
  return TestFault::kNone;
}

int RunExtractChild(const ChildLimits& limits, TestFault fault) {
  const std::string isolation = Confine(limits);
  std::set_new_handler(OnOutOfMemory);
  std::signal(SIGPIPE, SIG_DFL);

  std::string request;
  char buf[64 << 10];
  for (;;) {
    ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    request.append(buf, static_cast<size_t>(n));
    if (request.size() > kMaxRequestBytes) {
      WriteOut(ErrorLine(InvalidArgument("extract request over the size limit")));
      return 0;
    }
  }
  auto req = DecodeRequest(request);
  if (!req) {
    WriteOut(ErrorLine(req.status()));
    return 0;
  }
  if (fault != TestFault::kNone) InjectFault(fault);

  auto progress = [](const std::string& stage, int percent) { WriteOut(ProgressLine(stage, percent)); };
  auto out = processing::Run(req->input, req->limits, progress);
  WriteOut(out ? ResultLine(*out, isolation) : ErrorLine(out.status()));
  return 0;
}

}  // namespace conveyor::worker::sandbox
