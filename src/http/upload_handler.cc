// POST /api/chat/upload/async (see http/internal/upload_handler.h).
#include "http/internal/upload_handler.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <optional>
#include <string>
#include <utility>

#include "core/ids.h"
#include "core/log.h"
#include "http/internal/error_response.h"
#include "http/internal/metrics.h"
#include "http/internal/rate_limiter.h"
#include "http/multipart.h"
#include "http/server.h"
#include "queue/limits.h"
#include "uploads/group_commit.h"
#include "uploads/priority.h"
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

// The per-process bucket (RATE_LIMIT_PER_MINUTE): the only limit without
// shared limits, and the fallback while Redis cannot be reached.
std::optional<Response> LocalLimit(const HandlerEnv& env, const std::string& user,
                                   const std::string& request_id) {
  int64_t retry_after_s = 0;
  if (env.limiter->Allow(user, MonotonicMs(), &retry_after_s)) return std::nullopt;
  Response resp = ErrorResponse(ResourceExhausted("too many uploads; retry later"),
                                "rate_limited", request_id);
  resp.retry_after_s = retry_after_s;
  return resp;
}

class UploadBody final : public BodyConsumer {
 public:
  UploadBody(const HandlerEnv& env, std::string boundary, const Request& req)
      : env_(env),
        job_id_(NewJobId()),
        form_(*env.blobs, std::move(boundary), job_id_, env.settings->max_upload_bytes),
        user_id_(req.user_id),
        tier_(uploads::ParseTier(req.tier)),
        request_id_(req.request_id),
        declared_bytes_(req.chunked ? 0 : static_cast<int64_t>(req.content_length)),
        start_(req.start) {}

  std::optional<Response> Feed(std::string_view bytes) override {
    if (!checked_) {
      if (auto refused = CheckLimits()) return refused;
    }
    Status s = form_.Feed(bytes);
    if (s.ok()) return std::nullopt;
    ReleaseSlot();
    return ErrorResponse(s, form_.error_code(), request_id_);
  }

  void Finish(std::function<void(Response)> done) override {
    if (!checked_) {
      if (auto refused = CheckLimits()) return done(std::move(*refused));
    }
    std::string user = user_id_;
    auto up = form_.Finish(std::move(user_id_));
    if (!up) {
      ReleaseSlot(user);
      return done(ErrorResponse(up.status(), form_.error_code(), request_id_));
    }
    auto row = uploads::Seal(std::move(*up), form_.sink(), env_.settings->upload_fsync);
    if (!row) {
      ReleaseSlot(user);
      return done(NotStored(row.status(), request_id_));
    }
    row->request_id = request_id_;  // travels in the job's data to the worker's logs
    if (reserved_ && declared_bytes_ == 0) {
      // A chunked body: its bytes are known only now.
      if (auto charged = env_.user_limits->ChargeBytes(user, row->size_bytes); !charged) {
        spdlog::warn("request {}: upload limits: {}", request_id_, charged.status().ToString());
      }
    }
    uploads::PrioritySettings prio;
    prio.aging_ms = env_.settings->priority_aging_ms;
    prio.in_flight_step = env_.settings->priority_in_flight_step;
    uploads::QueueOrder order;
    order.priority = uploads::JobPriority(tier_, row->size_bytes, in_flight_, prio);
    order.aging_ms = prio.aging_ms;
    const std::string user_id = row->user_id;
    // The rest happens on the committer thread, in a group with the uploads
    // that finished about now; this pool thread is free at once.
    env_.committer->Submit(
        std::move(*row),
        [done = std::move(done), request_id = request_id_, start = start_,
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
        },
        order);
  }

 private:
  // The user's shared limits (one round trip to Redis, on the pool, before
  // the first body byte is stored). Redis unreachable: the upload is let in
  // under the per-process bucket alone (see the README).
  std::optional<Response> CheckLimits() {
    checked_ = true;
    if (env_.user_limits == nullptr) return std::nullopt;  // checked in StartUpload
    auto d = env_.user_limits->Reserve(user_id_, job_id_, declared_bytes_);
    if (!d) {
      spdlog::warn("request {}: upload limits unavailable, per-process limit only: {}",
                   request_id_, d.status().ToString());
      return LocalLimit(env_, user_id_, request_id_);
    }
    in_flight_ = d->in_flight;
    if (d->allowed) {
      reserved_ = true;
      return std::nullopt;
    }
    Response resp = ErrorResponse(
        ResourceExhausted("too many uploads (" + d->exceeded + "); retry later"), "rate_limited",
        request_id_);
    resp.retry_after_s = d->retry_after_s;
    return resp;
  }

  // An upload refused after it was let in gives back its in-flight slot.
  void ReleaseSlot(const std::string& user) {
    if (!reserved_) return;
    reserved_ = false;
    if (auto r = env_.user_limits->Release(user, job_id_); !r) {
      spdlog::warn("request {}: upload limits: {}", request_id_, r.status().ToString());
    }
  }
  void ReleaseSlot() { ReleaseSlot(user_id_); }

  HandlerEnv env_;
  std::string job_id_;
  uploads::UploadForm form_;
  std::string user_id_;
  uploads::Tier tier_;
  std::string request_id_;
  int64_t declared_bytes_;  // Content-Length; 0 for a chunked body
  std::chrono::steady_clock::time_point start_;
  bool checked_ = false;
  bool reserved_ = false;  // Reserve let it in (an in-flight slot is held)
  int64_t in_flight_ = 0;  // the user's uploads in flight before this one
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
  // Shared limits need Redis, so they are checked on the pool with the
  // first body bytes (UploadBody::Feed); the per-process bucket here.
  if (env.user_limits == nullptr) {
    if (auto refused = LocalLimit(env, req.user_id, req.request_id)) return std::move(*refused);
  }
  return std::unique_ptr<BodyConsumer>(
      std::make_unique<UploadBody>(env, std::move(*boundary), req));
}

}  // namespace conveyor::http
