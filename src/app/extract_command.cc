#include "app/extract_command.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <string>

#include "processing/processing.h"
#include "worker/confine.h"
#include "worker/fork_server.h"
#include "worker/sandbox_child.h"

namespace conveyor::app {
namespace {

// Environment variable naming a fault to inject (see the header).
constexpr const char* kTestFaultEnv = "CONVEYOR_EXTRACT_TEST_FAULT";
// Where the worker puts the extract server's control socket.
constexpr int kControlFd = 3;

// What a child runs, spawned (`extract`) or forked by the server alike.
int RunChild(const worker::sandbox::ChildLimits& limits, bool probe) {
  const char* fault = std::getenv(kTestFaultEnv);
  return worker::sandbox::RunExtractChild(limits, worker::sandbox::ParseTestFault(fault ? fault : ""),
                                          probe);
}

int RunServer() {
  // Die with the worker from the start (the server loop sets it again).
  (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
  int type = 0;
  socklen_t len = sizeof type;
  if (getsockopt(kControlFd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_SEQPACKET) {
    return 2;  // not started by a worker
  }
  // Only 0-2 (/dev/null) and the control socket: whatever else came along goes.
  (void)syscall(SYS_close_range, static_cast<unsigned>(kControlFd) + 1, ~0U, 0U);
  (void)worker::sandbox::ProtectWorkerProcess();
  processing::Preload();
  return worker::sandbox::RunForkServer(kControlFd, [](const worker::sandbox::SpawnRequest& r) {
    return RunChild(r.limits, r.probe);
  });
}

class ExtractCommandImpl : public ExtractCommand {
 public:
  explicit ExtractCommandImpl(CLI::App& cli) {
    cmd_ = cli.add_subcommand("extract", "internal: sandboxed parser child of the worker");
    cmd_->group("internal");
    cmd_->add_option("--cpu-seconds", limits_.cpu_seconds, "CPU time limit (s)")
        ->check(CLI::Range(int64_t{1}, int64_t{86400}));
    cmd_->add_option("--memory-mb", limits_.memory_mb, "address-space limit (MiB)")
        ->check(CLI::Range(int64_t{16}, int64_t{1} << 20));
    cmd_->add_option("--max-open-files", limits_.max_open_files, "open file limit")
        ->check(CLI::Range(int64_t{8}, int64_t{65536}));
    cmd_->add_option("--uid", limits_.uid, "unprivileged uid (and gid) to run as when root; -1: stay")
        ->check(CLI::Range(int64_t{-1}, int64_t{4294967294}));
    cmd_->add_option("--require", limits_.require, "layers that must be in place (uid+landlock+...)");
    cmd_->add_flag("--probe", probe_, "confine, print the layers in place, exit");
    server_ = cli.add_subcommand("extract-server",
                                 "internal: the worker's extract server (forks sandboxed parsers)");
    server_->group("internal");
  }

  bool parsed() const override { return cmd_->parsed() || server_->parsed(); }

  int Run() override {
    if (server_->parsed()) return RunServer();
    return RunChild(limits_, probe_);
  }

 private:
  CLI::App* cmd_ = nullptr;
  CLI::App* server_ = nullptr;
  worker::sandbox::ChildLimits limits_;
  bool probe_ = false;
};

}  // namespace

std::unique_ptr<ExtractCommand> AddExtractCommand(CLI::App& cli) {
  return std::make_unique<ExtractCommandImpl>(cli);
}

}  // namespace conveyor::app
