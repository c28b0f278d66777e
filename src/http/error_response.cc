// Errc -> HTTP status and JSON error body. The only such mapping in conveyor.
#include "http/internal/error_response.h"

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

namespace conveyor::http {
namespace {

struct CodeStatus {
  std::string_view code;
  int status;
};

// Specific codes whose HTTP status is not the one of their Errc.
constexpr CodeStatus kSpecificStatus[] = {
    {"payload_too_large", 413},
    {"rate_limited", 429},
    {"header_too_large", 431},
    {"method_not_allowed", 405},
    {"body_too_slow", 408},
    {"too_many_connections", 503},
    // The tus routes (tus_handler.cc).
    {"tus_version_unsupported", 412},
    {"upload_locked", 423},
    {"checksum_mismatch", 460},
    {"unsupported_media_type", 415},
};

struct ErrcMapping {
  int status;
  std::string_view code;
};

ErrcMapping MapErrc(Errc e) {
  switch (e) {
    case Errc::kInvalidArgument:
      return {400, "invalid_request"};
    case Errc::kUnauthenticated:
      return {401, "unauthorized"};
    // Another user's job is "not found", never "forbidden": ids are not confirmed.
    case Errc::kNotFound:
    case Errc::kPermissionDenied:
      return {404, "not_found"};
    case Errc::kResourceExhausted:
      return {413, "payload_too_large"};
    case Errc::kAlreadyExists:
    case Errc::kFailedPrecondition:
    case Errc::kAborted:
      return {409, "conflict"};
    case Errc::kUnavailable:
    case Errc::kCancelled:
      return {503, "service_unavailable"};
    case Errc::kDeadlineExceeded:
      return {503, "timeout"};
    case Errc::kOk:  // an OK status here is a bug; answer as one
    case Errc::kDataLoss:
    case Errc::kInternal:
    case Errc::kUnimplemented:
      return {500, "internal_error"};
  }
  return {500, "internal_error"};
}

}  // namespace

Response ErrorResponse(const Status& status, std::string_view code, std::string_view request_id) {
  ErrcMapping m = MapErrc(status.code());
  if (!code.empty()) {
    m.code = code;
    for (const auto& cs : kSpecificStatus) {
      if (cs.code == code) m.status = cs.status;
    }
  }
  std::string message = status.message();
  if (m.status >= 500) {
    // Internal detail stays in the log; the client learns only the class.
    spdlog::error("request {}: {} ({})", request_id, status.ToString(), m.code);
    message = m.status == 503 ? "service temporarily unavailable, retry later" : "internal error";
  }
  nlohmann::json body = {{"success", false},
                         {"error", {{"code", m.code}, {"message", std::move(message)}}}};
  Response r;
  r.status = m.status;
  r.body = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return r;
}

Response StoreErrorResponse(const Status& status, std::string_view request_id) {
  switch (status.code()) {
    case Errc::kNotFound:
    case Errc::kPermissionDenied:
      return ErrorResponse(NotFound("not found"), {}, request_id);
    case Errc::kInvalidArgument:
    case Errc::kFailedPrecondition:
    case Errc::kAlreadyExists:
      spdlog::warn("request {}: refused by the store: {}", request_id, status.ToString());
      return ErrorResponse(InvalidArgument("the request was refused as invalid"),
                           "invalid_request", request_id);
    default:
      return ErrorResponse(status, {}, request_id);  // 5xx: detail logged, not sent
  }
}

Response SuccessResponse(int status, std::string_view data_json) {
  Response r;
  r.status = status;
  r.body.reserve(data_json.size() + 26);
  r.body.append(R"({"success":true,"data":)").append(data_json).append("}");
  return r;
}

}  // namespace conveyor::http
