// The whole service with its uploads in object storage (STORAGE_URL=s3://…):
// the real `conveyor api` and `conveyor worker` processes, a real
// redis-server and a real S3-protocol server (s3rver, tests/support). Upload
// through the API, the job completes in the worker, the object is gone
// afterwards; a Node.js-style job naming an object "s3://bucket/key"
// completes too; a 200 MiB upload keeps the API's memory within a few parts.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "core/ids.h"
#include "queue/job.h"
#include "queue/payload.h"
#include "queue/queue.h"
#include "storage/s3_blob_store.h"
#include "s3_server.h"
#include "service.h"

namespace conveyor::testing {
namespace {

namespace fs = std::filesystem;
using std::chrono::seconds;

constexpr char kBucket[] = "conveyor-e2e";
constexpr char kPrefix[] = "uploads";

Env S3Env(const S3Server& s3, const std::string& part_size = "5242880") {
  return {{"STORAGE_URL", std::string("s3://") + kBucket + "/" + kPrefix},
          {"S3_ENDPOINT", s3.endpoint()},
          {"S3_FORCE_PATH_STYLE", "true"},
          {"S3_REGION", "us-east-1"},
          // The AWS_* names stand in for S3_ACCESS_KEY_ID / S3_SECRET_ACCESS_KEY.
          {"AWS_ACCESS_KEY_ID", "S3RVER"},
          {"AWS_SECRET_ACCESS_KEY", "S3RVER"},
          {"S3_PART_SIZE", part_size}};
}

// Objects under the prefix, from the server's files.
std::vector<std::string> Objects(const S3Server& s3) {
  std::vector<std::string> out;
  for (const auto& k : s3.ObjectKeys()) {
    if (k.starts_with(std::string(kPrefix) + "/")) out.push_back(k);
  }
  return out;
}

// Regular files under `dir`, recursively (0 when it does not exist).
int FilesUnder(const std::string& dir) {
  int n = 0;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    n += it->is_regular_file();
  }
  return n;
}

int64_t RssKiB(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6));
  }
  return -1;
}

TEST(S3Service, UploadCompletesAndTheObjectIsGoneAfterwards) {
  S3Server s3(kBucket);
  Service svc(S3Env(s3));
  svc.Start();

  FormFile f;
  f.filename = "lighthouse.txt";
  f.data = "The lighthouse keeper logged the storm at dawn. Lighthouse lamps need oil.\n";
  std::string id = svc.UploadOk("alice", "s1", f);
  ASSERT_FALSE(id.empty()) << svc.api().Log();
  auto final_state = svc.WaitFinal("alice", id, seconds(60));
  ASSERT_TRUE(final_state.has_value()) << svc.worker().Log();
  EXPECT_EQ((*final_state)["status"], "completed") << final_state->dump() << svc.worker().Log();
  // The object is deleted once the job is final; nothing stays on disk.
  EXPECT_TRUE(Eventually([&] { return Objects(s3).empty(); }, seconds(10)))
      << ::testing::PrintToString(Objects(s3));
  EXPECT_EQ(s3.MultipartUploads(), 0);
  EXPECT_EQ(FilesUnder(svc.data_dir() + "/tmp"), 0);
  EXPECT_EQ(FilesUnder(svc.storage_dir()), 0);

  // A big one, streamed as several parts, completes the same way.
  FormFile big;
  big.filename = "big.txt";
  std::string line = "harbour ledger entry with lighthouse and tide tables\n";
  while (big.data.size() < 12u << 20) big.data += line;
  std::string big_id = svc.UploadOk("alice", "s1", big);
  ASSERT_FALSE(big_id.empty()) << svc.api().Log();
  auto big_state = svc.WaitFinal("alice", big_id, seconds(120));
  ASSERT_TRUE(big_state.has_value()) << svc.worker().Log();
  EXPECT_EQ((*big_state)["status"], "completed") << big_state->dump();
  EXPECT_TRUE(Eventually([&] { return Objects(s3).empty(); }, seconds(10)));

  // A Node.js producer's job: no row, its file an object under the prefix.
  auto producer = storage::OpenS3BlobStore([&] {
    storage::S3Settings s;
    s.bucket = kBucket;
    s.prefix = std::string(kPrefix) + "/incoming";
    s.endpoint = s3.endpoint();
    s.force_path_style = true;
    s.download_dir = svc.data_dir() + "/producer";
    return s;
  }());
  ASSERT_TRUE(producer.ok()) << producer.status().ToString();
  const std::string name = NewUuid();
  {
    auto w = (*producer)->Create(name);
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE((*w)->Append("Minutes of the harbour board: the lighthouse budget passed.\n").ok());
    ASSERT_TRUE((*w)->Commit(false).ok());
  }
  const std::string node_id = NewUuid();
  queue::RedisOptions ro;
  ro.host = "127.0.0.1";
  ro.port = svc.redis().port();
  auto q = queue::OpenRedisQueue(ro);
  ASSERT_TRUE(q.ok()) << q.status().ToString();
  const std::string location = std::string("s3://") + kBucket + "/" + kPrefix + "/incoming/" + name;
  ASSERT_TRUE((*q)->Add(node_id, queue::kJobName,
                        queue::EncodeJobPayload({node_id, "alice", "s1", location, "minutes.txt",
                                                 "text/plain", 60, ""}),
                        queue::JobOptions{}));
  auto node_state = svc.WaitFinal("alice", node_id, seconds(60));
  ASSERT_TRUE(node_state.has_value()) << svc.worker().Log();
  EXPECT_EQ((*node_state)["status"], "completed") << node_state->dump() << svc.worker().Log();
  EXPECT_TRUE(Eventually([&] { return Objects(s3).empty(); }, seconds(10)))
      << ::testing::PrintToString(Objects(s3));

  // Another bucket is refused.
  const std::string stranger = NewUuid();
  ASSERT_TRUE((*q)->Add(stranger, queue::kJobName,
                        queue::EncodeJobPayload({stranger, "alice", "s1",
                                                 "s3://someone-else/uploads/x.txt", "x.txt",
                                                 "text/plain", 10, ""}),
                        queue::JobOptions{}));
  auto refused = svc.WaitFinal("alice", stranger, seconds(60));
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ((*refused)["status"], "failed");
  EXPECT_EQ((*refused)["error"], "Invalid storage path");
  EXPECT_EQ(FilesUnder(svc.data_dir() + "/tmp"), 0);
}

TEST(S3Service, AnUploadCutOffMidwayLeavesNoMultipartUpload) {
  S3Server s3(kBucket);
  Service svc(S3Env(s3));
  svc.StartApi();
  // 20 MiB announced, 12 MiB sent (two 5 MiB parts out), then the client
  // goes away.
  FormFile f;
  f.filename = "cut.bin";
  f.content_type = "application/octet-stream";
  f.data.assign(20u << 20, 'c');
  const std::string boundary = "----conveyorCutOffBoundary";
  const std::string body = MultipartBody(boundary, {{"session_id", "s1"}}, {f});
  const std::string head = "POST /api/chat/upload/async HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                           "Authorization: Bearer " + Service::Token("alice") +
                           "\r\nContent-Type: multipart/form-data; boundary=" + boundary +
                           "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n";
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(svc.port()));
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  std::string sent = head + body.substr(0, 12u << 20);
  for (size_t at = 0; at < sent.size();) {
    ssize_t n = ::send(fd, sent.data() + at, sent.size() - at, MSG_NOSIGNAL);
    ASSERT_GT(n, 0);
    at += static_cast<size_t>(n);
  }
  // The parts went out while the body arrived.
  ASSERT_TRUE(Eventually([&] { return s3.MultipartUploads() == 1; }, seconds(20)))
      << svc.api().Log();
  ::close(fd);
  // The API aborts the multipart upload; no object was ever made.
  EXPECT_TRUE(Eventually([&] { return s3.MultipartUploads() == 0; }, seconds(20)))
      << svc.api().Log();
  EXPECT_TRUE(Objects(s3).empty());
  // The API still serves uploads.
  FormFile small;
  small.data = "after the cut\n";
  EXPECT_FALSE(svc.UploadOk("alice", "s1", small).empty());
}

// Sends a `size`-byte upload to a started API and measures it: the API's
// peak RSS growth over its RSS before (KiB) and the seconds the upload took.
struct BigUploadFigures {
  int status = 0;
  int64_t rss_growth_kib = 0;
  double seconds = 0;
};
BigUploadFigures MeasureBigUpload(Service& svc, size_t size) {
  FormFile f;
  f.filename = "big.bin";
  f.content_type = "application/octet-stream";
  f.data.resize(size);
  for (size_t i = 0; i < size; ++i) f.data[i] = static_cast<char>('a' + (i * 7919) % 26);
  const pid_t pid = svc.api().pid();
  const int64_t before = RssKiB(pid);
  std::atomic<bool> done{false};
  std::atomic<int64_t> peak{before};
  std::thread sampler([&] {
    while (!done) {
      int64_t r = RssKiB(pid);
      if (r > peak) peak = r;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  });
  auto t0 = std::chrono::steady_clock::now();
  auto r = Upload(svc.port(), Service::Token("alice"), "s1", f);
  auto t1 = std::chrono::steady_clock::now();
  done = true;
  sampler.join();
  BigUploadFigures out;
  out.status = r.status;
  out.rss_growth_kib = peak - before;
  out.seconds = std::chrono::duration<double>(t1 - t0).count();
  return out;
}

TEST(S3Service, A200MiBUploadKeepsTheApiMemoryFlat) {
  constexpr size_t kSize = 200u << 20;
  S3Server s3(kBucket);
  Env env = S3Env(s3, "8388608");
  env["MAX_UPLOAD_BYTES"] = std::to_string(300u << 20);
  env["BODY_MIN_RATE_BYTES"] = "0";
  Service svc(env);
  svc.StartApi();  // no worker: the object stays, to be checked
  auto s3_run = MeasureBigUpload(svc, kSize);
  ASSERT_EQ(s3_run.status, 202) << svc.api().Log();
  auto keys = Objects(s3);
  ASSERT_EQ(keys.size(), 1u);
  EXPECT_EQ(s3.MultipartUploads(), 0);
  std::printf("S3 upload of 200 MiB: API RSS growth %lld KiB, %.2f s (%.1f MiB/s)\n",
              static_cast<long long>(s3_run.rss_growth_kib), s3_run.seconds,
              200.0 / s3_run.seconds);
  // One 8 MiB part buffer per upload, plus the server's own buffers.
  EXPECT_LT(s3_run.rss_growth_kib, 4 * 8 * 1024) << "API RSS grew by " << s3_run.rss_growth_kib
                                                  << " KiB";

  // The same upload to the local store, for comparison.
  Env local_env = {{"MAX_UPLOAD_BYTES", std::to_string(300u << 20)}, {"BODY_MIN_RATE_BYTES", "0"}};
  Service local(local_env);
  local.StartApi();
  auto local_run = MeasureBigUpload(local, kSize);
  ASSERT_EQ(local_run.status, 202) << local.api().Log();
  std::printf("local upload of 200 MiB: API RSS growth %lld KiB, %.2f s (%.1f MiB/s)\n",
              static_cast<long long>(local_run.rss_growth_kib), local_run.seconds,
              200.0 / local_run.seconds);
}

}  // namespace
}  // namespace conveyor::testing
