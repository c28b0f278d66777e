// `conveyor upload --resumable`: tus creation, HEAD, one PATCH with the rest
// of the file, and the state file that remembers upload URLs between runs.
// See tus_client.h.
#include "app/tus_client.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "core/ids.h"

namespace conveyor::app {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr const char* kTusPath = "/api/chat/upload/tus";
constexpr int kBarWidth = 30;

std::string Lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

struct Reply {
  long status = 0;
  std::string error;                          // transport error when status is 0
  std::map<std::string, std::string> fields;  // lower-case names
  std::string body;
};

size_t OnBody(char* data, size_t size, size_t n, void* out) {
  static_cast<Reply*>(out)->body.append(data, size * n);
  return size * n;
}

size_t OnHeader(char* data, size_t size, size_t n, void* out) {
  std::string line(data, size * n);
  size_t colon = line.find(':');
  if (colon != std::string::npos) {
    std::string value = line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(" \t"));
    while (!value.empty() && (value.back() == '\r' || value.back() == '\n' || value.back() == ' ')) {
      value.pop_back();
    }
    static_cast<Reply*>(out)->fields[Lower(line.substr(0, colon))] = value;
  }
  return size * n;
}

// The server's error ("code: message") of a reply, else its status.
std::string ErrorOf(const Reply& r) {
  if (r.status == 0) return r.error;
  auto j = json::parse(r.body, nullptr, false);
  if (j.is_object() && j.contains("error") && j["error"].is_object()) {
    return j["error"].value("code", "") + ": " + j["error"].value("message", "");
  }
  return "HTTP " + std::to_string(r.status);
}

struct Progress {
  int64_t base = 0;   // bytes the server had before this PATCH
  int64_t total = 0;  // the file's size
  std::chrono::steady_clock::time_point last{};
};

int ShowProgress(void* p, curl_off_t, curl_off_t, curl_off_t, curl_off_t ul_now) {
  auto* s = static_cast<Progress*>(p);
  auto now = std::chrono::steady_clock::now();
  int64_t done = s->base + ul_now;
  if (s->total <= 0 || (now - s->last < std::chrono::milliseconds(100) && done < s->total)) {
    return 0;
  }
  s->last = now;
  int pct = static_cast<int>(done * 100 / s->total);
  int fill = pct * kBarWidth / 100;
  std::fprintf(stderr, "\r[%s%s] %3d%%  %.1f/%.1f MiB", std::string(fill, '#').c_str(),
               std::string(kBarWidth - fill, '.').c_str(), pct,
               static_cast<double>(done) / (1 << 20), static_cast<double>(s->total) / (1 << 20));
  return 0;
}

class Client {
 public:
  explicit Client(const TusClientOptions& o) : o_(o) {}

  // One request; `configure` sets the method and body.
  template <class F>
  Reply Send(const std::string& url, std::vector<std::string> headers, F configure) {
    Reply r;
    CURL* h = curl_easy_init();
    curl_easy_setopt(h, CURLOPT_URL, url.c_str());
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, o_.connect_timeout_s);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, OnBody);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, OnHeader);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &r);
    headers.push_back("Authorization: Bearer " + o_.token);
    headers.push_back("Tus-Resumable: 1.0.0");
    curl_slist* list = nullptr;
    for (const std::string& f : headers) list = curl_slist_append(list, f.c_str());
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, list);
    configure(h);
    CURLcode rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r.status);
    // An answer given before the whole body went (409, 413) keeps its status.
    if (rc != CURLE_OK) r.error = curl_easy_strerror(rc);
    curl_slist_free_all(list);
    curl_easy_cleanup(h);
    return r;
  }

 private:
  const TusClientOptions& o_;
};

// The remembered uploads: {"<key>": "<upload URL>"}.
json LoadState() {
  std::ifstream in(TusStatePath());
  if (!in) return json::object();
  json j = json::parse(in, nullptr, false);
  return j.is_object() ? j : json::object();
}

void SaveState(const json& state) {
  const fs::path path = TusStatePath();
  std::error_code ec;
  fs::create_directories(path.parent_path(), ec);
  ::chmod(path.parent_path().c_str(), 0700);
  const std::string tmp = path.string() + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return;  // resuming is a convenience: the upload goes on without it
  const std::string text = state.dump(2) + "\n";
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ::close(fd);
  if (ok) {
    fs::rename(tmp, path, ec);
  } else {
    fs::remove(tmp, ec);
  }
}

std::string StateKey(const std::string& base_url, const std::string& file, const struct stat& st) {
  std::ostringstream k;
  k << base_url << "|" << fs::absolute(file).lexically_normal().string() << "|" << st.st_size << "|"
    << st.st_mtim.tv_sec << "." << st.st_mtim.tv_nsec;
  return k.str();
}

// A Location (absolute, or a path on the server) as a URL.
std::string Absolute(const std::string& base_url, const std::string& location) {
  if (location.rfind("http://", 0) == 0 || location.rfind("https://", 0) == 0) return location;
  return base_url + (location.empty() || location[0] != '/' ? "/" : "") + location;
}

}  // namespace

std::string TusStatePath() {
  std::string dir;
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x != nullptr && x[0] == '/') {
    dir = x;
  } else if (const char* home = std::getenv("HOME"); home != nullptr && home[0] != '\0') {
    dir = std::string(home) + "/.cache";
  } else {
    dir = "/tmp";
  }
  return dir + "/conveyor/tus-uploads.json";
}

TusClientResult TusUploadFile(const TusClientOptions& o, const std::string& file) {
  TusClientResult out;
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) {
    out.error = "cannot read the file";
    return out;
  }
  const int64_t size = st.st_size;
  const std::string key = StateKey(o.base_url, file, st);
  json state = LoadState();
  Client client(o);

  std::string url;
  int64_t offset = 0;
  if (state.contains(key) && state[key].is_string()) {
    url = state[key].get<std::string>();
    Reply head = client.Send(url, {}, [](CURL* h) { curl_easy_setopt(h, CURLOPT_NOBODY, 1L); });
    if (head.status == 200 && head.fields.count("upload-offset")) {
      offset = std::strtoll(head.fields["upload-offset"].c_str(), nullptr, 10);
      out.resumed_at = offset;
      if (head.fields.count("upload-job-id")) {
        out.status = 200;
        out.job_id = head.fields["upload-job-id"];
        state.erase(key);
        SaveState(state);
        return out;
      }
    } else if (head.status == 0) {
      out.error = ErrorOf(head);
      return out;  // the server is unreachable: keep the URL for next time
    } else {
      url.clear();  // expired or terminated: start again
      state.erase(key);
    }
  }
  if (url.empty()) {
    std::string meta = "session_id " + Base64Encode(o.session_id) + ",filename " +
                       Base64Encode(fs::path(file).filename().string());
    if (!o.message.empty()) meta += ",message " + Base64Encode(o.message);
    Reply created = client.Send(
        o.base_url + kTusPath,
        {"Upload-Length: " + std::to_string(size), "Upload-Metadata: " + meta},
        [](CURL* h) {
          curl_easy_setopt(h, CURLOPT_POST, 1L);
          curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
          curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, 0L);
        });
    out.status = created.status;
    if (created.status != 201 || created.fields.count("location") == 0) {
      out.error = ErrorOf(created);
      return out;
    }
    url = Absolute(o.base_url, created.fields["location"]);
    state[key] = url;
    SaveState(state);
  }
  if (offset > 0) {
    std::fprintf(stderr, "conveyor upload: %s: resuming at byte %lld of %lld\n", file.c_str(),
                 static_cast<long long>(offset), static_cast<long long>(size));
  }

  FILE* in = std::fopen(file.c_str(), "rb");
  if (in == nullptr || std::fseek(in, static_cast<long>(offset), SEEK_SET) != 0) {
    if (in != nullptr) std::fclose(in);
    out.error = "cannot read the file";
    return out;
  }
  Progress progress{offset, size, {}};
  Reply patched = client.Send(
      url,
      {"Content-Type: application/offset+octet-stream", "Upload-Offset: " + std::to_string(offset)},
      [&](CURL* h) {
        curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "PATCH");
        curl_easy_setopt(h, CURLOPT_READDATA, in);  // fread, streamed from disk
        curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(size - offset));
        if (o.max_send_bytes_per_s > 0) {
          curl_easy_setopt(h, CURLOPT_MAX_SEND_SPEED_LARGE,
                           static_cast<curl_off_t>(o.max_send_bytes_per_s));
        }
        if (o.progress) {
          curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
          curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, ShowProgress);
          curl_easy_setopt(h, CURLOPT_XFERINFODATA, &progress);
        }
      });
  std::fclose(in);
  if (o.progress) std::fprintf(stderr, "\n");
  out.status = patched.status;
  if (patched.status != 204) {
    out.error = ErrorOf(patched);
    if (patched.status == 0) out.error += " (run the command again to resume)";
    return out;
  }
  if (patched.fields.count("upload-job-id") == 0) {
    out.error = "the server did not complete the upload";
    return out;
  }
  out.job_id = patched.fields["upload-job-id"];
  state = LoadState();  // another run may have changed it meanwhile
  state.erase(key);
  SaveState(state);
  return out;
}

}  // namespace conveyor::app
