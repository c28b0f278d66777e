// The child of RunSandboxed. Order matters: limits and isolation are in place
// before a single byte of the request (or the file) is read, so that even a
// bug in request parsing runs confined.
#include "worker/sandbox_child.h"

#include <errno.h>
#include <sys/prctl.h>
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

#include "worker/confine.h"
#include "worker/fork_server.h"

namespace conveyor::worker::sandbox {
namespace {

// Bytes per allocation of the "alloc" fault, and per write of "flood".
constexpr size_t kFaultAllocBytes = 16 << 20;
constexpr size_t kFaultFloodBytes = 64 << 10;

[[noreturn]] void OnOutOfMemory() { _exit(kExitOutOfMemory); }

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

[[noreturn]] void InjectFault(TestFault fault) {
  switch (fault) {
    case TestFault::kCrash:
      std::abort();
    case TestFault::kSpin:
    case TestFault::kLinger: {
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
  if (name == "linger") return TestFault::kLinger;
  return TestFault::kNone;
}

int RunExtractChild(const ChildLimits& limits, TestFault fault, bool probe) {
  const std::string isolation = Confine(limits).ToString();
  std::set_new_handler(OnOutOfMemory);
  std::signal(SIGPIPE, SIG_DFL);
  if (probe) {
    WriteOut(ProbeLine(isolation));
    return 0;
  }
  if (std::string missing = MissingLayers(ParseLayers(isolation), limits.require); !missing.empty()) {
    // SANDBOX_REQUIRE: refuse to touch the file without them. The worker
    // checked at start; this is a kernel or host that changed since.
    WriteOut(ErrorLine(Unavailable("sandbox layers unavailable: " + missing + " (SANDBOX_REQUIRE)")));
    return 0;
  }

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
  if (fault != TestFault::kNone && fault != TestFault::kLinger) InjectFault(fault);

  auto progress = [](const std::string& stage, int percent) { WriteOut(ProgressLine(stage, percent)); };
  auto out = processing::Run(req->input, req->limits, progress);
  WriteOut(out ? ResultLine(*out, isolation) : ErrorLine(out.status()));
  if (fault == TestFault::kLinger) InjectFault(fault);
  return 0;
}

int RunExtractChildFromEnvironment(const ChildLimits& limits, bool probe) {
  const char* fault = std::getenv("CONVEYOR_EXTRACT_TEST_FAULT");
  return RunExtractChild(limits, ParseTestFault(fault ? fault : ""), probe);
}

int RunExtractServer() {
  // Die with the worker from the start (the server loop sets it again).
  (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
  int type = 0;
  socklen_t len = sizeof type;
  if (getsockopt(kServerControlFd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 ||
      type != SOCK_SEQPACKET) {
    return 2;  // not started by a worker
  }
  // Only 0-2 (/dev/null) and the control socket: whatever else came along goes.
  (void)syscall(SYS_close_range, static_cast<unsigned>(kServerControlFd) + 1, ~0U, 0U);
  (void)ProtectWorkerProcess();
  processing::Preload();
  return RunForkServer(kServerControlFd, [](const SpawnRequest& r) {
    return RunExtractChildFromEnvironment(r.limits, r.probe);
  });
}

}  // namespace conveyor::worker::sandbox
