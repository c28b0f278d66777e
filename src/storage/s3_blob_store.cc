// S3-compatible BlobStore: a small S3 client on libcurl (signing by
// libcurl's CURLOPT_AWS_SIGV4), responses parsed with libxml2. See
// s3_blob_store.h for the design.
#include "storage/s3_blob_store.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <strings.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <ctime>
#include <deque>
#include <filesystem>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "core/files.h"
#include "core/ids.h"

namespace conveyor::storage {
namespace {

namespace fs = std::filesystem;

constexpr char kInvalidStoragePath[] = "Invalid storage path";
// Error bodies are read up to this size (they are small XML documents).
constexpr size_t kMaxErrorBody = 64 * 1024;
// Listing bodies (1,000 keys a page) are bounded too.
constexpr size_t kMaxListBody = 8 << 20;
constexpr std::string_view kDownloadSuffix = ".download";
// A download file older than this at start-up was left by a killed worker.
constexpr int64_t kStaleDownloadMs = 3600 * 1000;

void InitLibraries() {
  static std::once_flag once;
  std::call_once(once, [] {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    xmlInitParser();
  });
}

// AWS's UriEncode: unreserved characters kept, '/' kept in paths only.
std::string UriEncode(std::string_view s, bool keep_slash) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' ||
        (keep_slash && c == '/')) {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

// "2026-11-30T03:32:19.000Z" -> epoch ms; 0 when unreadable.
int64_t ParseIsoTimeMs(const std::string& s) {
  std::tm tm{};
  int ms = 0;
  if (std::sscanf(s.c_str(), "%d-%d-%dT%d:%d:%d.%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                  &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms) < 6) {
    return 0;
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return static_cast<int64_t>(timegm(&tm)) * 1000 + ms;
}

// ---- XML (libxml2) ----

// A parsed response document. Elements are matched by local name (S3's
// documents carry a default namespace).
class XmlDoc {
 public:
  explicit XmlDoc(const std::string& body)
      : doc_(xmlReadMemory(body.data(), static_cast<int>(body.size()), "s3.xml", nullptr,
                           XML_PARSE_NONET | XML_PARSE_NOBLANKS | XML_PARSE_NOERROR |
                               XML_PARSE_NOWARNING)) {}
  ~XmlDoc() {
    if (doc_ != nullptr) xmlFreeDoc(doc_);
  }
  XmlDoc(const XmlDoc&) = delete;
  XmlDoc& operator=(const XmlDoc&) = delete;

  xmlNode* root() const { return doc_ == nullptr ? nullptr : xmlDocGetRootElement(doc_); }

  static bool Is(const xmlNode* n, const char* name) {
    return n != nullptr && n->type == XML_ELEMENT_NODE &&
           std::strcmp(reinterpret_cast<const char*>(n->name), name) == 0;
  }
  static std::vector<xmlNode*> Children(const xmlNode* parent, const char* name) {
    std::vector<xmlNode*> out;
    if (parent == nullptr) return out;
    for (xmlNode* c = parent->children; c != nullptr; c = c->next) {
      if (Is(c, name)) out.push_back(c);
    }
    return out;
  }
  static std::string Text(const xmlNode* parent, const char* name) {
    for (xmlNode* c : Children(parent, name)) {
      xmlChar* t = xmlNodeGetContent(c);
      std::string out = t == nullptr ? "" : reinterpret_cast<const char*>(t);
      xmlFree(t);
      return out;
    }
    return "";
  }

 private:
  xmlDoc* doc_;
};

// The <Code> of an S3 <Error> document ("" when the body is not one).
std::string ErrorCode(const std::string& body) {
  if (body.find("<Error") == std::string::npos) return "";
  XmlDoc doc(body);
  if (!XmlDoc::Is(doc.root(), "Error")) return "";
  return XmlDoc::Text(doc.root(), "Code");
}

std::string XmlEscape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out.push_back(c);
    }
  }
  return out;
}

// ---- requests ----

using Query = std::vector<std::pair<std::string, std::string>>;

struct Request {
  const char* method = "GET";
  std::string key;  // empty: the bucket itself
  Query query;
  std::vector<std::string> headers;
  const std::string_view* body = nullptr;  // sent as is (PUT/POST)
  int download_fd = -1;                    // a 2xx body goes here instead of `Response::body`
  const char* what = "";                   // for messages: "PutObject"...
};

struct Response {
  long status = 0;
  std::string body;
  std::string etag;
  std::string error_code;  // <Error><Code> of the body, when there is one
};

struct Transfer {
  CURL* curl = nullptr;
  Response* response = nullptr;
  int download_fd = -1;
  int write_errno = 0;
};

size_t OnHeader(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  std::string_view line(data, size * n);
  constexpr std::string_view kEtag = "etag:";
  if (line.size() > kEtag.size() &&
      strncasecmp(line.data(), kEtag.data(), kEtag.size()) == 0) {
    std::string_view v = line.substr(kEtag.size());
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
    while (!v.empty() && (v.back() == '\r' || v.back() == '\n' || v.back() == ' ')) {
      v.remove_suffix(1);
    }
    t->response->etag = std::string(v);
  }
  return size * n;
}

size_t OnBody(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t len = size * n;
  long status = 0;
  curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &status);
  if (t->download_fd >= 0 && status >= 200 && status < 300) {
    size_t done = 0;
    while (done < len) {
      ssize_t w = ::write(t->download_fd, data + done, len - done);
      if (w < 0) {
        if (errno == EINTR) continue;
        t->write_errno = errno;
        return 0;  // ends the transfer (CURLE_WRITE_ERROR)
      }
      done += static_cast<size_t>(w);
    }
    return len;
  }
  const size_t cap = (t->download_fd >= 0 || status >= 300) ? kMaxErrorBody : kMaxListBody;
  if (t->response->body.size() + len > cap) return 0;
  t->response->body.append(data, len);
  return len;
}

bool TransientCurl(CURLcode rc) {
  switch (rc) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
      return true;
    default:
      return false;
  }
}

bool TransientResponse(const Response& r) {
  if (r.status >= 500 || r.status == 429) return true;
  return r.error_code == "SlowDown" || r.error_code == "RequestTimeout" ||
         r.error_code == "InternalError" || r.error_code == "ServiceUnavailable";
}

// The S3 client under the store: URLs, signing, retries, a handle pool.
class S3Client {
 public:
  explicit S3Client(const S3Settings& s) : s_(s) {
    std::string endpoint = s.endpoint.empty() ? "https://s3." + s.region + ".amazonaws.com"
                                              : s.endpoint;
    while (endpoint.ends_with('/')) endpoint.pop_back();
    if (s.force_path_style) {
      base_ = endpoint + "/" + UriEncode(s.bucket, false);
    } else {
      size_t scheme_end = endpoint.find("://");
      size_t host_at = scheme_end == std::string::npos ? 0 : scheme_end + 3;
      base_ = endpoint.substr(0, host_at) + s.bucket + "." + endpoint.substr(host_at);
    }
    sigv4_ = "aws:amz:" + s.region + ":s3";
  }
  ~S3Client() {
    for (CURL* c : idle_) curl_easy_cleanup(c);
  }
  S3Client(const S3Client&) = delete;
  S3Client& operator=(const S3Client&) = delete;

  const std::string& bucket() const { return s_.bucket; }

  // One request, retried while it fails transiently. A response with an
  // HTTP status is returned whatever the status (the caller judges it),
  // except that a transient one that outlived the retries is kUnavailable.
  Result<Response> Send(const Request& req) {
    int64_t backoff = s_.retry_base_ms;
    const int attempts = std::max(1, s_.max_attempts);
    Status last;
    for (int attempt = 1; attempt <= attempts; ++attempt) {
      if (req.download_fd >= 0) {
        // A retried download starts the file over.
        if (::ftruncate(req.download_fd, 0) != 0 || ::lseek(req.download_fd, 0, SEEK_SET) != 0) {
          return Unavailable(std::string("truncate download file: ") + std::strerror(errno));
        }
      }
      Response resp;
      int write_errno = 0;
      CURLcode rc = Perform(req, &resp, &write_errno);
      if (write_errno != 0) {
        return Unavailable(std::string(req.what) + ": writing the download: " +
                           std::strerror(write_errno));
      }
      if (rc == CURLE_OK) {
        resp.error_code = ErrorCode(resp.body);
        if (!TransientResponse(resp)) return resp;
        last = Unavailable(std::string(req.what) + " " + req.key + ": HTTP " +
                           std::to_string(resp.status) +
                           (resp.error_code.empty() ? "" : " " + resp.error_code));
      } else if (TransientCurl(rc)) {
        last = Unavailable(std::string(req.what) + " " + req.key + ": " + curl_easy_strerror(rc));
      } else {
        return Unavailable(std::string(req.what) + " " + req.key + ": " + curl_easy_strerror(rc));
      }
      if (attempt < attempts) {
        spdlog::warn("s3: {} (attempt {} of {}; again in {} ms)", last.message(), attempt,
                     attempts, backoff);
        std::this_thread::sleep_for(std::chrono::milliseconds(backoff));
        backoff = std::min(backoff * 2, s_.retry_max_ms);
      }
    }
    return last;
  }

 private:
  std::string UrlFor(const std::string& key, const Query& query) const {
    std::string url = base_ + "/" + UriEncode(key, true);
    if (key.empty() && s_.force_path_style) url.pop_back();  // "/bucket", not "/bucket/"
    // Sorted and encoded as SigV4's canonical query string wants it, so the
    // signature libcurl computes over the URL matches AWS's.
    Query q = query;
    std::sort(q.begin(), q.end());
    for (size_t i = 0; i < q.size(); ++i) {
      url += i == 0 ? '?' : '&';
      url += UriEncode(q[i].first, false) + "=" + UriEncode(q[i].second, false);
    }
    return url;
  }

  CURL* Take() {
    {
      std::lock_guard lock(mu_);
      if (!idle_.empty()) {
        CURL* c = idle_.back();
        idle_.pop_back();
        return c;
      }
    }
    return curl_easy_init();
  }
  void Give(CURL* c) {
    std::lock_guard lock(mu_);
    idle_.push_back(c);
  }

  CURLcode Perform(const Request& req, Response* resp, int* write_errno) {
    CURL* c = Take();
    if (c == nullptr) return CURLE_FAILED_INIT;
    curl_easy_reset(c);
    Transfer t{c, resp, req.download_fd, 0};
    const std::string url = UrlFor(req.key, req.query);
    curl_easy_setopt(c, CURLOPT_URL, url.c_str());
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(s_.connect_timeout_ms));
    // A stalled transfer (no byte for stall_timeout_ms) fails; a slow one
    // that moves does not (parts are large).
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME,
                     std::max(1L, static_cast<long>(s_.stall_timeout_ms / 1000)));
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    if (!s_.access_key_id.empty() || !s_.secret_access_key.empty()) {
      curl_easy_setopt(c, CURLOPT_AWS_SIGV4, sigv4_.c_str());
      curl_easy_setopt(c, CURLOPT_USERNAME, s_.access_key_id.c_str());
      curl_easy_setopt(c, CURLOPT_PASSWORD, s_.secret_access_key.c_str());
    }
    curl_slist* headers = nullptr;
    // libcurl signs every header set here (and host, x-amz-date); so only
    // headers that are really sent, with their values, may be listed.
    headers = curl_slist_append(headers, "x-amz-content-sha256: UNSIGNED-PAYLOAD");
    for (const std::string& h : req.headers) headers = curl_slist_append(headers, h.c_str());
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    const std::string_view method = req.method;
    if (req.body != nullptr) {
      curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(req.body->size()));
      curl_easy_setopt(c, CURLOPT_POSTFIELDS, req.body->data());
      curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req.method);
    } else if (method == "POST") {
      curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(0));
      curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
    } else if (method == "HEAD") {
      curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    } else if (method != "GET") {
      curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req.method);
    }
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, OnHeader);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &t);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, OnBody);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);
    CURLcode rc = curl_easy_perform(c);
    if (rc == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp->status);
    *write_errno = t.write_errno;
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, static_cast<curl_slist*>(nullptr));
    curl_slist_free_all(headers);
    Give(c);
    return rc;
  }

  const S3Settings& s_;
  std::string base_;   // scheme://host[:port]/bucket (path style) or scheme://bucket.host[:port]
  std::string sigv4_;  // "aws:amz:<region>:s3"
  std::mutex mu_;
  std::vector<CURL*> idle_;
};

// A failed response as a Status.
Status Failure(const char* what, const std::string& key, const Response& r) {
  std::string msg = std::string(what) + " " + key + ": HTTP " + std::to_string(r.status) +
                    (r.error_code.empty() ? "" : " " + r.error_code);
  if (r.status == 404) return NotFound(std::move(msg));
  if (r.status == 401 || r.status == 403) return {Errc::kPermissionDenied, std::move(msg)};
  return Internal(std::move(msg));
}

bool Ok(const Response& r) { return r.status >= 200 && r.status < 300 && r.error_code.empty(); }

// ---- the store ----

class S3BlobStore;

class S3BlobWriter final : public BlobWriter {
 public:
  S3BlobWriter(S3BlobStore* store, std::string id, std::string key)
      : store_(store), id_(std::move(id)), key_(std::move(key)) {}
  ~S3BlobWriter() override { Abort(); }
  S3BlobWriter(const S3BlobWriter&) = delete;
  S3BlobWriter& operator=(const S3BlobWriter&) = delete;

  Result<void> Append(std::string_view bytes) override;
  int64_t size() const override { return size_; }
  Result<std::string> Commit(bool fsync) override;
  void Abort() override;

 private:
  enum class State { kOpen, kCommitted, kAborted };
  Result<void> SendPart();
  Result<std::string> Finish();

  S3BlobStore* const store_;
  const std::string id_;
  const std::string key_;
  std::string buffer_;  // the part being filled; never more than one part
  std::string upload_id_;
  std::vector<std::string> etags_;  // of parts 1..n
  int64_t size_ = 0;
  bool finishing_ = false;  // a PutObject or completion was sent
  State state_ = State::kOpen;
};

class S3BlobStore final : public BlobStore {
 public:
  explicit S3BlobStore(S3Settings s) : s_(std::move(s)), client_(s_) {}
  ~S3BlobStore() override {
    {
      std::lock_guard lock(abort_mu_);
      stopping_ = true;
    }
    abort_cv_.notify_all();
    if (aborter_.joinable()) aborter_.join();  // drains what is queued first
  }

  S3Client& client() { return client_; }
  const S3Settings& settings() const { return s_; }

  std::string KeyOf(const std::string& id) const {
    return s_.prefix.empty() ? id : s_.prefix + "/" + id;
  }

  Result<std::unique_ptr<BlobWriter>> Create(const std::string& id) override {
    if (!IsUuid(id)) return InvalidArgument("blob id must be a UUID");
    return std::unique_ptr<BlobWriter>(new S3BlobWriter(this, id, KeyOf(id)));
  }

  std::string Location(const std::string& id) const override {
    return "s3://" + s_.bucket + "/" + KeyOf(id);
  }

  Result<void> Remove(const std::string& id) override {
    if (!IsUuid(id)) return InvalidArgument("blob id must be a UUID");
    return DeleteKey(KeyOf(id));
  }

  Result<OpenedBlob> OpenBlob(const std::string& id) override {
    if (!IsUuid(id)) return InvalidArgument(kInvalidStoragePath);
    return Download(KeyOf(id), id);
  }

  Result<OpenedBlob> Adopt(const std::string& location, const std::string& id) override {
    if (!IsUuid(id)) return InvalidArgument(kInvalidStoragePath);
    auto key = KeyOfLocation(location, id);
    if (!key) return key.status();
    const std::string own = KeyOf(id);
    if (*key == own) return Download(own, id);
    // Claim it: copy to the job's own key, then delete the original.
    Request copy;
    copy.method = "PUT";
    copy.key = own;
    copy.what = "CopyObject";
    copy.headers.push_back("x-amz-copy-source: /" + UriEncode(s_.bucket, false) + "/" +
                           UriEncode(*key, true));
    auto copied = client_.Send(copy);
    if (!copied) return copied.status();
    if (copied->status == 404) {
      // Gone: an earlier attempt of this job may have claimed it.
      auto blob = Download(own, id);
      if (blob || blob.code() != Errc::kNotFound) return blob;
      return NotFound("object " + location + " is missing");
    }
    if (!Ok(*copied)) return Failure("CopyObject", *key, *copied);
    if (auto removed = DeleteKey(*key); !removed) {
      spdlog::warn("s3: adopted {} as {} but could not delete the original: {}", *key, own,
                   removed.status().ToString());
    }
    return Download(own, id);
  }

  int RemoveStaleTemps(int64_t older_than_ms) override {
    auto uploads = ListUploads();
    if (!uploads) {
      spdlog::warn("s3: listing multipart uploads: {}", uploads.status().ToString());
      return 0;
    }
    int removed = 0;
    for (const auto& u : *uploads) {
      if (u.initiated_ms >= older_than_ms) continue;
      if (AbortUpload(u.key, u.upload_id)) ++removed;
    }
    return removed;
  }

  int CountTemps() const override {
    auto uploads = const_cast<S3BlobStore*>(this)->ListUploads();
    return uploads ? static_cast<int>(uploads->size()) : 0;
  }

  Result<std::vector<StoredBlob>> ListBlobs() const override {
    return const_cast<S3BlobStore*>(this)->ListObjects();
  }

  // Cleans up after a writer that did not commit, on the store's own thread:
  // aborts its multipart upload (when `upload_id` is set) and deletes its
  // object (when `remove`: a PUT or completion whose answer was lost may
  // have made it). Never blocks: a writer is often destroyed on a thread
  // that must not wait for the network (the API's socket threads, when the
  // client goes away mid-upload).
  void CleanUpLater(std::string key, std::string upload_id, std::string id, bool remove) {
    std::lock_guard lock(abort_mu_);
    aborts_.push_back({std::move(key), std::move(upload_id), std::move(id), remove});
    if (!aborter_.joinable()) aborter_ = std::thread([this] { AbortLoop(); });
    abort_cv_.notify_one();
  }

  // AbortMultipartUpload; a missing upload counts as aborted.
  bool AbortUpload(const std::string& key, const std::string& upload_id) {
    Request req;
    req.method = "DELETE";
    req.key = key;
    req.query = {{"uploadId", upload_id}};
    req.what = "AbortMultipartUpload";
    auto r = client_.Send(req);
    if (r && (Ok(*r) || r->status == 404)) return true;
    spdlog::warn("s3: aborting multipart upload of {}: {}", key,
                 r ? Failure("AbortMultipartUpload", key, *r).ToString() : r.status().ToString());
    return false;
  }

 private:
  struct Upload {
    std::string key, upload_id;
    int64_t initiated_ms = 0;
  };
  struct CleanUp {
    std::string key, upload_id, id;
    bool remove = false;
  };

  void AbortLoop() {
    std::unique_lock lock(abort_mu_);
    for (;;) {
      abort_cv_.wait(lock, [this] { return stopping_ || !aborts_.empty(); });
      if (aborts_.empty()) return;  // stopping, and nothing left
      CleanUp c = std::move(aborts_.front());
      aborts_.pop_front();
      lock.unlock();
      if (!c.upload_id.empty()) (void)AbortUpload(c.key, c.upload_id);
      if (c.remove) (void)Remove(c.id);
      lock.lock();
    }
  }

  std::string ListPrefix() const { return s_.prefix.empty() ? "" : s_.prefix + "/"; }

  Result<void> DeleteKey(const std::string& key) {
    Request req;
    req.method = "DELETE";
    req.key = key;
    req.what = "DeleteObject";
    auto r = client_.Send(req);
    if (!r) return r.status();
    if (Ok(*r) || r->status == 404) return {};
    return Failure("DeleteObject", key, *r);
  }

  // "s3://bucket/key" of a producer's object for job `id`: the key, when it
  // is this store's bucket, under its prefix, and not another job's blob.
  Result<std::string> KeyOfLocation(const std::string& location, const std::string& id) const {
    const std::string scheme = "s3://" + s_.bucket + "/";
    if (!location.starts_with(scheme)) return InvalidArgument(kInvalidStoragePath);
    std::string key = location.substr(scheme.size());
    const std::string prefix = ListPrefix();
    if (!key.starts_with(prefix)) return InvalidArgument(kInvalidStoragePath);
    std::string_view rest = std::string_view(key).substr(prefix.size());
    size_t components = 0;
    for (std::string_view r = rest;;) {
      size_t slash = r.find('/');
      std::string_view part = r.substr(0, slash);
      if (part.empty() || part == "." || part == "..") return InvalidArgument(kInvalidStoragePath);
      ++components;
      if (slash == std::string_view::npos) break;
      r.remove_prefix(slash + 1);
    }
    if (components == 1 && IsUuid(rest) && rest != id) return InvalidArgument(kInvalidStoragePath);
    return key;
  }

  // GetObject `key` into a private temp file, reopened read-only and
  // unlinked before it is returned. The file is created unnamed
  // (O_TMPFILE) where the file system allows it, so a worker killed in the
  // middle leaves nothing behind; elsewhere it has a name until it is
  // reopened, and what a killed worker left is removed at the next start
  // (RemoveStaleDownloads).
  Result<OpenedBlob> Download(const std::string& key, const std::string& id) {
    std::string path;
    int wfd = ::open(s_.download_dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (wfd < 0) {
      path = s_.download_dir + "/" + id + "." + NewUuid() + std::string(kDownloadSuffix);
      wfd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
      if (wfd < 0) return Unavailable("create " + path + ": " + std::strerror(errno));
    }
    UniqueFd writer(wfd);
    struct Unlink {
      const std::string& p;
      ~Unlink() {
        if (!p.empty()) ::unlink(p.c_str());
      }
    } unlink_at_end{path};
    // The read-only descriptor the parser gets: the same file reopened.
    const std::string reopen = path.empty() ? "/proc/self/fd/" + std::to_string(wfd) : path;
    Request req;
    req.key = key;
    req.download_fd = wfd;
    req.what = "GetObject";
    auto r = client_.Send(req);
    if (!r) return r.status();
    if (!Ok(*r)) return Failure("GetObject", key, *r);
    int rfd = ::open(reopen.c_str(), O_RDONLY | O_CLOEXEC | (path.empty() ? 0 : O_NOFOLLOW));
    if (rfd < 0) return Unavailable("open " + reopen + ": " + std::strerror(errno));
    OpenedBlob out;
    out.fd = UniqueFd(rfd);
    out.path = "s3://" + s_.bucket + "/" + key;
    struct stat st {};
    if (::fstat(rfd, &st) != 0) return Unavailable("stat " + reopen + ": " + std::strerror(errno));
    out.size_bytes = static_cast<int64_t>(st.st_size);
    return out;
  }

  Result<std::vector<StoredBlob>> ListObjects() {
    std::vector<StoredBlob> blobs;
    const std::string prefix = ListPrefix();
    std::string token;
    for (;;) {
      Request req;
      req.query = {{"list-type", "2"}, {"prefix", prefix}, {"delimiter", "/"}};
      if (!token.empty()) req.query.emplace_back("continuation-token", token);
      req.what = "ListObjectsV2";
      auto r = client_.Send(req);
      if (!r) return r.status();
      if (!Ok(*r)) return Unavailable(Failure("ListObjectsV2", prefix, *r).message());
      XmlDoc doc(r->body);
      if (!XmlDoc::Is(doc.root(), "ListBucketResult")) {
        return Unavailable("ListObjectsV2: unreadable answer");
      }
      for (xmlNode* c : XmlDoc::Children(doc.root(), "Contents")) {
        std::string key = XmlDoc::Text(c, "Key");
        if (!key.starts_with(prefix)) continue;
        std::string name = key.substr(prefix.size());
        if (!IsUuid(name)) continue;
        blobs.push_back({name, ParseIsoTimeMs(XmlDoc::Text(c, "LastModified"))});
      }
      token = XmlDoc::Text(doc.root(), "NextContinuationToken");
      if (XmlDoc::Text(doc.root(), "IsTruncated") != "true" || token.empty()) break;
    }
    return blobs;
  }

  Result<std::vector<Upload>> ListUploads() {
    std::vector<Upload> uploads;
    std::string key_marker, id_marker;
    for (;;) {
      Request req;
      req.query = {{"uploads", ""}, {"prefix", ListPrefix()}};
      if (!key_marker.empty()) req.query.emplace_back("key-marker", key_marker);
      if (!id_marker.empty()) req.query.emplace_back("upload-id-marker", id_marker);
      req.what = "ListMultipartUploads";
      auto r = client_.Send(req);
      if (!r) return r.status();
      if (!Ok(*r)) return Unavailable(Failure("ListMultipartUploads", ListPrefix(), *r).message());
      XmlDoc doc(r->body);
      if (!XmlDoc::Is(doc.root(), "ListMultipartUploadsResult")) {
        return Unavailable("ListMultipartUploads: unreadable answer");
      }
      for (xmlNode* u : XmlDoc::Children(doc.root(), "Upload")) {
        uploads.push_back({XmlDoc::Text(u, "Key"), XmlDoc::Text(u, "UploadId"),
                           ParseIsoTimeMs(XmlDoc::Text(u, "Initiated"))});
      }
      key_marker = XmlDoc::Text(doc.root(), "NextKeyMarker");
      id_marker = XmlDoc::Text(doc.root(), "NextUploadIdMarker");
      if (XmlDoc::Text(doc.root(), "IsTruncated") != "true" || key_marker.empty()) break;
    }
    return uploads;
  }

  const S3Settings s_;
  S3Client client_;
  std::mutex abort_mu_;
  std::condition_variable abort_cv_;
  std::deque<CleanUp> aborts_;
  bool stopping_ = false;
  std::thread aborter_;  // started by the first CleanUpLater
};

// ---- the writer ----

Result<void> S3BlobWriter::Append(std::string_view bytes) {
  if (state_ != State::kOpen) return FailedPrecondition("blob writer is closed");
  const auto part = static_cast<size_t>(store_->settings().part_size);
  if (buffer_.capacity() < std::min(part, buffer_.size() + bytes.size())) {
    // Grows with the upload up to one part: a small file costs little.
    buffer_.reserve(std::min(part, std::max(buffer_.size() + bytes.size(), 2 * buffer_.size())));
  }
  while (!bytes.empty()) {
    size_t take = std::min(bytes.size(), part - buffer_.size());
    buffer_.append(bytes.substr(0, take));
    bytes.remove_prefix(take);
    size_ += static_cast<int64_t>(take);
    if (buffer_.size() == part) {
      if (auto sent = SendPart(); !sent) {
        Abort();
        return sent;
      }
    }
  }
  return {};
}

// Sends the buffer as the next part (starting the multipart upload first).
Result<void> S3BlobWriter::SendPart() {
  S3Client& client = store_->client();
  if (upload_id_.empty()) {
    Request init;
    init.method = "POST";
    init.key = key_;
    init.query = {{"uploads", ""}};
    init.headers = {"Content-Type: application/octet-stream"};
    init.what = "CreateMultipartUpload";
    auto r = client.Send(init);
    if (!r) return r.status();
    if (!Ok(*r)) return Failure("CreateMultipartUpload", key_, *r);
    XmlDoc doc(r->body);
    upload_id_ = XmlDoc::Text(doc.root(), "UploadId");
    if (upload_id_.empty()) return Internal("CreateMultipartUpload " + key_ + ": no UploadId");
  }
  const std::string_view body = buffer_;
  Request put;
  put.method = "PUT";
  put.key = key_;
  put.query = {{"partNumber", std::to_string(etags_.size() + 1)}, {"uploadId", upload_id_}};
  put.body = &body;
  put.what = "UploadPart";
  auto r = client.Send(put);
  if (!r) return r.status();
  if (!Ok(*r)) return Failure("UploadPart", key_, *r);
  if (r->etag.empty()) return Internal("UploadPart " + key_ + ": no ETag");
  etags_.push_back(r->etag);
  buffer_.clear();  // keeps its capacity: the one part buffer
  return {};
}

Result<std::string> S3BlobWriter::Finish() {
  S3Client& client = store_->client();
  if (upload_id_.empty()) {
    // Smaller than one part: a single PUT.
    const std::string_view body = buffer_;
    Request put;
    put.method = "PUT";
    put.key = key_;
    put.headers = {"Content-Type: application/octet-stream"};
    put.body = &body;
    put.what = "PutObject";
    auto r = client.Send(put);
    if (!r) return r.status();
    if (!Ok(*r)) return Failure("PutObject", key_, *r);
    return store_->Location(id_);
  }
  if (!buffer_.empty()) CONVEYOR_RETURN_IF_ERROR(SendPart());
  std::string xml = "<CompleteMultipartUpload>";
  for (size_t i = 0; i < etags_.size(); ++i) {
    xml += "<Part><PartNumber>" + std::to_string(i + 1) + "</PartNumber><ETag>" +
           XmlEscape(etags_[i]) + "</ETag></Part>";
  }
  xml += "</CompleteMultipartUpload>";
  const std::string_view body = xml;
  Request done;
  done.method = "POST";
  done.key = key_;
  done.query = {{"uploadId", upload_id_}};
  done.headers = {"Content-Type: application/xml"};
  done.body = &body;
  done.what = "CompleteMultipartUpload";
  auto r = client.Send(done);
  if (!r) return r.status();
  if (r->status == 404 && r->error_code == "NoSuchUpload") {
    // A retried completion whose first try went through: the object is there.
    Request head;
    head.method = "HEAD";
    head.key = key_;
    head.what = "HeadObject";
    auto h = client.Send(head);
    if (h && Ok(*h)) return store_->Location(id_);
  }
  // 200 with an <Error> body is a failure too (S3 reports late errors so).
  if (!Ok(*r)) return Failure("CompleteMultipartUpload", key_, *r);
  return store_->Location(id_);
}

Result<std::string> S3BlobWriter::Commit(bool /*fsync*/) {
  if (state_ != State::kOpen) return FailedPrecondition("blob writer is closed");
  finishing_ = true;
  auto location = Finish();
  if (!location) {
    Abort();
    return location.status();
  }
  state_ = State::kCommitted;
  buffer_ = std::string();
  return location;
}

void S3BlobWriter::Abort() {
  if (state_ != State::kOpen) return;
  state_ = State::kAborted;
  buffer_ = std::string();
  // A PUT or completion that failed midway may still have made the object
  // (its answer lost): nothing refers to it, so delete it too.
  if (!upload_id_.empty() || finishing_) {
    store_->CleanUpLater(key_, upload_id_, id_, finishing_);
  }
}

// Removes download files a killed worker left in `dir`.
void RemoveStaleDownloads(const std::string& dir) {
  std::error_code ec;
  const auto cutoff = fs::file_time_type::clock::now() - std::chrono::milliseconds(kStaleDownloadMs);
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (!e.path().filename().string().ends_with(kDownloadSuffix)) continue;
    std::error_code ec2;
    if (e.is_regular_file(ec2) && e.last_write_time(ec2) < cutoff) fs::remove(e.path(), ec2);
  }
}

}  // namespace

Result<S3Url> ParseS3Url(std::string_view url) {
  constexpr std::string_view kScheme = "s3://";
  if (!url.starts_with(kScheme)) return InvalidArgument("not an s3:// URL");
  url.remove_prefix(kScheme.size());
  size_t slash = url.find('/');
  S3Url out;
  out.bucket = std::string(url.substr(0, slash));
  if (slash != std::string_view::npos) out.prefix = std::string(url.substr(slash + 1));
  while (out.prefix.ends_with('/')) out.prefix.pop_back();
  if (out.bucket.empty()) return InvalidArgument("s3:// URL without a bucket");
  for (char c : out.bucket) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_')) {
      return InvalidArgument("invalid bucket name in s3:// URL");
    }
  }
  if (out.prefix.starts_with('/') || out.prefix.find("//") != std::string::npos) {
    return InvalidArgument("invalid key prefix in s3:// URL");
  }
  return out;
}

Result<std::unique_ptr<BlobStore>> OpenS3BlobStore(S3Settings settings) {
  if (settings.bucket.empty()) return InvalidArgument("S3 bucket is empty");
  if (settings.part_size < kS3MinPartBytes) {
    return InvalidArgument("S3 part size must be at least " + std::to_string(kS3MinPartBytes));
  }
  if (settings.download_dir.empty()) return InvalidArgument("S3 download directory is empty");
  if (Status s = CreatePrivateDirs(settings.download_dir); !s.ok()) return s;
  ::chmod(settings.download_dir.c_str(), 0700);
  RemoveStaleDownloads(settings.download_dir);
  InitLibraries();
  return std::unique_ptr<BlobStore>(new S3BlobStore(std::move(settings)));
}

}  // namespace conveyor::storage
