// File: app/upload_command.h
//
// `conveyor upload FILE --session S [--message M] [--wait]`: a command-line
// client of the upload API. Streams FILE as multipart/form-data (libcurl reads
// it from disk; it is never held in memory), shows a progress bar on stderr,
// prints the job id, and with --wait polls the status endpoint until the job
// is final and prints its status JSON.
//
// Server and credentials: --url (default http://localhost:$PORT), --token or
// $CONVEYOR_TOKEN, or else a token minted for --user (default "cli") with
// $JWT_SECRET. Exit status: 0 accepted (or completed, with --wait), 1 refused
// or failed (the server's JSON error is printed), 2 bad usage.
#pragma once

#include <memory>

#include "app/config.h"

namespace CLI {
class App;
}

namespace conveyor::app {

class UploadCommand {
 public:
  virtual ~UploadCommand() = default;
  virtual bool parsed() const = 0;
  virtual int Run(const Config& config) = 0;
};

// Registers `upload` on `cli`; the result must outlive cli.parse().
std::unique_ptr<UploadCommand> AddUploadCommand(CLI::App& cli);

}  // namespace conveyor::app
