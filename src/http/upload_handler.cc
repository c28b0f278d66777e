// POST /api/chat/upload/async (see http/internal/upload_handler.h).
#include "http/internal/upload_handler.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <string>
#include <utility>

#include "core/ids.h"
#include "core/log.h"
#include "http/internal/error_response.h"
#include "http/internal/metrics.h"
#include "http/internal/rate_limiter.h"
#include "http/multipart.h"
#include "http/server.h"
#include "uploads/group_commit.h"
#include "uploads/upload_form.h"
#include "uploads/uploads.h"

namespace conveyor::http {
namespace {

int64_t MonotonicMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// An upload that could not be stored. The form was checked before, so the
// error comes from the disk or the database: its text (paths, SQL, server
// messages) goes to the log only.
Response NotStored(const Status& s, const std::string& request_id) {
  if (s.code() == Errc::kInvalidArgument) return StoreErrorResponse(s, request_id);
  // Nothing was accepted (the blob is gone, no row): the client may retry.
  spdlog::error("request {}: upload not stored: {}", request_id, s.ToString());
  return ErrorResponse(Unavailable(s.message()), {}, request_id);
}

class UploadBody final : public BodyConsumer {
 public:
  UploadBody(const HandlerEnv& env, std::string boundary, const Request& req)
      : env_(env),
        form_(*env.blobs, std::move(boundary), NewUuid(), env.settings->max_upload_bytes),
        user_id_(req.user_id),
        request_id_(req.request_id),
        start_(req.start) {}

  std::optional<Response> Feed(std::string_view bytes) override {
    Status s = form_.Feed(bytes);
    if (s.ok()) return std::nullopt;
    return ErrorResponse(s, form_.error_code(), request_id_);
  }

  void Finish(std::function<void(Response)> done) override {
    auto up = form_.Finish(std::move(user_id_));
    if (!up) return done(ErrorResponse(up.status(), form_.error_code(), request_id_));
    auto row = uploads::Seal(std::move(*up), form_.sink(), env_.settings->upload_fsync);
    if (!row) return done(NotStored(row.status(), request_id_));
    row->request_id = request_id_;  // travels in the job's data to the worker's logs
    const std::string user_id = row->user_id;
    // The rest happens on the committer thread, in a group with the uploads
    // that finished about now; this pool thread is free at once.
    env_.committer->Submit(
        std::move(*row), [done = std::move(done), request_id = request_id_, start = start_,
                          metrics = env_.metrics, user_id](Result<uploads::AcceptOutcome> r) {
          ScopedLogContext log_context({request_id, r ? r->job_id : "", user_id});
          if (!r) return done(NotStored(r.status(), request_id));
          spdlog::info("upload accepted{}", r->enqueued ? "" : " (job left to the reconciler)");
          metrics->UploadAccepted(
              std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
          std::string data;
          data.reserve(80);
          data.append(R"({"jobId":")").append(r->job_id).append(R"(","status":"pending"})");
          done(SuccessResponse(202, data));
        });
  }

 private:
  HandlerEnv env_;
  uploads::UploadForm form_;
  std::string user_id_;
  std::string request_id_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace

StreamStart StartUpload(const Request& req, HandlerEnv& env) {
  if (!req.chunked && req.content_length == 0) {
    return ErrorResponse(InvalidArgument("a multipart/form-data body is required"),
                         "malformed_body", req.request_id);
  }
  auto boundary = BoundaryFromContentType(req.content_type);
  if (!boundary) {
    return ErrorResponse(InvalidArgument("Content-Type must be multipart/form-data with a boundary"),
                         "malformed_body", req.request_id);
  }
  int64_t retry_after_s = 0;
  if (!env.limiter->Allow(req.user_id, MonotonicMs(), &retry_after_s)) {
    Response resp = ErrorResponse(ResourceExhausted("too many uploads; retry later"),
                                  "rate_limited", req.request_id);
    resp.retry_after_s = retry_after_s;
    return resp;
  }
  return std::unique_ptr<BodyConsumer>(
      std::make_unique<UploadBody>(env, std::move(*boundary), req));
}

}  // namespace conveyor::http
