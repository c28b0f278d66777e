// The OpenAPI document (src/http/openapi.json, compiled in) against the route
// table: every route the server serves is documented with its method, and
// every documented path and method is served. The document's validity
// against the OpenAPI 3.1 schema is checked by tests/interop/openapi.test.mjs
// (@apidevtools/swagger-parser).
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "http/internal/embedded_files.h"
#include "http/internal/routing.h"

namespace conveyor::http {
namespace {

using nlohmann::json;

json Document() {
  const EmbeddedFile* f = FindEmbeddedFile("src/http/openapi.json");
  if (f == nullptr) return json();
  return json::parse(f->body, nullptr, /*allow_exceptions=*/false);
}

// "/api/x/:jobId" -> "/api/x/{jobId}"
std::string OpenApiPath(std::string_view pattern) {
  std::string out;
  size_t i = 0;
  while (i < pattern.size()) {
    if (pattern[i] == ':') {
      size_t end = pattern.find('/', i);
      if (end == std::string_view::npos) end = pattern.size();
      out += "{" + std::string(pattern.substr(i + 1, end - i - 1)) + "}";
      i = end;
    } else {
      out += pattern[i++];
    }
  }
  return out;
}

// "/api/x/{jobId}" with each parameter replaced by a plausible value.
std::string Concrete(const std::string& path) {
  std::string out;
  for (size_t i = 0; i < path.size(); ++i) {
    if (path[i] == '{') {
      i = path.find('}', i);
      out += "6f1c2d3e-4a5b-4c6d-8e7f-8091a2b3c4d5";
    } else {
      out += path[i];
    }
  }
  return out;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

TEST(OpenApi, IsEmbeddedAndParses) {
  json doc = Document();
  ASSERT_TRUE(doc.is_object()) << "openapi.json is missing or not JSON";
  EXPECT_EQ(doc["openapi"], "3.1.0");
  EXPECT_TRUE(doc["paths"].is_object());
  EXPECT_TRUE(doc["components"]["schemas"].contains("Error"));
}

TEST(OpenApi, EveryServedRouteIsDocumented) {
  json doc = Document();
  ASSERT_TRUE(doc.is_object());
  for (const Route& r : Routes()) {
    std::string path = OpenApiPath(r.pattern);
    ASSERT_TRUE(doc["paths"].contains(path)) << path << " is served but not documented";
    EXPECT_TRUE(doc["paths"][path].contains(Lower(r.method)))
        << r.method << " " << path << " is served but not documented";
  }
}

TEST(OpenApi, EveryDocumentedOperationIsServed) {
  json doc = Document();
  ASSERT_TRUE(doc.is_object());
  const std::set<std::string> kMethods = {"get", "put", "post", "delete", "patch", "head",
                                          "options"};
  int operations = 0;
  for (const auto& [path, item] : doc["paths"].items()) {
    for (const auto& [method, op] : item.items()) {
      if (kMethods.count(method) == 0) continue;
      ++operations;
      std::string upper = method;
      std::transform(upper.begin(), upper.end(), upper.begin(),
                     [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
      RouteMatch m = MatchRoute(upper, Concrete(path));
      ASSERT_NE(m.route, nullptr) << upper << " " << path << " is documented but not served";
      EXPECT_EQ(OpenApiPath(m.route->pattern), path);
    }
  }
  EXPECT_EQ(operations, static_cast<int>(Routes().size()));
}

TEST(OpenApi, AuthenticatedRoutesDeclareTheBearerScheme) {
  json doc = Document();
  ASSERT_TRUE(doc.is_object());
  ASSERT_EQ(doc["security"], json::parse(R"([{"bearer":[]}])"));
  for (const Route& r : Routes()) {
    const json& op = doc["paths"][OpenApiPath(r.pattern)][Lower(r.method)];
    // An operation without its own `security` inherits the bearer scheme.
    bool open = op.contains("security") && op["security"] == json::array();
    EXPECT_EQ(open, r.auth == Auth::kNone) << r.method << " " << r.pattern;
    if (r.auth == Auth::kUser) {
      EXPECT_TRUE(op["responses"].contains("401")) << r.method << " " << r.pattern;
    }
  }
}

}  // namespace
}  // namespace conveyor::http
