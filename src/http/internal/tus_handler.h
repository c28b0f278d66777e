// File: http/internal/tus_handler.h
//
// Resumable uploads with the tus 1.0 protocol (https://tus.io/protocols/
// resumable-upload), extensions creation, creation-with-upload,
// termination, checksum (sha256) and expiration, under
// /api/chat/upload/tus (rows in routes.cc; README "Resumable uploads"):
//
//   OPTIONS /api/chat/upload/tus      204: Tus-Version, Tus-Extension,
//                                     Tus-Max-Size, Tus-Checksum-Algorithm
//   POST    /api/chat/upload/tus      creation (+ data): 201, Location
//   HEAD    /api/chat/upload/tus/:id  200: Upload-Offset, Upload-Length, ...
//   PATCH   /api/chat/upload/tus/:id  bytes at Upload-Offset: 204
//   DELETE  /api/chat/upload/tus/:id  termination: 204
//
// The protocol is parsed here; the bytes and records are uploads::TusStore's
// (uploads/tus_store.h). The upload id is the future job id. The PATCH (or
// creation) that brings an upload to its length hands it to the multipart
// path (uploads::CompleteTusUpload: blob with SHA-256, fsync, row and job
// through the server's GroupCommitter), and its answer, like every later
// HEAD, carries `Upload-Job-Id`. Limits as the multipart route: Upload-Length
// over MAX_UPLOAD_BYTES is 413 at creation; the per-user limits
// (queue/limits.h, or the per-process bucket) are taken at creation, with
// Upload-Length as the bytes. Status codes: 412 (Tus-Resumable missing or
// not 1.0.0, with Tus-Version), 415 (PATCH without
// application/offset+octet-stream), 409 (Upload-Offset is not the upload's),
// 413 (a body past Upload-Length; nothing past it is stored), 423 (another
// PATCH holds the upload), 460 (Upload-Checksum mismatch: the chunk is
// dropped, the offset stays), 404 (unknown, expired or another user's id).
// Bodies stream through the session's BodyConsumer machinery, bounded by the
// body timeouts and minimum rate like any upload.
#pragma once

#include "http/internal/routing.h"

namespace conveyor::http {

Response TusOptions(const Request& req, HandlerEnv& env);
StreamStart TusCreate(const Request& req, HandlerEnv& env);
Response TusHead(const Request& req, HandlerEnv& env);
StreamStart TusPatch(const Request& req, HandlerEnv& env);
Response TusDelete(const Request& req, HandlerEnv& env);

}  // namespace conveyor::http
