#include "http/internal/query.h"

#include "core/ids.h"

#include <algorithm>
#include <cstdlib>

namespace conveyor::http {
namespace {

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

bool FormDecode(std::string_view in, std::string* out) {
  out->clear();
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '+') {
      out->push_back(' ');
    } else if (c == '%') {
      int hi = i + 1 < in.size() ? HexDigit(in[i + 1]) : -1;
      int lo = i + 2 < in.size() ? HexDigit(in[i + 2]) : -1;
      if (hi < 0 || lo < 0) return false;
      out->push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else {
      out->push_back(c);
    }
  }
  return true;
}

bool ParseQuery(std::string_view query,
                const std::function<void(std::string& key, std::string& value)>& fn) {
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (pair.empty()) continue;
    size_t eq = pair.find('=');
    std::string key, value;
    if (!FormDecode(pair.substr(0, eq), &key)) return false;
    if (eq != std::string_view::npos && !FormDecode(pair.substr(eq + 1), &value)) return false;
    fn(key, value);
  }
  return true;
}

Result<SearchQuery> ParseSearchQuery(std::string_view query, std::string_view* code) {
  std::string_view ignored;
  if (code == nullptr) code = &ignored;
  *code = {};
  SearchQuery out;
  std::string limit_text;
  bool has_limit = false;
  if (!ParseQuery(query, [&](std::string& key, std::string& value) {
        if (key == "session_id")
          out.session_id.swap(value);
        else if (key == "q")
          out.q.swap(value);
        else if (key == "limit")
          limit_text.swap(value), has_limit = true;
      })) {
    return InvalidArgument("malformed query string");
  }
  if (out.session_id.empty()) {
    *code = "missing_session_id";
    return InvalidArgument("session_id is required");
  }
  if (Status s = CheckSessionId(out.session_id); !s.ok()) {
    *code = "invalid_session_id";
    return s;
  }
  if (!IsValidUtf8(out.q)) {
    *code = "invalid_query";
    return InvalidArgument("q is not valid UTF-8");
  }
  if (out.q.empty()) {
    *code = "missing_query";
    return InvalidArgument("q is required");
  }
  if (has_limit) {
    char* end = nullptr;
    long v = std::strtol(limit_text.c_str(), &end, 10);
    // `end` must reach the end of the text, not a %00 inside it.
    if (limit_text.empty() || end != limit_text.c_str() + limit_text.size() || v < 1) {
      return InvalidArgument("limit must be a positive integer");
    }
    out.limit = static_cast<int>(std::min<long>(v, kSearchMaxLimit));
  }
  return out;
}

}  // namespace conveyor::http
