// File: app/upload_command.h
//
// `conveyor upload FILE... --session S [--message M] [--wait] [--json]
// [--resumable] [--limit-rate BYTES]`: a
// command-line client of the upload API. Streams each FILE as
// multipart/form-data (libcurl reads it from disk; it is never held in
// memory), with a progress bar on stderr when stderr is a terminal, and
// prints each job id. With --wait it follows every job over the push channel
// (the Server-Sent Events route, GET /api/chat/upload/events/:jobId; a
// dropped stream is resumed with Last-Event-ID) until it is final, and prints
// its status JSON. With --json, stdout carries one JSON object per file and
// nothing else: {"file","jobId","status"[,"result"|"error"]} (status
// "refused" with the server's error when the upload was not accepted).
// With --resumable each file goes with the tus protocol (tus_client.h): its
// upload URL is remembered, and running the same command again after an
// interruption sends only what the server does not hold yet. --limit-rate
// caps the bytes sent per second.
//
// Server and credentials: --url (default http://localhost:$PORT), --token or
// $CONVEYOR_TOKEN, or else a token minted for --user (default "cli") with
// $JWT_SECRET. Exit status: 0 when every file was accepted (and, with --wait,
// completed), 1 when any upload was refused or any job failed (the server's
// JSON error is printed), 2 bad usage.
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
