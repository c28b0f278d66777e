#include "app/upload_command.h"

#include <curl/curl.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "app/tus_client.h"
#include "http/auth.h"

namespace conveyor::app {
namespace {

constexpr int64_t kTokenTtlS = 3600;          // a token minted with JWT_SECRET lives an hour
constexpr long kConnectTimeoutS = 10;         // to reach the server
constexpr int kProgressBarWidth = 30;         // characters of the bar
constexpr int kFollowAttempts = 10;           // event streams opened per job before giving up
constexpr int kFollowRetryMs = 500;           // pause before reopening a dropped stream

size_t AppendBody(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

// Draws "[#####.....]  42%  12.3 MB/s" on stderr, at most ten times a second.
int ShowProgress(void* state, curl_off_t, curl_off_t, curl_off_t ul_total, curl_off_t ul_now) {
  auto* last = static_cast<std::chrono::steady_clock::time_point*>(state);
  auto now = std::chrono::steady_clock::now();
  if (ul_total <= 0 || (now - *last < std::chrono::milliseconds(100) && ul_now < ul_total)) {
    return 0;
  }
  *last = now;
  int pct = static_cast<int>(ul_now * 100 / ul_total);
  int fill = pct * kProgressBarWidth / 100;
  std::fprintf(stderr, "\r[%s%s] %3d%%  %.1f/%.1f MiB", std::string(fill, '#').c_str(),
               std::string(kProgressBarWidth - fill, '.').c_str(), pct,
               static_cast<double>(ul_now) / (1 << 20), static_cast<double>(ul_total) / (1 << 20));
  return 0;
}

struct Response {
  long status = 0;
  std::string body;
  std::string error;  // transport error, when status is 0
};

bool IsFinal(const std::string& status) { return status == "completed" || status == "failed"; }

// The server's error message of a JSON error body, else the body itself.
std::string ErrorOf(const Response& r) {
  if (r.status == 0) return r.error;
  auto j = nlohmann::json::parse(r.body, nullptr, false);
  if (j.is_object() && j.contains("error") && j["error"].is_object()) {
    return j["error"].value("code", "") + ": " + j["error"].value("message", "");
  }
  return "HTTP " + std::to_string(r.status) + " " + r.body;
}

// One file's way through the command.
struct FileJob {
  std::string file;
  std::string job_id;       // empty when refused
  std::string status;       // refused, pending, processing, completed, failed
  nlohmann::json data;      // the last status data (the status route's `data`)
  std::string error;        // refused: the server's error; failed: the job's
};

// Reads a text/event-stream as it arrives (the SSE route): splits events on
// blank lines and keeps the last state seen. An event's data is the status
// data itself or a push message carrying it in "data"; its status comes from
// there, or else from the event's name.
class EventStream {
 public:
  explicit EventStream(std::function<void(const std::string&, const nlohmann::json&)> on_state)
      : on_state_(std::move(on_state)) {}

  // Feeds bytes; false once a final state was seen (the caller stops reading).
  bool Feed(std::string_view bytes) {
    buf_.append(bytes);
    size_t eol;
    while ((eol = buf_.find('\n')) != std::string::npos) {
      std::string line = buf_.substr(0, eol);
      buf_.erase(0, eol + 1);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.empty()) {
        Dispatch();
        if (final_) return false;
        continue;
      }
      if (line[0] == ':') continue;  // a comment (keep-alive)
      size_t colon = line.find(':');
      std::string field = line.substr(0, colon);
      std::string value = colon == std::string::npos ? "" : line.substr(colon + 1);
      if (!value.empty() && value[0] == ' ') value.erase(0, 1);
      if (field == "event") event_ = value;
      else if (field == "data") data_ += (data_.empty() ? "" : "\n") + value;
      else if (field == "id") last_id_ = value;
    }
    return true;
  }

  bool final() const { return final_; }
  const std::string& last_id() const { return last_id_; }

 private:
  void Dispatch() {
    if (data_.empty()) {
      event_.clear();
      return;
    }
    auto j = nlohmann::json::parse(data_, nullptr, false);
    data_.clear();
    std::string event = std::move(event_);
    event_.clear();
    if (!j.is_object()) return;
    const nlohmann::json& state = j.contains("data") && j["data"].is_object() ? j["data"] : j;
    std::string status = state.value("status", "");
    if (status.empty()) status = event == "progress" ? "processing" : event;
    if (IsFinal(status)) final_ = true;
    on_state_(status, state);
  }

  std::function<void(const std::string&, const nlohmann::json&)> on_state_;
  std::string buf_, event_, data_, last_id_;
  bool final_ = false;
};

size_t FeedEvents(char* data, size_t size, size_t n, void* stream) {
  bool more = static_cast<EventStream*>(stream)->Feed(std::string_view(data, size * n));
  return more ? size * n : 0;  // 0 ends the transfer once the job is final
}

class Upload final : public UploadCommand {
 public:
  explicit Upload(CLI::App& cli) {
    sub_ = cli.add_subcommand("upload", "upload files with a progress bar (client of the API)");
    sub_->add_option("files", files_, "files to upload")->required()->check(CLI::ExistingFile);
    sub_->add_option("--session", session_, "chat session id")->required();
    sub_->add_option("--message", message_, "accompanying message");
    sub_->add_flag("--wait", wait_, "follow each job (push channel) until it is completed or failed");
    sub_->add_flag("--json", json_, "print one JSON object per file on stdout, nothing else");
    sub_->add_flag("--resumable", resumable_,
                   "upload with tus (resumable): run the same command again after an "
                   "interruption and only the rest is sent");
    sub_->add_option("--limit-rate", limit_rate_, "send at most this many bytes per second (0: no limit)")
        ->check(CLI::NonNegativeNumber);
    sub_->add_option("--url", url_, "API base URL (default http://localhost:$PORT)");
    sub_->add_option("--token", token_, "bearer token (default $CONVEYOR_TOKEN)");
    sub_->add_option("--user", user_, "user of a token minted with $JWT_SECRET")
        ->capture_default_str();
  }

  bool parsed() const override { return sub_->parsed(); }

  int Run(const Config& config) override {
    if (url_.empty()) url_ = "http://localhost:" + std::to_string(config.port);
    while (!url_.empty() && url_.back() == '/') url_.pop_back();
    if (token_.empty()) {
      if (const char* t = std::getenv("CONVEYOR_TOKEN")) token_ = t;
    }
    if (token_.empty() && !config.jwt_secret.empty()) {
      auto t = http::MintToken(config.jwt_secret, user_, std::time(nullptr), kTokenTtlS);
      if (t) token_ = *t;
    }
    if (token_.empty()) {
      std::fprintf(stderr, "conveyor upload: no token: pass --token, set CONVEYOR_TOKEN, "
                           "or set JWT_SECRET to mint one\n");
      return 2;
    }
    tty_ = ::isatty(2) != 0;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    std::vector<FileJob> jobs;
    for (const std::string& file : files_) jobs.push_back(Send(file));
    if (wait_) {
      for (FileJob& job : jobs) {
        if (!job.job_id.empty()) Follow(&job);
      }
    }
    int rc = 0;
    for (const FileJob& job : jobs) {
      if (job.status == "refused" || job.status == "failed" || (wait_ && !IsFinal(job.status))) {
        rc = 1;
      }
      if (json_) Print(job);
    }
    return rc;
  }

 private:
  // Uploads one file; the job is "pending" when accepted, else "refused".
  FileJob Send(const std::string& file) {
    FileJob job;
    job.file = file;
    if (tty_ && files_.size() > 1) std::fprintf(stderr, "%s\n", file.c_str());
    if (resumable_) return SendResumable(std::move(job));
    Response r = Post(file);
    auto j = nlohmann::json::parse(r.body, nullptr, false);
    if (r.status != 202 || !j.is_object()) {
      job.status = "refused";
      job.error = ErrorOf(r);
      std::fprintf(stderr, "conveyor upload: %s: %s\n", file.c_str(), job.error.c_str());
      return job;
    }
    job.job_id = j.value("/data/jobId"_json_pointer, std::string());
    job.status = "pending";
    if (!json_) {
      std::printf("%s\n", job.job_id.c_str());
      std::fflush(stdout);
    }
    return job;
  }

  // Uploads one file with tus (tus_client.h), resuming a remembered upload.
  FileJob SendResumable(FileJob job) {
    TusClientOptions o;
    o.base_url = url_;
    o.token = token_;
    o.session_id = session_;
    o.message = message_;
    o.progress = tty_;
    o.max_send_bytes_per_s = limit_rate_;
    o.connect_timeout_s = kConnectTimeoutS;
    TusClientResult r = TusUploadFile(o, job.file);
    if (r.job_id.empty()) {
      job.status = "refused";
      job.error = r.error;
      std::fprintf(stderr, "conveyor upload: %s: %s\n", job.file.c_str(), job.error.c_str());
      return job;
    }
    job.job_id = r.job_id;
    job.status = "pending";
    if (!json_) {
      std::printf("%s\n", job.job_id.c_str());
      std::fflush(stdout);
    }
    return job;
  }

  // Follows the job's event stream until a final state, reopening a dropped
  // stream where it stopped (Last-Event-ID).
  void Follow(FileJob* job) {
    std::string last_id;
    for (int attempt = 0; attempt < kFollowAttempts && !IsFinal(job->status); ++attempt) {
      if (attempt > 0) std::this_thread::sleep_for(std::chrono::milliseconds(kFollowRetryMs));
      EventStream events([&](const std::string& status, const nlohmann::json& data) {
        job->status = status;
        job->data = data;
        if (status == "failed") job->error = data.value("error", "");
        if (tty_ && !IsFinal(status)) {
          std::fprintf(stderr, "\r%s: %s %s   ", job->job_id.c_str(), status.c_str(),
                       data.contains("progress") ? (data["progress"].dump() + "%").c_str() : "");
        }
      });
      Response r = Stream("/api/chat/upload/events/" + job->job_id, last_id, &events);
      last_id = events.last_id();
      if (tty_) std::fprintf(stderr, "\r\033[K");
      if (events.final()) break;
      if (r.status != 0 && r.status != 200) {
        job->status = "failed";
        job->error = ErrorOf(r);
        break;
      }
    }
    if (!IsFinal(job->status)) {
      std::fprintf(stderr, "conveyor upload: %s: no final state after %d attempts\n",
                   job->job_id.c_str(), kFollowAttempts);
    } else if (!json_) {
      std::printf("%s\n", job->data.dump(2).c_str());
    }
    if (job->status == "failed") {
      std::fprintf(stderr, "conveyor upload: %s failed: %s\n", job->file.c_str(),
                   job->error.c_str());
    }
  }

  void Print(const FileJob& job) const {
    nlohmann::json o = {{"file", job.file}, {"status", job.status}};
    o["jobId"] = job.job_id.empty() ? nlohmann::json(nullptr) : nlohmann::json(job.job_id);
    if (job.status == "completed" && job.data.contains("result")) o["result"] = job.data["result"];
    if (!job.error.empty()) o["error"] = job.error;
    std::printf("%s\n", o.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    std::fflush(stdout);
  }

  CURL* NewHandle(const std::string& path, std::string* body, curl_slist** headers) {
    CURL* h = curl_easy_init();
    curl_easy_setopt(h, CURLOPT_URL, (url_ + path).c_str());
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, kConnectTimeoutS);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, AppendBody);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, body);
    *headers = curl_slist_append(nullptr, ("Authorization: Bearer " + token_).c_str());
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, *headers);
    return h;
  }

  Response Finish(CURL* h, curl_slist* headers) {
    Response r;
    CURLcode rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r.status);
    // A write error is ours: the event stream was ended on a final state.
    if (rc != CURLE_OK && rc != CURLE_WRITE_ERROR) r.error = curl_easy_strerror(rc);
    curl_slist_free_all(headers);
    curl_easy_cleanup(h);
    return r;
  }

  Response Post(const std::string& file) {
    std::string body;
    curl_slist* headers = nullptr;
    CURL* h = NewHandle("/api/chat/upload/async", &body, &headers);
    curl_mime* mime = curl_mime_init(h);
    curl_mimepart* part = curl_mime_addpart(mime);
    curl_mime_name(part, "session_id");
    curl_mime_data(part, session_.c_str(), CURL_ZERO_TERMINATED);
    if (!message_.empty()) {
      part = curl_mime_addpart(mime);
      curl_mime_name(part, "message");
      curl_mime_data(part, message_.c_str(), CURL_ZERO_TERMINATED);
    }
    part = curl_mime_addpart(mime);
    curl_mime_name(part, "file");
    curl_mime_filedata(part, file.c_str());  // streamed from disk
    curl_easy_setopt(h, CURLOPT_MIMEPOST, mime);
    if (limit_rate_ > 0) {
      curl_easy_setopt(h, CURLOPT_MAX_SEND_SPEED_LARGE, static_cast<curl_off_t>(limit_rate_));
    }
    auto last = std::chrono::steady_clock::time_point{};
    if (tty_) {
      curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
      curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, ShowProgress);
      curl_easy_setopt(h, CURLOPT_XFERINFODATA, &last);
    }
    Response r = Finish(h, headers);
    r.body = std::move(body);
    if (tty_) std::fprintf(stderr, "\n");
    curl_mime_free(mime);
    return r;
  }

  // GETs an event stream into `events`; a non-200 answer's body is kept.
  Response Stream(const std::string& path, const std::string& last_id, EventStream* events) {
    std::string body;
    curl_slist* headers = nullptr;
    CURL* h = NewHandle(path, &body, &headers);
    headers = curl_slist_append(headers, "Accept: text/event-stream");
    if (!last_id.empty()) headers = curl_slist_append(headers, ("Last-Event-ID: " + last_id).c_str());
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    struct Sink {
      CURL* h;
      EventStream* events;
      std::string* body;
    } sink{h, events, &body};
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &sink);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION,
                     +[](char* data, size_t size, size_t n, void* p) -> size_t {
                       auto* s = static_cast<Sink*>(p);
                       long code = 0;
                       curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &code);
                       if (code != 200) return AppendBody(data, size, n, s->body);
                       return FeedEvents(data, size, n, s->events);
                     });
    Response r = Finish(h, headers);
    r.body = std::move(body);
    return r;
  }

  CLI::App* sub_ = nullptr;
  std::vector<std::string> files_;
  std::string session_, message_, url_, token_, user_ = "cli";
  bool wait_ = false;
  bool json_ = false;
  bool resumable_ = false;
  int64_t limit_rate_ = 0;  // bytes per second; 0: no limit
  bool tty_ = false;
};

}  // namespace

std::unique_ptr<UploadCommand> AddUploadCommand(CLI::App& cli) {
  return std::make_unique<Upload>(cli);
}

}  // namespace conveyor::app
