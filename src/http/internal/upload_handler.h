// File: http/internal/upload_handler.h
//
// POST /api/chat/upload/async: the streaming handler of the route table's
// upload row (upload_handler.cc). Before the body: the multipart boundary
// and, without shared limits, the per-process rate limit. With the first
// body buffer (on the pool): the user's limits shared through Redis
// (queue/limits.h; Redis unreachable: the per-process limit instead), whose
// answer also gives the user's uploads in flight for the job's priority
// (uploads/priority.h, with the token's tier). Then each body buffer goes to an
// uploads::UploadForm (parse, hash, write) and, once the body is complete,
// the form is checked, the blob sealed and the row handed to the server's
// GroupCommitter; the 202 (or the error) is answered when its group commit
// is done. No Beast or Asio types: the session feeds the bytes.
#pragma once

#include "http/internal/routing.h"

namespace conveyor::http {

StreamStart StartUpload(const Request& req, HandlerEnv& env);

}  // namespace conveyor::http
