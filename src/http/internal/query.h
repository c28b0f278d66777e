// File: http/internal/query.h
//
// Query strings (application/x-www-form-urlencoded) and the search route's
// parameters, kept apart from the handlers (routes.cc) so they can be tested
// and fuzzed alone: pure functions, no server or store.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "core/error.h"

namespace conveyor::http {

// One decoded component: '+' is a space, %XX a byte (any byte, NUL
// included). False for a broken %-escape.
bool FormDecode(std::string_view in, std::string* out);

// Calls `fn(key, value)` for each '&'-separated pair of `query` (after the
// '?', still encoded), decoded, in order. Empty pairs are skipped; a pair
// without '=' has an empty value. False at the first broken %-escape (`fn`
// has then seen the pairs before it). `fn` may move from its arguments.
bool ParseQuery(std::string_view query,
                const std::function<void(std::string& key, std::string& value)>& fn);

inline constexpr int kSearchDefaultLimit = 10;
inline constexpr int kSearchMaxLimit = 50;

// GET /api/chat/memory/search?session_id=S&q=TEXT&limit=N
struct SearchQuery {
  std::string session_id;  // required, non-empty
  std::string q;           // required, non-empty
  int limit = kSearchDefaultLimit;  // 1..kSearchMaxLimit (larger asks are capped)
};

// The search route's parameters; a repeated parameter takes its last value,
// unknown ones are ignored. kInvalidArgument for a malformed query string, a
// missing or empty session_id or q, or a limit that is not a positive decimal
// integer; then `*code` (when not null) is the specific error code the
// response carries ("missing_session_id", "missing_query"), or empty when the
// generic one applies.
Result<SearchQuery> ParseSearchQuery(std::string_view query, std::string_view* code);

}  // namespace conveyor::http
