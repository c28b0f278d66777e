// File: core/log.h
//
// Structured logging on top of spdlog: the output format (LOG_FORMAT) and
// the context a line carries (request id, job id, user id).
//
//   json: one JSON object per line:
//     {"time":"2026-11-30T00:40:01.123Z","level":"info","message":"…",
//      "request_id":"…","job_id":"…","user_id":"…"}
//     the last three only where known (non-empty in the current context).
//   text: "[2026-11-30 00:40:01.123] [info] message request_id=… job_id=…"
//
// The context is per thread: ScopedLogContext sets fields for the code it
// encloses (a request's handler, a job's run) and restores the previous ones
// when it ends; a field left empty keeps the enclosing value. spdlog's
// default logger is synchronous, so a line is formatted on the thread that
// logs it, where the context is set.
//
// Threads: ConfigureLogging once at start-up, before other threads log.
#pragma once

#include <string>
#include <string_view>

#include "core/error.h"

namespace conveyor {

enum class LogFormat { kText, kJson };

// "json" or "text".
Result<LogFormat> ParseLogFormat(std::string_view s);

// Installs the format on spdlog's default logger.
void ConfigureLogging(LogFormat format);

struct LogContext {
  std::string request_id;
  std::string job_id;
  std::string user_id;
};

// This thread's current context (empty fields: unknown).
const LogContext& CurrentLogContext();

class ScopedLogContext {
 public:
  // Non-empty fields of `fields` override the enclosing context.
  explicit ScopedLogContext(const LogContext& fields);
  ~ScopedLogContext();
  ScopedLogContext(const ScopedLogContext&) = delete;
  ScopedLogContext& operator=(const ScopedLogContext&) = delete;

 private:
  LogContext saved_;
};

// One JSON log line (no newline) as the json format writes it; for tests.
std::string JsonLogLine(std::string_view time, std::string_view level, std::string_view message,
                        const LogContext& context);

// A request id a client may choose: 1..kMaxRequestIdBytes of [A-Za-z0-9._:-].
inline constexpr size_t kMaxRequestIdBytes = 128;
bool IsValidRequestId(std::string_view id);

}  // namespace conveyor
