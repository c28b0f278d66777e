#include "core/log.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <memory>

namespace conveyor {
namespace {

thread_local LogContext t_context;

void AppendJsonString(std::string& out, std::string_view s) {
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);  // UTF-8 passes through
        }
    }
  }
  out += '"';
}

void AppendContextText(std::string& out, const LogContext& c) {
  if (!c.request_id.empty()) out.append(" request_id=").append(c.request_id);
  if (!c.job_id.empty()) out.append(" job_id=").append(c.job_id);
  if (!c.user_id.empty()) out.append(" user_id=").append(c.user_id);
}

// "2026-11-30T00:40:01.123Z" (json) or "2026-11-30 00:40:01.123" (text).
std::string FormatTime(spdlog::log_clock::time_point tp, bool iso) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(tp.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  std::snprintf(buf, sizeof buf, iso ? "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ"
                                     : "%04d-%02d-%02d %02d:%02d:%02d.%03d",
                tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(ms % 1000));
  return buf;
}

class ContextFormatter final : public spdlog::formatter {
 public:
  explicit ContextFormatter(LogFormat format) : format_(format) {}

  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    const auto level = spdlog::level::to_string_view(msg.level);
    const std::string_view message(msg.payload.data(), msg.payload.size());
    std::string line;
    if (format_ == LogFormat::kJson) {
      line = JsonLogLine(FormatTime(msg.time, true), std::string_view(level.data(), level.size()),
                         message, t_context);
    } else {
      line.reserve(64 + message.size());
      line.append("[").append(FormatTime(msg.time, false)).append("] [");
      line.append(level.data(), level.size()).append("] ");
      line.append(message);
      AppendContextText(line, t_context);
    }
    line += '\n';
    dest.append(line.data(), line.data() + line.size());
  }

  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<ContextFormatter>(format_);
  }

 private:
  const LogFormat format_;
};

}  // namespace

Result<LogFormat> ParseLogFormat(std::string_view s) {
  if (s == "json") return LogFormat::kJson;
  if (s == "text") return LogFormat::kText;
  return InvalidArgument("must be json or text");
}

void ConfigureLogging(LogFormat format) {
  spdlog::set_formatter(std::make_unique<ContextFormatter>(format));
}

const LogContext& CurrentLogContext() { return t_context; }

ScopedLogContext::ScopedLogContext(const LogContext& fields) : saved_(t_context) {
  if (!fields.request_id.empty()) t_context.request_id = fields.request_id;
  if (!fields.job_id.empty()) t_context.job_id = fields.job_id;
  if (!fields.user_id.empty()) t_context.user_id = fields.user_id;
}

ScopedLogContext::~ScopedLogContext() { t_context = std::move(saved_); }

std::string JsonLogLine(std::string_view time, std::string_view level, std::string_view message,
                        const LogContext& context) {
  std::string out;
  out.reserve(64 + message.size());
  out += "{\"time\":";
  AppendJsonString(out, time);
  out += ",\"level\":";
  AppendJsonString(out, level);
  out += ",\"message\":";
  AppendJsonString(out, message);
  if (!context.request_id.empty()) {
    out += ",\"request_id\":";
    AppendJsonString(out, context.request_id);
  }
  if (!context.job_id.empty()) {
    out += ",\"job_id\":";
    AppendJsonString(out, context.job_id);
  }
  if (!context.user_id.empty()) {
    out += ",\"user_id\":";
    AppendJsonString(out, context.user_id);
  }
  out += '}';
  return out;
}

bool IsValidRequestId(std::string_view id) {
  if (id.empty() || id.size() > kMaxRequestIdBytes) return false;
  for (char c : id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == ':' || c == '-';
    if (!ok) return false;
  }
  return true;
}

}  // namespace conveyor
