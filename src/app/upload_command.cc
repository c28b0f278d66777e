#include "app/upload_command.h"

#include <curl/curl.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "http/auth.h"

namespace conveyor::app {
namespace {

constexpr int64_t kTokenTtlS = 3600;          // a token minted with JWT_SECRET lives an hour
constexpr int kPollIntervalMs = 500;          // --wait polls the status this often
constexpr long kConnectTimeoutS = 10;         // to reach the server
constexpr int kProgressBarWidth = 30;         // characters of the bar

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

class Upload final : public UploadCommand {
 public:
  explicit Upload(CLI::App& cli) {
    sub_ = cli.add_subcommand("upload", "upload a file with a progress bar (client of the API)");
    sub_->add_option("file", file_, "file to upload")->required()->check(CLI::ExistingFile);
    sub_->add_option("--session", session_, "chat session id")->required();
    sub_->add_option("--message", message_, "accompanying message");
    sub_->add_flag("--wait", wait_, "wait until the job is completed or failed");
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
    curl_global_init(CURL_GLOBAL_DEFAULT);
    Response r = Post();
    if (r.status == 0) {
      std::fprintf(stderr, "conveyor upload: %s\n", r.error.c_str());
      return 1;
    }
    auto j = nlohmann::json::parse(r.body, nullptr, false);
    if (r.status != 202 || j.is_discarded()) {
      std::fprintf(stderr, "conveyor upload: HTTP %ld %s\n", r.status, r.body.c_str());
      return 1;
    }
    std::string job_id = j.value("/data/jobId"_json_pointer, std::string());
    std::printf("%s\n", job_id.c_str());
    std::fflush(stdout);
    if (!wait_) return 0;
    for (;;) {
      Response s = Get("/api/chat/upload/status/" + job_id);
      auto sj = nlohmann::json::parse(s.body, nullptr, false);
      if (s.status != 200 || sj.is_discarded()) {
        std::fprintf(stderr, "conveyor upload: status: HTTP %ld %s %s\n", s.status,
                     s.body.c_str(), s.error.c_str());
        return 1;
      }
      std::string st = sj.value("/data/status"_json_pointer, std::string());
      if (st == "completed" || st == "failed") {
        std::printf("%s\n", sj["data"].dump(2).c_str());
        return st == "completed" ? 0 : 1;
      }
      if (sj["data"].contains("progress")) {
        std::fprintf(stderr, "\r%s %s%%   ", st.c_str(), sj["data"]["progress"].dump().c_str());
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(kPollIntervalMs));
    }
  }

 private:
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

  Response Finish(CURL* h, curl_slist* headers, std::string body) {
    Response r;
    CURLcode rc = curl_easy_perform(h);
    if (rc == CURLE_OK) {
      curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r.status);
    } else {
      r.error = curl_easy_strerror(rc);
    }
    r.body = std::move(body);
    curl_slist_free_all(headers);
    curl_easy_cleanup(h);
    return r;
  }

  Response Post() {
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
    curl_mime_filedata(part, file_.c_str());  // streamed from disk
    curl_easy_setopt(h, CURLOPT_MIMEPOST, mime);
    auto last = std::chrono::steady_clock::time_point{};
    const bool tty = ::isatty(2);
    if (tty) {
      curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
      curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, ShowProgress);
      curl_easy_setopt(h, CURLOPT_XFERINFODATA, &last);
    }
    Response r = Finish(h, headers, std::string());
    r.body = body;
    if (tty) std::fprintf(stderr, "\n");
    curl_mime_free(mime);
    return r;
  }

  Response Get(const std::string& path) {
    std::string body;
    curl_slist* headers = nullptr;
    CURL* h = NewHandle(path, &body, &headers);
    Response r = Finish(h, headers, std::string());
    r.body = body;
    return r;
  }

  CLI::App* sub_ = nullptr;
  std::string file_, session_, message_, url_, token_, user_ = "cli";
  bool wait_ = false;
};

}  // namespace

std::unique_ptr<UploadCommand> AddUploadCommand(CLI::App& cli) {
  return std::make_unique<Upload>(cli);
}

}  // namespace conveyor::app
