#include "http/internal/error_response.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace conveyor::http {
namespace {

using nlohmann::json;

TEST(ErrorResponse, MapsEachCodeToStatusAndJson) {
  struct Case {
    Status status;
    std::string_view code;
    int http;
    std::string json_code;
  } cases[] = {
      {InvalidArgument("x"), {}, 400, "invalid_request"},
      {InvalidArgument("x"), "missing_file", 400, "missing_file"},
      {Unauthenticated("x"), {}, 401, "unauthorized"},
      {NotFound("x"), {}, 404, "not_found"},
      {Status(Errc::kPermissionDenied, "x"), {}, 404, "not_found"},
      {ResourceExhausted("x"), {}, 413, "payload_too_large"},
      {ResourceExhausted("x"), "rate_limited", 429, "rate_limited"},
      {InvalidArgument("x"), "header_too_large", 431, "header_too_large"},
      {InvalidArgument("x"), "method_not_allowed", 405, "method_not_allowed"},
      {Unavailable("x"), {}, 503, "service_unavailable"},
      {Internal("secret detail"), {}, 500, "internal_error"},
  };
  for (const auto& c : cases) {
    Response r = ErrorResponse(c.status, c.code);
    EXPECT_EQ(r.status, c.http) << c.status.ToString();
    json j = json::parse(r.body);
    EXPECT_EQ(j["success"], false);
    EXPECT_EQ(j["error"]["code"], c.json_code);
    EXPECT_TRUE(j["error"]["message"].is_string());
  }
}

TEST(ErrorResponse, InternalDetailNeverReachesTheClient) {
  Response r = ErrorResponse(Internal("sqlite: disk I/O error at /var/db"));
  EXPECT_EQ(r.body.find("sqlite"), std::string::npos);
  r = ErrorResponse(Unavailable("redis at 10.0.0.5 refused"));
  EXPECT_EQ(r.body.find("10.0.0.5"), std::string::npos);
}

TEST(SuccessResponse, WrapsData) {
  Response r = SuccessResponse(202, R"({"jobId":"a","status":"pending"})");
  EXPECT_EQ(r.status, 202);
  EXPECT_EQ(json::parse(r.body),
            json::parse(R"({"success":true,"data":{"jobId":"a","status":"pending"}})"));
}

}  // namespace
}  // namespace conveyor::http
