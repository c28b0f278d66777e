// The BlobStore contract on both backends: the local directory and
// S3-compatible object storage (a real s3rver process, tests/support), plus
// what only object storage has: multipart uploads while the body arrives,
// their abort, the sweep of abandoned ones, retries of transient errors (a
// loopback proxy that fails chosen requests) and the shape of the SigV4
// Authorization header libcurl produces (captured at a loopback listener).
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "core/ids.h"
#include "storage/blob_store.h"
#include "storage/metadata_store.h"
#include "storage/s3_blob_store.h"
#include "s3_server.h"
#include "test_support.h"
#include "uploads/sweeper.h"

namespace conveyor {
namespace {

namespace fs = std::filesystem;
using testing::S3Server;
using testing::TempDir;

constexpr int64_t kPart = storage::kS3MinPartBytes;  // 5 MiB: the smallest S3 allows

// One s3rver for the whole program (stopped by its destructor at exit); each
// test uses a prefix of its own.
S3Server& Server() {
  static S3Server server("conveyor-test");
  return server;
}

storage::S3Settings SettingsFor(const std::string& endpoint, const std::string& prefix,
                                const std::string& download_dir) {
  storage::S3Settings s;
  s.bucket = "conveyor-test";
  s.prefix = prefix;
  s.endpoint = endpoint;
  s.region = "eu-west-3";
  s.access_key_id = "S3RVER";  // s3rver's built-in account
  s.secret_access_key = "S3RVER";
  s.force_path_style = true;
  s.part_size = kPart;
  s.download_dir = download_dir;
  s.retry_base_ms = 10;
  s.retry_max_ms = 50;
  return s;
}

std::string Pattern(size_t n, uint32_t seed) {
  std::string out(n, '\0');
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < n; ++i) {
    x = x * 1664525u + 1013904223u;
    out[i] = static_cast<char>(x >> 24);
  }
  return out;
}

std::string ReadFd(int fd) {
  std::string out;
  char buf[1 << 16];
  off_t at = 0;
  for (;;) {
    ssize_t n = ::pread(fd, buf, sizeof buf, at);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
    at += n;
  }
  return out;
}

// Writes `data` as blob `id` in `pieces`-byte appends and commits it.
Result<std::string> Write(storage::BlobStore& store, const std::string& id,
                          const std::string& data, size_t pieces = 64 * 1024) {
  auto w = store.Create(id);
  if (!w) return w.status();
  for (size_t at = 0; at < data.size(); at += pieces) {
    CONVEYOR_RETURN_IF_ERROR((*w)->Append(std::string_view(data).substr(at, pieces)));
  }
  return (*w)->Commit(false);
}

// ---- a loopback HTTP proxy that can answer chosen requests itself ----

// Forwards each connection to `upstream_port`, except that `decide` sees each
// request head first and may answer it instead (status code) and close.
// Every request head seen is kept. Good for one request per connection and
// for keep-alive connections whose requests pass (they are then piped).
class Proxy {
 public:
  using Decide = std::function<std::optional<int>(const std::string& head)>;
  Proxy(int upstream_port, Decide decide) : upstream_(upstream_port), decide_(std::move(decide)) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    socklen_t len = sizeof a;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    ::listen(listen_fd_, 16);
    thread_ = std::thread([this] { Loop(); });
  }
  ~Proxy() {
    stop_ = true;
    ::shutdown(listen_fd_, SHUT_RDWR);
    ::close(listen_fd_);
    thread_.join();
    for (auto& t : conns_) t.join();
  }
  int port() const { return port_; }
  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::vector<std::string> heads() {
    std::lock_guard lock(mu_);
    return heads_;
  }

 private:
  void Loop() {
    while (!stop_) {
      int c = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) {
        if (stop_) return;
        continue;
      }
      conns_.emplace_back([this, c] { Serve(c); });
    }
  }

  // Reads one request head (and its Content-Length body) from `c`.
  static bool ReadRequest(int c, std::string* head, std::string* rest) {
    std::string buf;
    char tmp[65536];
    size_t end;
    while ((end = buf.find("\r\n\r\n")) == std::string::npos) {
      ssize_t n = ::recv(c, tmp, sizeof tmp, 0);
      if (n <= 0) return false;
      buf.append(tmp, static_cast<size_t>(n));
    }
    *head = buf.substr(0, end + 4);
    *rest = buf.substr(end + 4);
    return true;
  }

  void Serve(int c) {
    std::string head, rest;
    if (!ReadRequest(c, &head, &rest)) {
      ::close(c);
      return;
    }
    {
      std::lock_guard lock(mu_);
      heads_.push_back(head);
    }
    if (auto status = decide_(head)) {
      // Read the body first, so the client sees the answer, not a reset.
      std::smatch m;
      static const std::regex kLength("[Cc]ontent-[Ll]ength: *([0-9]+)");
      if (std::regex_search(head, m, kLength)) {
        size_t want = std::stoul(m[1]);
        char tmp[65536];
        while (rest.size() < want) {
          ssize_t n = ::recv(c, tmp, sizeof tmp, 0);
          if (n <= 0) break;
          rest.append(tmp, static_cast<size_t>(n));
        }
      }
      std::string body = *status == 503 ? "<Error><Code>SlowDown</Code></Error>"
                                        : "<Error><Code>InvalidRequest</Code></Error>";
      std::string out = "HTTP/1.1 " + std::to_string(*status) +
                        " Injected\r\nContent-Type: application/xml\r\nContent-Length: " +
                        std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
      (void)!::send(c, out.data(), out.size(), MSG_NOSIGNAL);
      ::close(c);
      return;
    }
    int u = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(upstream_));
    if (::connect(u, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      ::close(u);
      ::close(c);
      return;
    }
    // "Connection: close" on the way up: one request per connection, so
    // every request passes `decide_`.
    std::string up = std::regex_replace(head, std::regex("\r\n\r\n$"), "\r\nConnection: close\r\n\r\n");
    up += rest;
    (void)!::send(u, up.data(), up.size(), MSG_NOSIGNAL);
    pollfd fds[2] = {{c, POLLIN, 0}, {u, POLLIN, 0}};
    char tmp[65536];
    while (::poll(fds, 2, 30000) > 0) {
      bool done = false;
      for (int i = 0; i < 2; ++i) {
        if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        ssize_t n = ::recv(fds[i].fd, tmp, sizeof tmp, 0);
        if (n <= 0) {
          done = true;
          break;
        }
        (void)!::send(fds[1 - i].fd, tmp, static_cast<size_t>(n), MSG_NOSIGNAL);
      }
      if (done) break;
    }
    ::close(u);
    ::close(c);
  }

  int upstream_;
  Decide decide_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::vector<std::thread> conns_;
  std::mutex mu_;
  std::vector<std::string> heads_;
};

// ---- the contract on both backends ----

enum class Backend { kLocal, kS3 };

class BlobStoreContract : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    prefix_ = "t/" + NewUuid();
    if (GetParam() == Backend::kLocal) {
      auto s = storage::OpenLocalBlobStore(dir_ / "blobs");
      ASSERT_TRUE(s.ok()) << s.status().ToString();
      store_ = std::move(*s);
    } else {
      auto s = storage::OpenS3BlobStore(SettingsFor(Server().endpoint(), prefix_, dir_ / "dl"));
      ASSERT_TRUE(s.ok()) << s.status().ToString();
      store_ = std::move(*s);
    }
  }
  bool s3() const { return GetParam() == Backend::kS3; }
  // Objects under this test's prefix, read from the server's own files.
  std::vector<std::string> Objects() const {
    std::vector<std::string> out;
    for (const auto& k : Server().ObjectKeys()) {
      if (k.starts_with(prefix_ + "/")) out.push_back(k.substr(prefix_.size() + 1));
    }
    return out;
  }
  // Temp files or multipart uploads in progress.
  int InProgress() const { return s3() ? Server().MultipartUploads() : store_->CountTemps(); }
  bool Listed(const std::string& id) {
    auto l = store_->ListBlobs();
    EXPECT_TRUE(l.ok()) << l.status().ToString();
    if (!l) return false;
    for (const auto& b : *l) {
      if (b.id == id) return true;
    }
    return false;
  }

  TempDir dir_;
  std::string prefix_;
  std::unique_ptr<storage::BlobStore> store_;
};

TEST_P(BlobStoreContract, WriteReadListDelete) {
  const std::string id = NewUuid();
  std::string data;
  auto w = store_->Create(id);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  for (int i = 0; i < 500; ++i) {
    std::string line = "line " + std::to_string(i) + " of a small blob\n";
    data += line;
    ASSERT_TRUE((*w)->Append(line).ok());
  }
  EXPECT_EQ((*w)->size(), static_cast<int64_t>(data.size()));
  auto location = (*w)->Commit(true);
  ASSERT_TRUE(location.ok()) << location.status().ToString();
  EXPECT_EQ(*location, store_->Location(id));
  if (s3()) {
    EXPECT_EQ(*location, "s3://conveyor-test/" + prefix_ + "/" + id);
    EXPECT_EQ(Objects(), std::vector<std::string>{id});
  }
  EXPECT_EQ((*w)->Append("x").code(), Errc::kFailedPrecondition);
  w->reset();  // a committed writer's destructor keeps the blob

  auto blob = store_->OpenBlob(id);
  ASSERT_TRUE(blob.ok()) << blob.status().ToString();
  EXPECT_EQ(blob->size_bytes, static_cast<int64_t>(data.size()));
  EXPECT_EQ(ReadFd(blob->fd.get()), data);
  EXPECT_TRUE(Listed(id));
  if (s3()) {
    // The object's private copy is already unlinked: nothing on disk.
    EXPECT_TRUE(fs::is_empty(dir_ / "dl"));
  }

  ASSERT_TRUE(store_->Remove(id).ok());
  EXPECT_EQ(store_->OpenBlob(id).code(), Errc::kNotFound);
  EXPECT_TRUE(store_->Remove(id).ok());  // missing is fine
  EXPECT_FALSE(Listed(id));
  if (s3()) {
    EXPECT_TRUE(Objects().empty());
  }
  EXPECT_EQ(store_->Remove("../" + id).code(), Errc::kInvalidArgument);
  EXPECT_EQ(store_->OpenBlob("not-a-uuid").code(), Errc::kInvalidArgument);
  EXPECT_EQ(InProgress(), 0);
}

TEST_P(BlobStoreContract, LargeBlobStreamsInParts) {
  // 21 MiB and a bit with 5 MiB parts: four full parts and a short last one.
  const std::string id = NewUuid();
  const std::string data = Pattern(21 * (1 << 20) + 12345, 7);
  auto w = store_->Create(id);
  ASSERT_TRUE(w.ok());
  const size_t piece = 64 * 1024;
  size_t at = 0;
  for (; at < static_cast<size_t>(kPart) + piece; at += piece) {
    ASSERT_TRUE((*w)->Append(std::string_view(data).substr(at, piece)).ok());
  }
  if (s3()) {
    // Past the first part, before the commit: a multipart upload is under
    // way and no object is visible yet.
    EXPECT_EQ(Server().MultipartUploads(), 1);
    EXPECT_TRUE(Objects().empty());
  }
  for (; at < data.size(); at += piece) {
    ASSERT_TRUE((*w)->Append(std::string_view(data).substr(at, piece)).ok());
  }
  auto location = (*w)->Commit(false);
  ASSERT_TRUE(location.ok()) << location.status().ToString();
  EXPECT_EQ(InProgress(), 0);
  auto blob = store_->OpenBlob(id);
  ASSERT_TRUE(blob.ok()) << blob.status().ToString();
  EXPECT_EQ(blob->size_bytes, static_cast<int64_t>(data.size()));
  EXPECT_TRUE(ReadFd(blob->fd.get()) == data);
  ASSERT_TRUE(store_->Remove(id).ok());
}

TEST_P(BlobStoreContract, AbortLeavesNothing) {
  {
    // Aborted after two parts went out.
    auto w = store_->Create(NewUuid());
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE((*w)->Append(Pattern(2 * kPart + 100, 1)).ok());
    if (s3()) {
      EXPECT_EQ(Server().MultipartUploads(), 1);
    }
    (*w)->Abort();
    (*w)->Abort();  // idempotent
    // The object store aborts on a thread of its own, soon after.
    EXPECT_TRUE(testing::Eventually([&] { return InProgress() == 0; }, std::chrono::seconds(10)));
  }
  {
    // Cut off: the writer is destroyed uncommitted.
    auto w = store_->Create(NewUuid());
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE((*w)->Append(Pattern(kPart + 1, 2)).ok());
  }
  EXPECT_TRUE(testing::Eventually([&] { return InProgress() == 0; }, std::chrono::seconds(10)));
  auto listed = store_->ListBlobs();
  ASSERT_TRUE(listed.ok());
  EXPECT_TRUE(listed->empty());
  if (s3()) {
    EXPECT_TRUE(Objects().empty());
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, BlobStoreContract,
                         ::testing::Values(Backend::kLocal, Backend::kS3),
                         [](const auto& info) {
                           return info.param == Backend::kLocal ? "Local" : "S3";
                         });

// ---- object storage only ----

class S3BlobStoreTest : public ::testing::Test {
 protected:
  std::unique_ptr<storage::BlobStore> Open(const std::string& endpoint,
                                           const std::string& prefix) {
    auto s = storage::OpenS3BlobStore(SettingsFor(endpoint, prefix, dir_ / "dl"));
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s ? std::move(*s) : nullptr;
  }
  int Count(const std::string& prefix) {
    int n = 0;
    for (const auto& k : Server().ObjectKeys()) n += k.starts_with(prefix + "/");
    return n;
  }
  TempDir dir_;
  const std::string prefix_ = "t/" + NewUuid();
};

TEST_F(S3BlobStoreTest, ADownloadedBlobIsReadOnlyAndLeavesNoFile) {
  // The worker's copy of an object is unnamed from the start (O_TMPFILE):
  // a worker killed while it downloads leaves no file in its temp dir (the
  // fleet test kills one mid-job).
  auto store = Open(Server().endpoint(), prefix_);
  ASSERT_TRUE(store);
  const std::string id = NewUuid();
  const std::string data = Pattern(300000, 7);
  auto w = store->Create(id);
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE((*w)->Append(data).ok());
  ASSERT_TRUE((*w)->Commit(false).ok());
  auto blob = store->OpenBlob(id);
  ASSERT_TRUE(blob.ok()) << blob.status().ToString();
  EXPECT_TRUE(fs::is_empty(dir_ / "dl"));
  EXPECT_EQ(::fcntl(blob->fd.get(), F_GETFL) & O_ACCMODE, O_RDONLY);
  EXPECT_TRUE(ReadFd(blob->fd.get()) == data);
  ASSERT_TRUE(store->Remove(id).ok());
}

TEST_F(S3BlobStoreTest, FailedPartAbortsTheMultipartUpload) {
  // The second part is refused for good (400): the writer aborts.
  Proxy proxy(Server().port(), [](const std::string& head) -> std::optional<int> {
    if (head.find("partNumber=2&") != std::string::npos) return 400;
    return std::nullopt;
  });
  auto store = Open(proxy.endpoint(), prefix_);
  const std::string id = NewUuid();
  auto w = store->Create(id);
  ASSERT_TRUE(w.ok());
  Result<void> appended;
  for (int i = 0; i < 3 && appended; ++i) appended = (*w)->Append(Pattern(kPart, i));
  EXPECT_FALSE(appended.ok());
  EXPECT_EQ((*w)->Commit(false).code(), Errc::kFailedPrecondition);
  auto aborted = [&] {
    for (const auto& h : proxy.heads()) {
      if (h.rfind("DELETE ", 0) == 0 && h.find("uploadId=") != std::string::npos) return true;
    }
    return false;
  };
  EXPECT_TRUE(testing::Eventually(aborted, std::chrono::seconds(10)))
      << "no AbortMultipartUpload was sent";
  EXPECT_TRUE(testing::Eventually([&] { return Server().MultipartUploads() == 0; },
                                  std::chrono::seconds(10)));
  EXPECT_EQ(Count(prefix_), 0);
}

TEST_F(S3BlobStoreTest, TransientErrorsAreRetried) {
  // The first request of each kind gets 503 SlowDown; the second passes.
  std::mutex mu;
  std::set<std::string> failed;
  Proxy proxy(Server().port(), [&](const std::string& head) -> std::optional<int> {
    std::string method = head.substr(0, head.find(' '));
    std::lock_guard lock(mu);
    if (failed.insert(method).second) return 503;
    return std::nullopt;
  });
  auto store = Open(proxy.endpoint(), prefix_);
  const std::string id = NewUuid();
  auto location = Write(*store, id, "retried blob");
  ASSERT_TRUE(location.ok()) << location.status().ToString();
  auto blob = store->OpenBlob(id);
  ASSERT_TRUE(blob.ok()) << blob.status().ToString();
  EXPECT_EQ(ReadFd(blob->fd.get()), "retried blob");
  ASSERT_TRUE(store->Remove(id).ok());
  EXPECT_EQ(Count(prefix_), 0);
  // PUT, GET, DELETE: each sent twice.
  int puts = 0;
  for (const auto& h : proxy.heads()) puts += h.rfind("PUT ", 0) == 0;
  EXPECT_EQ(puts, 2);
  EXPECT_EQ(proxy.heads().size(), 6u);
}

TEST_F(S3BlobStoreTest, ErrorsThatOutliveTheRetriesAreUnavailable) {
  Proxy proxy(Server().port(), [](const std::string&) -> std::optional<int> { return 503; });
  auto store = Open(proxy.endpoint(), prefix_);
  auto location = Write(*store, NewUuid(), "never stored");
  EXPECT_EQ(location.code(), Errc::kUnavailable);
  // PutObject's five tries, then the cleanup's five DELETE tries (on the
  // store's thread; its destructor waits for them).
  store.reset();
  EXPECT_EQ(proxy.heads().size(), 5u + 5u);
}

TEST_F(S3BlobStoreTest, SignsWithSigV4) {
  // A listener that records one request and answers 204.
  Proxy capture(1, [](const std::string&) -> std::optional<int> { return 204; });
  auto store = Open(capture.endpoint(), prefix_);
  const std::string id = NewUuid();
  ASSERT_TRUE(store->Remove(id).ok());
  auto heads = capture.heads();
  ASSERT_EQ(heads.size(), 1u);
  const std::string& h = heads[0];
  EXPECT_EQ(h.rfind("DELETE /conveyor-test/" + prefix_ + "/" + id + " HTTP/1.1\r\n", 0), 0u) << h;
  static const std::regex kAuth(
      "\r\nAuthorization: AWS4-HMAC-SHA256 Credential=S3RVER/[0-9]{8}/eu-west-3/s3/"
      "aws4_request, SignedHeaders=([a-z0-9;-]+), Signature=[0-9a-f]{64}\r\n");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(h, m, kAuth)) << h;
  std::string signed_headers = ";" + m[1].str() + ";";
  for (const char* name : {"host", "x-amz-content-sha256", "x-amz-date"}) {
    EXPECT_NE(signed_headers.find(std::string(";") + name + ";"), std::string::npos) << name;
  }
  EXPECT_TRUE(std::regex_search(h, std::regex("\r\nX-Amz-Date: [0-9]{8}T[0-9]{6}Z\r\n"))) << h;
  EXPECT_NE(h.find("\r\nx-amz-content-sha256: UNSIGNED-PAYLOAD\r\n"), std::string::npos) << h;
}

TEST_F(S3BlobStoreTest, AdoptsAProducersObjectUnderThePrefix) {
  auto store = Open(Server().endpoint(), prefix_);
  // A Node.js producer's object, under the prefix but not a job's key.
  auto producer = Open(Server().endpoint(), prefix_ + "/incoming");
  const std::string theirs = NewUuid();
  ASSERT_TRUE(Write(*producer, theirs, "a producer's file").ok());
  const std::string location = "s3://conveyor-test/" + prefix_ + "/incoming/" + theirs;

  // Refused: another bucket, outside the prefix, dot components, another
  // job's blob.
  const std::string id = NewUuid();
  const std::string other = NewUuid();
  ASSERT_TRUE(Write(*store, other, "another job's upload").ok());
  for (const std::string& bad :
       {"s3://other-bucket/" + prefix_ + "/incoming/" + theirs,
        "s3://conveyor-test/elsewhere/" + theirs, "s3://conveyor-test/" + prefix_ + "/../x",
        "s3://conveyor-test/" + prefix_ + "/./incoming/" + theirs,
        "s3://conveyor-test/" + prefix_ + "/" + other, std::string("/abs/path/") + theirs}) {
    EXPECT_EQ(store->Adopt(bad, id).code(), Errc::kInvalidArgument) << bad;
  }

  auto blob = store->Adopt(location, id);
  ASSERT_TRUE(blob.ok()) << blob.status().ToString();
  EXPECT_EQ(ReadFd(blob->fd.get()), "a producer's file");
  // Claimed: now blob `id`, the original gone; a second attempt finds it.
  std::vector<std::string> keys;
  for (const auto& k : Server().ObjectKeys()) {
    if (k.starts_with(prefix_ + "/")) keys.push_back(k.substr(prefix_.size() + 1));
  }
  std::vector<std::string> want = {id, other};
  std::sort(want.begin(), want.end());
  EXPECT_EQ(keys, want);
  auto again = store->Adopt(location, id);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(ReadFd(again->fd.get()), "a producer's file");
  EXPECT_EQ(store->Adopt("s3://conveyor-test/" + prefix_ + "/incoming/gone.txt", NewUuid()).code(),
            Errc::kNotFound);
  EXPECT_TRUE(fs::is_empty(dir_ / "dl"));
}

// ---- the sweeper on object storage ----

class FixedClock : public Clock {
 public:
  explicit FixedClock(int64_t epoch_ms) : epoch_ms_(epoch_ms) {}
  int64_t MonotonicMs() const override { return 0; }
  int64_t EpochMs() const override { return epoch_ms_; }

 private:
  int64_t epoch_ms_;
};

TEST_F(S3BlobStoreTest, SweeperRemovesLeftoversAndAbandonedUploads) {
  auto store = Open(Server().endpoint(), prefix_);
  auto meta = storage::OpenMetadataStore("sqlite://" + (dir_ / "rows.db"), /*migrate=*/true);
  ASSERT_TRUE(meta.ok()) << meta.status().ToString();
  auto row = [&](const std::string& id) {
    storage::NewJob j;
    j.id = id;
    j.user_id = "u";
    j.session_id = "s";
    j.original_name = "a.txt";
    j.mime_type = "text/plain";
    j.size_bytes = 1;
    j.sha256_hex = std::string(64, '0');
    j.storage_path = store->Location(id);
    ASSERT_TRUE((*meta)->InsertJob(j).ok());
  };
  const std::string orphan = NewUuid(), pending = NewUuid(), done = NewUuid();
  for (const auto& id : {orphan, pending, done}) ASSERT_TRUE(Write(*store, id, "x").ok());
  row(pending);
  row(done);
  ASSERT_TRUE((*meta)->MarkFailed(done, "failed").ok());
  // An API killed mid-upload: its multipart upload is left behind.
  auto abandoned = store->Create(NewUuid());
  ASSERT_TRUE(abandoned.ok());
  ASSERT_TRUE((*abandoned)->Append(Pattern(kPart, 3)).ok());
  ASSERT_EQ(Server().MultipartUploads(), 1);

  uploads::SweepSettings settings;
  settings.temp_max_age_ms = 3600000;
  settings.orphan_min_age_ms = 600000;
  // Now: nothing old enough but the final job's blob.
  auto first = uploads::Sweep(*store, **meta, settings, FixedClock(SystemClock().EpochMs()));
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(first->finals_removed, 1);
  EXPECT_EQ(first->orphans_removed + first->temps_removed, 0);
  EXPECT_EQ(Server().MultipartUploads(), 1);
  // Two hours later: the orphan and the abandoned upload go, the pending stays.
  auto later = uploads::Sweep(*store, **meta, settings,
                              FixedClock(SystemClock().EpochMs() + 2 * 3600000));
  ASSERT_TRUE(later.ok()) << later.status().ToString();
  EXPECT_EQ(later->orphans_removed, 1);
  EXPECT_EQ(later->temps_removed, 1);
  EXPECT_EQ(later->kept, 1);
  EXPECT_EQ(Server().MultipartUploads(), 0);
  std::vector<std::string> keys;
  for (const auto& k : Server().ObjectKeys()) {
    if (k.starts_with(prefix_ + "/")) keys.push_back(k.substr(prefix_.size() + 1));
  }
  EXPECT_EQ(keys, std::vector<std::string>{pending});
}

TEST(S3Url, Parses) {
  auto u = storage::ParseS3Url("s3://bucket/some/prefix/");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->bucket, "bucket");
  EXPECT_EQ(u->prefix, "some/prefix");
  auto bare = storage::ParseS3Url("s3://bucket");
  ASSERT_TRUE(bare.ok());
  EXPECT_EQ(bare->prefix, "");
  for (const char* bad : {"s3://", "http://bucket/x", "s3://bu cket/x", "s3://b//x"}) {
    EXPECT_FALSE(storage::ParseS3Url(bad).ok()) << bad;
  }
  storage::S3Settings small;
  small.bucket = "b";
  small.download_dir = "/tmp";
  small.part_size = storage::kS3MinPartBytes - 1;
  EXPECT_EQ(storage::OpenS3BlobStore(small).code(), Errc::kInvalidArgument);
}

}  // namespace
}  // namespace conveyor
