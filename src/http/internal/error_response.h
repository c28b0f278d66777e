// File: http/internal/error_response.h
//
// The one place where an error becomes an HTTP status and a JSON body
// (error_response.cc). The body is always
//   {"success":false,"error":{"code":"snake_case","message":"..."}}
// `code` names the specific problem when the caller knows one (missing_file,
// rate_limited, ...); otherwise it follows from the Errc. Some specific codes
// pick their own status (rate_limited 429, payload_too_large 413,
// header_too_large 431, method_not_allowed 405, body_too_slow 408,
// too_many_connections 503). kInternal (and any 5xx) never shows the Status
// message to the client: it goes to the log with `request_id`.
#pragma once

#include <cstdint>
#include <string_view>

#include "core/error.h"
#include "http/internal/routing.h"

namespace conveyor::http {

Response ErrorResponse(const Status& status, std::string_view code = {}, std::string_view request_id = {});

// An error from the metadata store, blob store or queue: its message may hold
// database text (SQL, constraint names, server messages), so the client gets
// a fixed message for the class (400 invalid_request, 404, 503, 500) and the
// log gets the detail with `request_id`.
Response StoreErrorResponse(const Status& status, std::string_view request_id);

// {"success":true,"data":<data_json>} with `status`.
Response SuccessResponse(int status, std::string_view data_json);

}  // namespace conveyor::http
