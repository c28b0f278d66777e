#include "app/extract_command.h"

#include <CLI/CLI.hpp>
#include <string>

#include "worker/sandbox_child.h"

namespace conveyor::app {
namespace {

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
    if (server_->parsed()) return worker::sandbox::RunExtractServer();
    return worker::sandbox::RunExtractChildFromEnvironment(limits_, probe_);
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
