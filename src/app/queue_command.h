// File: app/queue_command.h
//
// `conveyor queue …`: the operator's view of the BullMQ queue, over
// queue::QueueAdmin (src/queue/admin.h).
//
//   conveyor queue counts                      jobs per state (+ dead-letter, paused)
//   conveyor queue failed [--limit N]          newest failed jobs
//   conveyor queue dlq list [--limit N]        newest dead-letter jobs
//   conveyor queue dlq retry ID | --all        re-run dead-letter jobs in the main queue
//   conveyor queue dlq purge                   delete every dead-letter job
//   conveyor queue retry-failed                every failed job back to wait
//   conveyor queue clean --grace S --state completed|failed [--limit N]
//   conveyor queue pause | resume
//
// Every subcommand takes --json (one JSON document on stdout instead of an
// aligned table or a sentence). Exit status: 0 success; 1 when Redis fails or
// refuses (message on stderr); 2 for bad usage (unknown argument, missing or
// malformed value).
#pragma once

#include <memory>

#include "app/config.h"

namespace CLI {
class App;
}

namespace conveyor::app {

class QueueCommand {
 public:
  virtual ~QueueCommand() = default;
  // True when the command line selected `queue`.
  virtual bool parsed() const = 0;
  // Runs the selected subcommand against the Redis of `config`; returns the
  // process exit status.
  virtual int Run(const Config& config) = 0;
};

// Registers `queue` and its subcommands on `cli`. The returned object holds
// the parsed values, so it must outlive cli.parse().
std::unique_ptr<QueueCommand> AddQueueCommand(CLI::App& cli);

}  // namespace conveyor::app
