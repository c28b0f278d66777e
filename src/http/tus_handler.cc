// The tus 1.0 routes (see http/internal/tus_handler.h). Each handler checks
// the protocol's fields from the request head (no I/O: the TusStore keeps
// every record in memory), then the bytes go to a TusStore::Patch on the
// blocking pool as they arrive; the answer comes once they are durable and,
// for the last ones, once the upload became a job.
#include "http/internal/tus_handler.h"

#include <openssl/evp.h>
#include <spdlog/spdlog.h>

#include <charconv>
#include <chrono>
#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <variant>

#include "core/ids.h"
#include "core/log.h"
#include "http/internal/error_response.h"
#include "http/internal/metrics.h"
#include "http/internal/rate_limiter.h"
#include "http/internal/tus_fields.h"
#include "http/server.h"
#include "queue/limits.h"
#include "storage/metadata_store.h"
#include "uploads/priority.h"
#include "uploads/tus_store.h"
#include "uploads/uploads.h"

namespace conveyor::http {
namespace {

constexpr std::string_view kTusVersion = "1.0.0";
constexpr std::string_view kExtensions =
    "creation,creation-with-upload,termination,checksum,expiration";
constexpr std::string_view kOffsetOctetStream = "application/offset+octet-stream";
constexpr std::string_view kUploadPath = "/api/chat/upload/tus/";

int64_t MonotonicMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

bool IEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// A non-negative decimal integer field; nullopt when absent or malformed.
std::optional<int64_t> ParseCount(std::string_view v) {
  v = Trim(v);
  if (v.empty()) return std::nullopt;
  int64_t out = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (ec != std::errc() || p != v.data() + v.size() || out < 0) return std::nullopt;
  return out;
}

// "Wed, 25 Jun 2014 16:00:00 GMT" (RFC 9110 HTTP-date).
std::string HttpDate(int64_t epoch_ms) {
  std::time_t t = static_cast<std::time_t>(epoch_ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  size_t n = std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return std::string(buf, n);
}

void AddField(Response& r, std::string_view name, std::string_view value) {
  if (!r.extra_headers.empty()) r.extra_headers.append("\r\n");
  r.extra_headers.append(name).append(": ").append(value);
}

// An answer without a body, with Tus-Resumable.
Response Empty(int status) {
  Response r;
  r.status = status;
  r.content_type = {};
  AddField(r, "Tus-Resumable", kTusVersion);
  return r;
}

// An error answer (the JSON error body) with Tus-Resumable.
Response Error(const Status& s, std::string_view code, const std::string& request_id) {
  Response r = ErrorResponse(s, code, request_id);
  AddField(r, "Tus-Resumable", kTusVersion);
  return r;
}

// The offset, expiry and job fields of an upload's answer.
void AddUploadFields(Response& r, const uploads::TusUpload& u) {
  AddField(r, "Upload-Offset", std::to_string(u.offset));
  AddField(r, "Upload-Expires", HttpDate(u.expires_ms));
  if (!u.job_id.empty()) AddField(r, "Upload-Job-Id", u.job_id);
}

// nullopt when Tus-Resumable is 1.0.0, else the 412 answer.
std::optional<Response> CheckVersion(const Request& req) {
  if (Trim(req.Field("Tus-Resumable")) == kTusVersion) return std::nullopt;
  Response r = Error(FailedPrecondition("Tus-Resumable must be 1.0.0"), "tus_version_unsupported",
                     req.request_id);
  AddField(r, "Tus-Version", kTusVersion);
  return r;
}

std::optional<Response> CheckEnabled(const Request& req, const HandlerEnv& env) {
  if (env.tus != nullptr) return std::nullopt;
  return Error(NotFound("resumable uploads are not enabled"), {}, req.request_id);
}

bool IsOffsetOctetStream(std::string_view content_type) {
  content_type = Trim(content_type.substr(0, content_type.find(';')));
  return IEquals(content_type, kOffsetOctetStream);
}

// The per-process bucket (RATE_LIMIT_PER_MINUTE), as the multipart route.
std::optional<Response> LocalLimit(const HandlerEnv& env, const std::string& user,
                                   const std::string& request_id) {
  int64_t retry_after_s = 0;
  if (env.limiter->Allow(user, MonotonicMs(), &retry_after_s)) return std::nullopt;
  Response r = Error(ResourceExhausted("too many uploads; retry later"), "rate_limited", request_id);
  r.retry_after_s = retry_after_s;
  return r;
}

// An error of the disk, database or queue: detail to the log, 503 out.
Response NotStored(const Status& s, const std::string& request_id) {
  if (s.code() == Errc::kInvalidArgument) return Error(s, {}, request_id);
  spdlog::error("request {}: tus upload not stored: {}", request_id, s.ToString());
  return Error(Unavailable(s.message()), {}, request_id);
}

// Makes complete upload `u` a job (or finds that it is one: a completion
// cut off after its row). Runs on the pool with the upload's lock held.
Result<uploads::TusUpload> Complete(const HandlerEnv& env, const uploads::TusUpload& u,
                                    const std::string& tier, const std::string& request_id) {
  auto row = env.store->GetJob(u.id);
  if (!row) return row.status();
  if (row->has_value()) {
    if ((*row)->user_id != u.user_id) return Internal("upload id " + u.id + " is another's job");
    return env.tus->SetJobId(u.id, u.id);
  }
  uploads::PrioritySettings prio;
  prio.aging_ms = env.settings->priority_aging_ms;
  prio.in_flight_step = env.settings->priority_in_flight_step;
  uploads::QueueOrder order;
  order.priority = uploads::JobPriority(uploads::ParseTier(tier), u.length, 0, prio);
  order.aging_ms = prio.aging_ms;
  auto job = uploads::CompleteTusUpload(*env.tus, u, *env.blobs, *env.committer,
                                        env.settings->max_upload_bytes, env.settings->upload_fsync,
                                        order, request_id);
  if (!job) return job.status();
  spdlog::info("tus upload {} complete: {} bytes, job added", u.id, u.length);
  return env.tus->SetJobId(u.id, *job);
}

// The bytes of one PATCH (or of a creation with data) into a TusStore::Patch,
// hashed on the way when the request carried Upload-Checksum. Answers with
// the upload's new offset, and its job id once complete.
class TusBody final : public BodyConsumer {
 public:
  // A PATCH: `patch` holds the upload's lock.
  TusBody(const Request& req, const HandlerEnv& env, std::unique_ptr<uploads::TusStore::Patch> patch,
          std::optional<std::string> checksum)
      : env_(env),
        user_id_(req.user_id),
        tier_(req.tier),
        request_id_(req.request_id),
        start_(req.start),
        checksum_(std::move(checksum)),
        started_(true),
        patch_(std::move(patch)) {
    InitHash();
  }

  // A creation: the upload is created on the pool (Start) before its bytes.
  TusBody(const Request& req, const HandlerEnv& env, int64_t length, uploads::TusMetadata metadata,
          std::optional<std::string> checksum)
      : env_(env),
        user_id_(req.user_id),
        tier_(req.tier),
        request_id_(req.request_id),
        start_(req.start),
        checksum_(std::move(checksum)),
        creating_(true),
        id_(NewJobId()),
        length_(length),
        metadata_(std::move(metadata)) {
    InitHash();
  }

  ~TusBody() override { EVP_MD_CTX_free(sha_); }

  std::optional<Response> Feed(std::string_view bytes) override {
    if (!started_) {
      started_ = true;
      if (auto refused = Start()) return refused;
    }
    if (!patch_) return Error(Internal("body after the answer"), {}, request_id_);
    const uploads::TusUpload& u = patch_->upload();
    if (static_cast<int64_t>(bytes.size()) > u.length - u.offset - patch_->written()) {
      return Drop(Error(
          ResourceExhausted("the body goes past Upload-Length " + std::to_string(u.length)),
          "payload_too_large", request_id_));
    }
    if (sha_ != nullptr && EVP_DigestUpdate(sha_, bytes.data(), bytes.size()) != 1) {
      return Drop(Error(Internal("SHA-256 update failed"), {}, request_id_));
    }
    if (Status s = patch_->Write(bytes); !s.ok()) return Drop(NotStored(s, request_id_));
    return std::nullopt;
  }

  // A cut-off PATCH keeps the bytes it delivered (unless it carried a
  // checksum, which they cannot match): they are the upload's pending bytes.
  bool FeedsCutOffBody() const override { return !checksum_.has_value(); }

  void Finish(std::function<void(Response)> done) override {
    if (!started_) {
      started_ = true;
      if (auto refused = Start()) return done(std::move(*refused));
    }
    if (!patch_) return done(Error(Internal("finish after the answer"), {}, request_id_));
    Response r = Answer();
    // The lock goes before the answer does: the client's next request
    // must find the upload free.
    patch_.reset();
    done(std::move(r));
  }

 private:
  // Refuses the rest of the body: this PATCH's bytes are dropped and the
  // upload's lock released before the answer goes out.
  Response Drop(Response r) {
    patch_->Discard();
    patch_.reset();
    return r;
  }

  void InitHash() {
    if (!checksum_) return;
    sha_ = EVP_MD_CTX_new();
    if (sha_ != nullptr) EVP_DigestInit_ex(sha_, EVP_sha256(), nullptr);
  }

  // A creation's first step, on the pool: the user's limits, then the
  // upload's files, then its lock. nullopt when it may go on.
  std::optional<Response> Start() {
    if (env_.user_limits != nullptr) {
      auto d = env_.user_limits->Reserve(user_id_, id_, length_);
      if (!d) {
        spdlog::warn("request {}: upload limits unavailable, per-process limit only: {}",
                     request_id_, d.status().ToString());
        if (auto refused = LocalLimit(env_, user_id_, request_id_)) return refused;
      } else if (!d->allowed) {
        Response r = Error(ResourceExhausted("too many uploads (" + d->exceeded + "); retry later"),
                           "rate_limited", request_id_);
        r.retry_after_s = d->retry_after_s;
        return r;
      } else {
        reserved_ = true;
      }
    }
    auto created = env_.tus->Create(id_, user_id_, length_, std::move(metadata_));
    if (!created) {
      Release();
      return NotStored(created.status(), request_id_);
    }
    spdlog::info("tus upload {} created: {} bytes", id_, length_);
    auto patch = env_.tus->BeginPatch(id_, user_id_, 0);
    if (!patch) return NotStored(patch.status(), request_id_);
    patch_ = std::move(*patch);
    return std::nullopt;
  }

  void Release() {
    if (!reserved_) return;
    reserved_ = false;
    if (auto r = env_.user_limits->Release(user_id_, id_); !r) {
      spdlog::warn("request {}: upload limits: {}", request_id_, r.status().ToString());
    }
  }

  // The body is complete: check the checksum, commit the bytes, complete
  // the upload when they were the last.
  Response Answer() {
    const uploads::TusUpload& before = patch_->upload();
    if (sha_ != nullptr) {
      unsigned char digest[EVP_MAX_MD_SIZE];
      unsigned int len = 0;
      if (EVP_DigestFinal_ex(sha_, digest, &len) != 1) {
        patch_->Discard();
        return Error(Internal("SHA-256 final failed"), {}, request_id_);
      }
      if (std::string_view(reinterpret_cast<const char*>(digest), len) != *checksum_) {
        patch_->Discard();
        spdlog::info("tus upload {}: checksum mismatch; {} bytes dropped", before.id,
                     patch_->written());
        Response r = Error(InvalidArgument("Upload-Checksum does not match the body"),
                           "checksum_mismatch", request_id_);
        AddUploadFields(r, before);
        if (creating_) AddField(r, "Location", std::string(kUploadPath) + before.id);
        return r;
      }
    }
    auto committed = patch_->Commit();
    if (!committed) return NotStored(committed.status(), request_id_);
    uploads::TusUpload u = std::move(*committed);
    if (u.complete() && u.job_id.empty()) {
      auto done = Complete(env_, u, tier_, request_id_);
      if (!done) return NotStored(done.status(), request_id_);
      u = std::move(*done);
      env_.metrics->UploadAccepted(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count());
    }
    Response r = Empty(creating_ ? 201 : 204);
    if (creating_) AddField(r, "Location", std::string(kUploadPath) + u.id);
    AddUploadFields(r, u);
    return r;
  }

  HandlerEnv env_;
  std::string user_id_;
  std::string tier_;
  std::string request_id_;
  std::chrono::steady_clock::time_point start_;
  std::optional<std::string> checksum_;  // the SHA-256 the body must have
  EVP_MD_CTX* sha_ = nullptr;            // set when checksum_ is
  bool creating_ = false;
  bool started_ = false;  // Start ran (a creation) or was not needed (a PATCH)
  std::string id_;
  int64_t length_ = 0;
  uploads::TusMetadata metadata_;
  bool reserved_ = false;  // the shared limits let it in (a slot is held)
  std::unique_ptr<uploads::TusStore::Patch> patch_;
};

// The checks every PATCH and creation body share: media type, checksum.
std::optional<Response> CheckBody(const Request& req, std::optional<std::string>* checksum) {
  if (!IsOffsetOctetStream(req.content_type)) {
    return Error(InvalidArgument("Content-Type must be application/offset+octet-stream"),
                 "unsupported_media_type", req.request_id);
  }
  auto c = ParseUploadChecksum(req.Field("Upload-Checksum"));
  if (!c) return Error(c.status(), "invalid_checksum", req.request_id);
  *checksum = std::move(*c);
  return std::nullopt;
}

}  // namespace

Response TusOptions(const Request& req, HandlerEnv& env) {
  if (auto refused = CheckEnabled(req, env)) return std::move(*refused);
  Response r = Empty(204);
  AddField(r, "Tus-Version", kTusVersion);
  AddField(r, "Tus-Extension", kExtensions);
  AddField(r, "Tus-Max-Size", std::to_string(env.settings->max_upload_bytes));
  AddField(r, "Tus-Checksum-Algorithm", "sha256");
  return r;
}

StreamStart TusCreate(const Request& req, HandlerEnv& env) {
  if (auto refused = CheckEnabled(req, env)) return std::move(*refused);
  if (auto refused = CheckVersion(req)) return std::move(*refused);
  if (!req.Field("Upload-Defer-Length").empty()) {
    return Error(InvalidArgument("Upload-Defer-Length is not supported: send Upload-Length"),
                 "invalid_request", req.request_id);
  }
  std::optional<int64_t> length = ParseCount(req.Field("Upload-Length"));
  if (!length) {
    return Error(InvalidArgument("Upload-Length is required (a byte count)"), "invalid_request",
                 req.request_id);
  }
  if (*length == 0) return Error(InvalidArgument("the file is empty"), "empty_file", req.request_id);
  if (*length > env.settings->max_upload_bytes) {
    return Error(ResourceExhausted("the upload exceeds " +
                                   std::to_string(env.settings->max_upload_bytes) + " bytes"),
                 "payload_too_large", req.request_id);
  }
  std::string_view code;
  auto metadata = ParseUploadMetadata(req.Field("Upload-Metadata"), &code);
  if (!metadata) return Error(metadata.status(), code, req.request_id);
  std::optional<std::string> checksum;
  const bool has_body = req.chunked || req.content_length > 0;
  if (has_body) {
    if (auto refused = CheckBody(req, &checksum)) return std::move(*refused);
    if (!req.chunked && req.content_length > static_cast<uint64_t>(*length)) {
      return Error(ResourceExhausted("the body goes past Upload-Length"), "payload_too_large",
                   req.request_id);
    }
  }
  if (env.user_limits == nullptr) {
    if (auto refused = LocalLimit(env, req.user_id, req.request_id)) return std::move(*refused);
  }
  return std::unique_ptr<BodyConsumer>(
      std::make_unique<TusBody>(req, env, *length, std::move(*metadata), std::move(checksum)));
}

Response TusHead(const Request& req, HandlerEnv& env) {
  auto answer = [&]() -> Response {
    if (auto refused = CheckEnabled(req, env)) return std::move(*refused);
    if (auto refused = CheckVersion(req)) return std::move(*refused);
    const std::string& id = req.params.at(0);
    if (!IsUuid(id)) return Error(NotFound("upload not found"), {}, req.request_id);
    auto u = env.tus->Settle(id, req.user_id);
    if (!u) {
      if (u.code() == Errc::kNotFound) return Error(u.status(), {}, req.request_id);
      return NotStored(u.status(), req.request_id);
    }
    if (u->complete() && u->job_id.empty()) {
      // A completion that was cut off (a restart, an outage): finish it now.
      if (auto p = env.tus->BeginPatch(id, req.user_id, u->length)) {
        auto done = Complete(env, (*p)->upload(), req.tier, req.request_id);
        if (!done) return NotStored(done.status(), req.request_id);
        u = std::move(*done);
      }
    }
    Response r = Empty(200);
    AddField(r, "Upload-Length", std::to_string(u->length));
    AddUploadFields(r, *u);
    std::string meta = "session_id " + Base64Encode(u->metadata.session_id);
    if (!u->metadata.filename.empty()) meta += ",filename " + Base64Encode(u->metadata.filename);
    if (!u->metadata.filetype.empty()) meta += ",filetype " + Base64Encode(u->metadata.filetype);
    if (!u->metadata.message.empty()) meta += ",message " + Base64Encode(u->metadata.message);
    AddField(r, "Upload-Metadata", meta);
    AddField(r, "Cache-Control", "no-store");
    return r;
  };
  Response r = answer();
  r.body.clear();  // a HEAD answer has none
  return r;
}

StreamStart TusPatch(const Request& req, HandlerEnv& env) {
  if (auto refused = CheckEnabled(req, env)) return std::move(*refused);
  if (auto refused = CheckVersion(req)) return std::move(*refused);
  std::optional<std::string> checksum;
  if (auto refused = CheckBody(req, &checksum)) return std::move(*refused);
  std::optional<int64_t> offset = ParseCount(req.Field("Upload-Offset"));
  if (!offset) {
    return Error(InvalidArgument("Upload-Offset is required (a byte count)"), "invalid_request",
                 req.request_id);
  }
  const std::string& id = req.params.at(0);
  if (!IsUuid(id)) return Error(NotFound("upload not found"), {}, req.request_id);
  auto patch = env.tus->BeginPatch(id, req.user_id, *offset);
  if (!patch) {
    switch (patch.code()) {
      case Errc::kAborted:
        return Error(patch.status(), "upload_locked", req.request_id);
      case Errc::kFailedPrecondition:
        return Error(patch.status(), "offset_mismatch", req.request_id);
      default:
        return Error(patch.status(), {}, req.request_id);
    }
  }
  const uploads::TusUpload& u = (*patch)->upload();
  if (!u.job_id.empty()) {
    // Complete already (its bytes are in the blob store): nothing to write.
    if (req.chunked || req.content_length > 0) {
      return Error(ResourceExhausted("the upload is complete"), "payload_too_large",
                   req.request_id);
    }
    Response r = Empty(204);
    AddUploadFields(r, u);
    return r;
  }
  if (!req.chunked && req.content_length > static_cast<uint64_t>(u.length - u.offset)) {
    return Error(ResourceExhausted("the body goes past Upload-Length " + std::to_string(u.length)),
                 "payload_too_large", req.request_id);
  }
  return std::unique_ptr<BodyConsumer>(
      std::make_unique<TusBody>(req, env, std::move(*patch), std::move(checksum)));
}

Response TusDelete(const Request& req, HandlerEnv& env) {
  if (auto refused = CheckEnabled(req, env)) return std::move(*refused);
  if (auto refused = CheckVersion(req)) return std::move(*refused);
  const std::string& id = req.params.at(0);
  if (!IsUuid(id)) return Error(NotFound("upload not found"), {}, req.request_id);
  auto removed = env.tus->Remove(id, req.user_id);
  if (!removed) {
    if (removed.code() == Errc::kAborted) {
      return Error(removed.status(), "upload_locked", req.request_id);
    }
    if (removed.code() == Errc::kNotFound) return Error(removed.status(), {}, req.request_id);
    return NotStored(removed.status(), req.request_id);
  }
  if (removed->job_id.empty() && env.user_limits != nullptr) {
    // Never to be a job: its in-flight slot goes back.
    if (auto r = env.user_limits->Release(req.user_id, id); !r) {
      spdlog::warn("request {}: upload limits: {}", req.request_id, r.status().ToString());
    }
  }
  spdlog::info("tus upload {} terminated", id);
  return Empty(204);
}

}  // namespace conveyor::http
