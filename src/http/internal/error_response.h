// File: http/internal/error_response.h
//
// The one place where an error becomes an HTTP status and a JSON body
// (error_response.cc). The body is always
//   {"success":false,"error":{"code":"snake_case","message":"..."}}
// `code` names the specific problem when the caller knows one (missing_file,
// rate_limited, ...); otherwise it follows from the Errc. Some specific codes
// pick their own status (rate_limited 429, payload_too_large 413,
// header_too_large 431, method_not_allowed 405). kInternal (and any 5xx) never
// shows the Status message to the client: it goes to the log with
// `request_id`.
#pragma once

#include <cstdint>
#include <string_view>

#include "core/error.h"
#include "http/internal/routing.h"

namespace conveyor::http {

Response ErrorResponse(const Status& status, std::string_view code = {}, uint64_t request_id = 0);

// {"success":true,"data":<data_json>} with `status`.
Response SuccessResponse(int status, std::string_view data_json);

}  // namespace conveyor::http
