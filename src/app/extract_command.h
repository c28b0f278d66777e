// File: app/extract_command.h
//
// `conveyor extract`: the sandboxed parser child that worker::RunSandboxed
// (src/worker/sandbox.h) starts for each file with EXTRACT_FORK_SERVER=off.
// Not meant to be run by hand: it reads one JSON request on stdin and
// answers in JSON lines on stdout (src/worker/sandbox_protocol.h).
//
//   conveyor extract --cpu-seconds N --memory-mb M --max-open-files F
//
// Its limits (and network isolation) are applied before anything is read.
//
// `conveyor extract-server`: the extract server (src/worker/fork_server.h)
// that RunSandboxed starts once and that forks one such child per file
// (EXTRACT_FORK_SERVER=on, the default). It preloads processing
// (processing::Preload) and serves its control socket on descriptor 3; each
// forked child runs exactly what `conveyor extract` runs (RunExtractChild),
// with the limits its request carries. Started by the worker only.
//
// Fault injection for tests: CONVEYOR_EXTRACT_TEST_FAULT=crash|spin|alloc|flood
// makes the child abort / busy-loop / allocate until the memory limit / print
// endless output after reading the request, so tests can check that the
// parent survives each. Unset (or any other value) in production.
#pragma once

#include <memory>

namespace CLI {
class App;
}

namespace conveyor::app {

class ExtractCommand {
 public:
  virtual ~ExtractCommand() = default;
  // True when the command line selected `extract` or `extract-server`.
  virtual bool parsed() const = 0;
  // Runs the child; returns the process exit status.
  virtual int Run() = 0;
};

// Registers `extract` and `extract-server` on `cli` (in the "internal" group, out of --help's
// main list). The returned object must outlive cli.parse().
std::unique_ptr<ExtractCommand> AddExtractCommand(CLI::App& cli);

}  // namespace conveyor::app
