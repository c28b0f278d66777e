// libFuzzer target for request routing: the route table's matching with
// :params (http/internal/routing.h, MatchRoute over Routes() in routes.cc)
// and the query string of the search route (http/internal/query.h).
//
// Input: "METHOD TARGET", e.g. "GET /api/chat/memory/search?session_id=s&q=x";
// the target is split at its first '?' as the session does.
//
// Invariants: a match has the request's method, one non-empty,
// slash-free param per :segment of its pattern, and putting the params back
// into the pattern gives the path; method_mismatch means some row of another
// method matches the path and none of this method does; no match means no
// row's pattern matches. Search parameters that parse have a non-empty
// session_id and q, the last values given, and a limit in 1..kSearchMaxLimit
// written as decimal digits; FormDecode undoes percent-encoding of any bytes.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "core/ids.h"
#include "http/internal/query.h"
#include "http/internal/routing.h"

namespace {

using namespace conveyor::http;

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "router_fuzz: invariant broken: %s\n", what);
    std::abort();
  }
}

std::vector<std::string_view> Segments(std::string_view s) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (true) {
    size_t slash = s.find('/', start);
    out.push_back(s.substr(start, slash - start));
    if (slash == std::string_view::npos) return out;
    start = slash + 1;
  }
}

// The oracle: segment by segment, a ":name" segment takes any non-empty one.
bool Matches(std::string_view pattern, std::string_view path, std::vector<std::string>* params) {
  params->clear();
  if (path.empty() || path[0] != '/') return false;
  std::vector<std::string_view> ps = Segments(pattern), ss = Segments(path);
  if (ps.size() != ss.size()) return false;
  for (size_t i = 0; i < ps.size(); ++i) {
    if (!ps[i].empty() && ps[i][0] == ':') {
      if (ss[i].empty()) return false;
      params->emplace_back(ss[i]);
    } else if (ps[i] != ss[i]) {
      return false;
    }
  }
  return true;
}

void CheckRoute(std::string_view method, std::string_view path) {
  RouteMatch m = MatchRoute(method, path);
  const Route* expected = nullptr;
  std::vector<std::string> expected_params, params;
  bool other_method = false;
  for (const Route& r : Routes()) {
    if (!Matches(r.pattern, path, &params)) continue;
    if (r.method == method) {
      if (expected == nullptr) expected = &r, expected_params = params;
    } else {
      other_method = true;
    }
  }
  Check(m.route == expected, "MatchRoute picked another row than the oracle");
  if (m.route != nullptr) {
    Check(m.route->method == method, "matched a row of another method");
    Check(m.params == expected_params, "params differ from the oracle");
    std::string rebuilt;
    size_t next = 0;
    bool first = true;
    for (std::string_view seg : Segments(m.route->pattern)) {
      if (!first) rebuilt += '/';
      first = false;
      if (!seg.empty() && seg[0] == ':') {
        Check(next < m.params.size(), "fewer params than :segments");
        Check(!m.params[next].empty() && m.params[next].find('/') == std::string::npos,
              "empty param or param with a slash");
        rebuilt += m.params[next++];
      } else {
        rebuilt += seg;
      }
    }
    Check(next == m.params.size(), "more params than :segments");
    Check(rebuilt == path, "params put back into the pattern do not give the path");
  } else {
    Check(m.params.empty(), "params without a match");
    Check(m.method_mismatch == other_method, "method_mismatch disagrees with the oracle");
  }
}

std::string PercentEncode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    out += '%';
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out;
}

void CheckQuery(std::string_view query) {
  // The oracle's view: last values, and whether the whole string decodes.
  std::string session_id, q, limit_text;
  bool has_limit = false;
  bool ok = ParseQuery(query, [&](std::string& k, std::string& v) {
    Check(k.size() + v.size() <= query.size(), "decoded pair longer than the query");
    if (k == "session_id") session_id = v;
    if (k == "q") q = v;
    if (k == "limit") limit_text = v, has_limit = true;
    std::string again;
    Check(FormDecode(PercentEncode(v), &again) && again == v, "FormDecode does not undo %XX");
  });
  std::string_view code = "unset";
  auto search = ParseSearchQuery(query, &code);
  if (!search.ok()) {
    Check(search.code() == conveyor::Errc::kInvalidArgument, "search error is not kInvalidArgument");
    Check(code.empty() || code == "missing_session_id" || code == "missing_query" ||
              code == "invalid_session_id" || code == "invalid_query",
          "unknown error code");
    if (code == "invalid_session_id") {
      Check(!conveyor::CheckSessionId(session_id).ok(), "a valid session_id refused");
    }
    if (code == "invalid_query") Check(!conveyor::IsValidUtf8(q), "a valid q refused");
    return;
  }
  Check(code.empty(), "error code set on success");
  Check(conveyor::CheckSessionId(search->session_id).ok(), "an invalid session_id accepted");
  Check(conveyor::IsValidUtf8(search->q), "a q that is not UTF-8 accepted");
  Check(ok, "search parameters from a malformed query string");
  Check(search->session_id == session_id && !session_id.empty(), "session_id is not the last one");
  Check(search->q == q && !q.empty(), "q is not the last one");
  Check(search->limit >= 1 && search->limit <= kSearchMaxLimit, "limit out of range");
  if (has_limit) {
    size_t i = 0;
    while (i < limit_text.size() && (limit_text[i] == ' ' || (limit_text[i] >= '\t' && limit_text[i] <= '\r'))) ++i;
    if (i < limit_text.size() && limit_text[i] == '+') ++i;
    Check(i < limit_text.size(), "limit without digits");
    for (; i < limit_text.size(); ++i) {
      Check(limit_text[i] >= '0' && limit_text[i] <= '9', "limit with a non-digit accepted");
    }
  } else {
    Check(search->limit == kSearchDefaultLimit, "default limit not applied");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  size_t space = input.find(' ');
  std::string_view method = space == std::string_view::npos ? "GET" : input.substr(0, space);
  std::string_view target = space == std::string_view::npos ? input : input.substr(space + 1);
  size_t q = target.find('?');
  std::string_view path = target.substr(0, q);
  std::string_view query = q == std::string_view::npos ? std::string_view() : target.substr(q + 1);
  CheckRoute(method, path);
  CheckQuery(query);
  return 0;
}
