// End-to-end tests: the real `conveyor api` and `conveyor worker` binaries
// against a real redis-server, driven over HTTP.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <random>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

#include "service.h"

namespace conveyor::testing {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

const std::string kText =
    "Conveyor accepts uploads and processes them in the background. The worker parses the file "
    "and stores its text as searchable memory. Clients poll the status endpoint until the job is "
    "completed. Large files stream straight to disk without being held in memory.\n\n"
    "A second paragraph talks about queues, retries and dead letters.\n";

std::string RandomBytes(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  s[0] = '\x01';  // never mistaken for text
  return s;
}

std::string ErrorCode(const HttpResponse& r) {
  auto j = Service::Json(r);
  if (j.is_discarded()) return "<not json>";
  EXPECT_EQ(j.value("success", true), false) << r.body;
  return j.value("/error/code"_json_pointer, std::string("<no code>"));
}

TEST(Service, TextUploadCompletesWithResultShape) {
  Service svc;
  svc.Start();
  std::string id = svc.UploadOk("alice", "s1", {"file", "notes.txt", "text/plain", kText});
  ASSERT_FALSE(id.empty());
  auto final = svc.WaitFinal("alice", id, 30s);
  ASSERT_TRUE(final) << svc.worker().Log();
  EXPECT_EQ((*final)["status"], "completed") << final->dump();
  EXPECT_EQ((*final)["jobId"], id);
  ASSERT_TRUE((*final)["result"].is_object()) << final->dump();
  EXPECT_TRUE((*final)["result"]["aiResponse"]["text"].is_string());
  EXPECT_FALSE((*final)["result"]["aiResponse"]["text"].get<std::string>().empty());
  std::string file_id = (*final)["result"]["fileId"];
  EXPECT_EQ(file_id.rfind("file_", 0), 0u);
  // The stored upload is deleted once the job is final.
  EXPECT_TRUE(Eventually([&] { return !fs::exists(svc.storage_dir() + "/" + id); }, 5s));
  // The text is searchable memory of that session only.
  auto search = Request(svc.port(), "GET",
                        "/api/chat/memory/search?session_id=s1&q=dead%20letters&limit=5",
                        {{"Authorization", "Bearer " + Service::Token("alice")}});
  ASSERT_EQ(search.status, 200) << search.body;
  auto results = Service::Json(search)["data"]["results"];
  ASSERT_FALSE(results.empty()) << search.body;
  EXPECT_EQ(results[0]["fileId"], file_id);
  auto other = Request(svc.port(), "GET", "/api/chat/memory/search?session_id=s1&q=dead",
                       {{"Authorization", "Bearer " + Service::Token("mallory")}});
  ASSERT_EQ(other.status, 200);
  EXPECT_TRUE(Service::Json(other)["data"]["results"].empty()) << other.body;
}

TEST(Service, RandomBinaryFailsAtOnceWithInvalidFileFormat) {
  Service svc;
  svc.Start();
  auto start = std::chrono::steady_clock::now();
  std::string id = svc.UploadOk("bob", "s1", {"file", "data.txt", "text/plain", RandomBytes(4096, 7)});
  ASSERT_FALSE(id.empty());
  auto final = svc.WaitFinal("bob", id, 15s);
  ASSERT_TRUE(final);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  EXPECT_EQ((*final)["status"], "failed");
  EXPECT_EQ((*final)["error"], "Invalid file format");
  // One attempt only: a permanent error is never retried.
  EXPECT_EQ(svc.redis().Cli({"HGET", "bull:file-upload:" + id, "ats"}), "1\n");
  EXPECT_EQ(svc.redis().Cli({"ZSCORE", "bull:file-upload:failed", id}).empty(), false);
}

TEST(Service, BadRequestsGetJsonErrorsAndTheServerKeepsServing) {
  Service svc;
  svc.StartApi();
  const std::string token = Service::Token("carol");
  const std::string b = "XyZboundary";
  auto post = [&](const std::string& body, std::map<std::string, std::string> extra = {}) {
    std::map<std::string, std::string> h = {{"Authorization", "Bearer " + token},
                                            {"Content-Type", "multipart/form-data; boundary=" + b}};
    for (auto& [k, v] : extra) h[k] = v;
    return Request(svc.port(), "POST", "/api/chat/upload/async", h, body);
  };
  // Missing file.
  auto r = post(MultipartBody(b, {{"session_id", "s"}}, {}));
  EXPECT_EQ(r.status, 400) << r.body;
  ErrorCode(r);
  // Missing session_id.
  r = post(MultipartBody(b, {}, {{"file", "a.txt", "text/plain", "hello"}}));
  EXPECT_EQ(r.status, 400) << r.body;
  // Empty file.
  r = post(MultipartBody(b, {{"session_id", "s"}}, {{"file", "a.txt", "text/plain", ""}}));
  EXPECT_EQ(r.status, 400) << r.body;
  // Malformed body: no multipart structure at all.
  r = post("this is not multipart");
  EXPECT_EQ(r.status, 400) << r.body;
  // Truncated body: the closing delimiter never comes.
  std::string full = MultipartBody(b, {{"session_id", "s"}}, {{"file", "a.txt", "text/plain", kText}});
  r = post(full.substr(0, full.size() - 20));
  EXPECT_EQ(r.status, 400) << r.body;
  // Not multipart at all.
  r = Request(svc.port(), "POST", "/api/chat/upload/async",
              {{"Authorization", "Bearer " + token}, {"Content-Type", "application/json"}}, "{}");
  EXPECT_EQ(r.status, 400) << r.body;
  // 401s: no header, garbage, wrong secret.
  r = Request(svc.port(), "POST", "/api/chat/upload/async", {}, full);
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(ErrorCode(r), "unauthorized");
  r = Request(svc.port(), "GET", "/api/chat/upload/status/x", {{"Authorization", "Bearer abc"}});
  EXPECT_EQ(r.status, 401);
  // Unknown job and unknown route: 404 JSON.
  r = svc.Status("carol", "0f8fad5b-d9cb-469f-a165-70867728950e");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(ErrorCode(r), "not_found");
  r = svc.Status("carol", "../../etc/passwd");
  EXPECT_EQ(r.status, 404);
  r = Request(svc.port(), "GET", "/nope", {});
  EXPECT_EQ(r.status, 404);
  ErrorCode(r);
  // Still serving.
  EXPECT_EQ(Request(svc.port(), "GET", "/healthz", {}).status, 200);
  EXPECT_FALSE(svc.UploadOk("carol", "s", {"file", "ok.txt", "text/plain", kText}).empty());
}

TEST(Service, OversizedContentLengthGets413BeforeTheBodyIsSent) {
  Service svc(Env{{"MAX_UPLOAD_BYTES", "1048576"}});
  svc.StartApi();
  HttpConnection c(svc.port());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.Send("POST /api/chat/upload/async HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                     Service::Token("dave") +
                     "\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                     "Content-Length: 8388608\r\n\r\n"));
  auto r = c.Read(10s);  // no body byte was sent
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(ErrorCode(r), "payload_too_large");
}

TEST(Service, ChunkedBodyOverTheLimitGets413WhileStreaming) {
  Service svc(Env{{"MAX_UPLOAD_BYTES", "1048576"}, {"LINGER_IDLE_MS", "500"}});
  svc.StartApi();
  HttpConnection c(svc.port());
  ASSERT_TRUE(c.Send("POST /api/chat/upload/async HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                     Service::Token("dave") +
                     "\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n"));
  std::string head = "--b\r\nContent-Disposition: form-data; name=\"session_id\"\r\n\r\ns\r\n"
                     "--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n"
                     "Content-Type: text/plain\r\n\r\n";
  auto chunk = [](const std::string& data) {
    char hex[32];
    std::snprintf(hex, sizeof hex, "%zx\r\n", data.size());
    return std::string(hex) + data + "\r\n";
  };
  ASSERT_TRUE(c.Send(chunk(head)));
  // Send up to 8 MiB in 64 KiB chunks; the server must answer 413 long before.
  std::string block(65536, 'a');
  size_t sent = 0;
  while (sent < (8u << 20) && c.Send(chunk(block))) sent += block.size();
  auto r = c.Read(10s);
  EXPECT_EQ(r.status, 413);
  EXPECT_TRUE(c.ClosedByPeer(10s));
  // The upload stopped near the limit; the rest of the body was only
  // discarded by the lingering close (which is why every send succeeded).
  std::string metrics = Request(svc.port(), "GET", "/metrics", {}).body;
  const std::string key = "\nconveyor_upload_bytes_received_total ";
  size_t at = metrics.find(key);
  ASSERT_NE(at, std::string::npos);
  EXPECT_LT(std::stoll(metrics.substr(at + key.size())), 3 << 20) << "the upload read the body";
  // Nothing was kept.
  EXPECT_TRUE(Eventually(
      [&] {
        size_t n = 0;
        for (auto& e : fs::recursive_directory_iterator(svc.storage_dir())) n += e.is_regular_file();
        return n == 0;
      },
      5s));
}

TEST(Service, AnotherUsersJobIsNotFound) {
  Service svc;
  svc.StartApi();
  std::string id = svc.UploadOk("erin", "s1", {"file", "a.txt", "text/plain", kText});
  ASSERT_FALSE(id.empty());
  EXPECT_EQ(svc.Status("erin", id).status, 200);
  auto r = svc.Status("frank", id);
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(ErrorCode(r), "not_found");
}

TEST(Service, HostileFileNamesNeverWriteOutsideStorage) {
  Service svc;
  svc.Start();
  std::vector<std::string> names = {"../../etc/passwd", "/etc/passwd", std::string(5000, 'n'),
                                    "\xe2\x80\xae\xd0\xbf\xd1\x80\xd0\xb8.txt", "..",
                                    "a/../../b.txt", "C:\\windows\\system32"};
  std::set<std::string> before;
  for (auto& e : fs::recursive_directory_iterator(svc.data_dir())) before.insert(e.path());
  std::vector<std::string> ids;
  for (const auto& n : names) {
    auto r = Upload(svc.port(), Service::Token("gina"), "s1", {"file", n, "text/plain", kText});
    if (r.status == 202) ids.push_back(Service::Json(r)["data"]["jobId"]);
    else EXPECT_EQ(r.status, 400) << r.body;  // refusing a name is fine too
  }
  EXPECT_FALSE(ids.empty());
  for (const auto& id : ids) {
    auto final = svc.WaitFinal("gina", id, 30s);
    ASSERT_TRUE(final);
    EXPECT_EQ((*final)["status"], "completed");
  }
  // Every file that appeared is inside the data dir, and uploads only in STORAGE_DIR.
  for (auto& e : fs::recursive_directory_iterator(svc.data_dir())) {
    if (before.count(e.path()) || !e.is_regular_file()) continue;
    std::string p = e.path().string();
    bool in_storage = p.rfind(svc.storage_dir() + "/", 0) == 0;
    bool known = in_storage || p.find("conveyor.db") != std::string::npos ||
                 p.ends_with(".log") || p.find("/redis") != std::string::npos;
    EXPECT_TRUE(known) << "unexpected file " << p;
  }
  EXPECT_FALSE(fs::exists(svc.data_dir() + "/etc/passwd"));
  EXPECT_FALSE(fs::exists(fs::path(svc.data_dir()).parent_path() / "b.txt"));
}

TEST(Service, FiftyConcurrentUploadsFromFiveUsersAllComplete) {
  Service svc(Env{{"WORKER_CONCURRENCY", "4"}});
  svc.Start();
  std::vector<std::future<std::pair<std::string, std::string>>> futures;
  for (int i = 0; i < 50; ++i) {
    futures.push_back(std::async(std::launch::async, [&svc, i] {
      std::string user = "user" + std::to_string(i % 5);
      std::string body = kText + "\nUpload number " + std::to_string(i) + ".\n";
      return std::make_pair(user, svc.UploadOk(user, "s" + std::to_string(i % 3),
                                               {"file", "f.txt", "text/plain", body}));
    }));
  }
  std::vector<std::pair<std::string, std::string>> jobs;
  for (auto& f : futures) jobs.push_back(f.get());
  std::set<std::string> ids;
  for (const auto& [user, id] : jobs) {
    ASSERT_FALSE(id.empty());
    ids.insert(id);
  }
  EXPECT_EQ(ids.size(), 50u);
  for (const auto& [user, id] : jobs) {
    auto final = svc.WaitFinal(user, id, 60s);
    ASSERT_TRUE(final) << id;
    EXPECT_EQ((*final)["status"], "completed");
  }
}

TEST(Service, WorkerKilledMidJobIsRecoveredAndCompletes) {
  // The first worker pauses 60 s inside each job; it is SIGKILLed while holding one.
  Service svc(Env{{"JOB_LOCK_MS", "1000"}, {"STALLED_INTERVAL_MS", "500"}});
  svc.StartApi();
  auto env = svc.env();
  env["PROCESSING_DELAY_MS"] = "60000";
  Process slow({ConveyorBinary(), "worker"}, env, svc.data_dir() + "/slow-worker.log");
  std::string id = svc.UploadOk("hank", "s1", {"file", "a.txt", "text/plain", kText});
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(Eventually(
      [&] {
        auto r = svc.Status("hank", id);
        return Service::Json(r).value("/data/status"_json_pointer, std::string()) == "processing";
      },
      20s));
  slow.Kill();
  svc.StartWorker();  // a healthy worker recovers the stalled job
  auto final = svc.WaitFinal("hank", id, 30s);
  ASSERT_TRUE(final) << svc.worker().Log();
  EXPECT_EQ((*final)["status"], "completed");
  EXPECT_EQ(svc.redis().Cli({"HGET", "bull:file-upload:" + id, "stc"}), "1\n");
}

TEST(Service, AcceptedJobsSurviveARedisCrash) {
  Service svc(Env{{"RECONCILE_INTERVAL_MS", "500"}});
  svc.StartApi();
  std::vector<std::string> ids;
  for (int i = 0; i < 20; ++i) {
    std::string id = svc.UploadOk("iris", "s1", {"file", "a.txt", "text/plain", kText});
    ASSERT_FALSE(id.empty());
    ids.push_back(id);
  }
  // SIGKILL: Redis keeps only what its AOF had; the rows re-add the rest.
  svc.redis().Kill();
  svc.redis().Start();
  svc.StartWorker();
  for (const auto& id : ids) {
    auto final = svc.WaitFinal("iris", id, 60s);
    ASSERT_TRUE(final) << id << "\n" << svc.worker().Log();
    EXPECT_EQ((*final)["status"], "completed");
  }
}

TEST(Service, JobsLostByRedisAreReaddedFromTheirRows) {
  // Redis loses everything (a failover to an empty replica, a lost AOF): the
  // rows are the source of truth and the reconciler adds their jobs again.
  Service svc(Env{{"RECONCILE_INTERVAL_MS", "500"}});
  svc.StartApi();
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    std::string id = svc.UploadOk("kate", "s1", {"file", "a.txt", "text/plain", kText});
    ASSERT_FALSE(id.empty());
    ids.push_back(id);
  }
  ASSERT_EQ(svc.redis().Cli({"FLUSHALL"}), "OK\n");
  ASSERT_EQ(svc.redis().Cli({"EXISTS", "bull:file-upload:" + ids[0]}), "0\n");
  svc.StartWorker();
  for (const auto& id : ids) {
    auto final = svc.WaitFinal("kate", id, 30s);
    ASSERT_TRUE(final) << id << "\n" << svc.worker().Log();
    EXPECT_EQ((*final)["status"], "completed");
  }
  EXPECT_NE(svc.worker().Log().find("re-added"), std::string::npos);
}

TEST(Service, ApiKeepsAcceptingWhileRedisIsDownAndJobsCompleteLater) {
  Service svc(Env{{"RECONCILE_INTERVAL_MS", "500"}});
  svc.Start();
  svc.redis().Stop();
  auto r = Upload(svc.port(), Service::Token("jack"), "s1", {"file", "a.txt", "text/plain", kText});
  ASSERT_EQ(r.status, 202) << r.body;
  std::string id = Service::Json(r)["data"]["jobId"];
  svc.redis().Start();
  auto final = svc.WaitFinal("jack", id, 60s);
  ASSERT_TRUE(final) << svc.worker().Log();
  EXPECT_EQ((*final)["status"], "completed");
}

TEST(Service, JobOverItsTimeoutFailsWithATimeoutAndIsRetried) {
  Service svc(Env{{"JOB_TIMEOUT_MS", "300"}, {"PROCESSING_DELAY_MS", "600"}});
  svc.Start();
  std::string id = svc.UploadOk("liam", "s1", {"file", "a.txt", "text/plain", kText});
  ASSERT_FALSE(id.empty());
  const std::string key = "bull:file-upload:" + id;
  // The first attempt times out and is parked for a retry with backoff.
  ASSERT_TRUE(Eventually(
      [&] {
        std::string score = svc.redis().Cli({"ZSCORE", "bull:file-upload:delayed", id});
        return !score.empty() && score != "\n";
      },
      20s))
      << svc.worker().Log();
  EXPECT_NE(svc.redis().Cli({"HGET", key, "failedReason"}).find("timed out"), std::string::npos);
  EXPECT_EQ(svc.redis().Cli({"HGET", key, "atm"}), "1\n");
  EXPECT_EQ(svc.redis().Cli({"HGET", key, "delay"}), "5000\n");
  auto r = svc.Status("liam", id);
  EXPECT_EQ(Service::Json(r)["data"]["status"], "pending") << r.body;
}

TEST(Service, LaterUploadsReferenceEarlierFilesOfTheSession) {
  Service svc;
  svc.Start();
  std::string first = svc.UploadOk(
      "mia", "s1",
      {"file", "a.txt", "text/plain",
       "Photosynthesis converts sunlight into chemical energy in chloroplasts. "
       "Chloroplasts contain chlorophyll, which absorbs sunlight.\n"});
  ASSERT_FALSE(first.empty());
  ASSERT_TRUE(svc.WaitFinal("mia", first, 30s));
  std::string second = svc.UploadOk(
      "mia", "s1",
      {"file", "b.txt", "text/plain",
       "Chlorophyll in chloroplasts absorbs sunlight; photosynthesis then stores the energy.\n"});
  ASSERT_FALSE(second.empty());
  auto final = svc.WaitFinal("mia", second, 30s);
  ASSERT_TRUE(final);
  ASSERT_EQ((*final)["status"], "completed") << final->dump();
  const auto& result = (*final)["result"];
  EXPECT_TRUE(result["keywords"].is_array()) << result.dump();
  EXPECT_EQ(result["language"], "en") << result.dump();
  ASSERT_TRUE(result["references"].is_array()) << result.dump();
  ASSERT_FALSE(result["references"].empty()) << result.dump();
  EXPECT_EQ(result["references"][0]["jobId"], first);
  EXPECT_EQ(result["references"][0]["fileId"], "file_" + first);
}

TEST(Service, SigtermedWorkerReleasesItsJobForAnotherWorkerAtOnce) {
  // A long lock: only the release at shutdown can hand the job over quickly.
  Service svc(Env{{"JOB_LOCK_MS", "600000"}, {"SHUTDOWN_GRACE_MS", "300"}});
  svc.StartApi();
  auto env = svc.env();
  env["PROCESSING_DELAY_MS"] = "600000";
  Process slow({ConveyorBinary(), "worker"}, env, svc.data_dir() + "/slow-worker.log");
  std::string id = svc.UploadOk("nora", "s1", {"file", "a.txt", "text/plain", kText});
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(Eventually(
      [&] {
        return Service::Json(svc.Status("nora", id)).value("/data/status"_json_pointer,
                                                          std::string()) == "processing";
      },
      20s));
  auto start = std::chrono::steady_clock::now();
  slow.Signal(SIGTERM);
  int st = slow.Wait(20s);
  ASSERT_NE(st, -1) << slow.Log();
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << slow.Log();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
  EXPECT_NE(slow.Log().find("released job " + id), std::string::npos) << slow.Log();
  // Back in wait, not waiting for a 10-minute lock to lapse.
  EXPECT_EQ(svc.redis().Cli({"EXISTS", "bull:file-upload:" + id + ":lock"}), "0\n");
  svc.StartWorker();
  auto final = svc.WaitFinal("nora", id, 30s);
  ASSERT_TRUE(final) << svc.worker().Log();
  EXPECT_EQ((*final)["status"], "completed");
}

TEST(Service, UploadCommandStreamsAFileAndWaitsForTheResult) {
  Service svc;
  svc.Start();
  std::string file = svc.data_dir() + "/notes.txt";
  {
    std::ofstream out(file);
    out << kText;
  }
  const std::string url = "http://127.0.0.1:" + std::to_string(svc.port());
  Process ok({ConveyorBinary(), "upload", file, "--session", "s1", "--wait", "--url", url,
              "--token", Service::Token("olga")},
             {}, svc.data_dir() + "/upload.log");
  int st = ok.Wait(60s);
  ASSERT_NE(st, -1) << ok.Log();
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << ok.Log();
  EXPECT_NE(ok.Log().find("\"status\": \"completed\""), std::string::npos) << ok.Log();
  EXPECT_NE(ok.Log().find("\"aiResponse\""), std::string::npos) << ok.Log();
  // A refused upload exits 1 and shows the server's JSON error.
  Process bad({ConveyorBinary(), "upload", file, "--session", "s1", "--url", url, "--token",
               "not-a-token"},
              {}, svc.data_dir() + "/upload-bad.log");
  st = bad.Wait(30s);
  ASSERT_NE(st, -1);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 1) << bad.Log();
  EXPECT_NE(bad.Log().find("unauthorized"), std::string::npos) << bad.Log();
}

// Several files, --json: stdout holds one JSON object per file and nothing
// else; --wait follows each job over the event stream; a refused file makes
// the exit status 1 while the others still complete.
TEST(Service, UploadCommandPrintsOneJsonObjectPerFile) {
  Service svc(Env{{"MAX_UPLOAD_BYTES", "4096"}});
  svc.Start();
  const std::string a = svc.data_dir() + "/a.txt", b = svc.data_dir() + "/b.txt",
                    big = svc.data_dir() + "/big.txt";
  {
    std::ofstream(a) << kText;
    std::ofstream(b) << "Second file about harbours and tides.\n";
    std::ofstream(big) << std::string(8192, 'x');
  }
  const std::string url = "http://127.0.0.1:" + std::to_string(svc.port());
  const std::string out = svc.data_dir() + "/upload.json";
  // stdout alone goes to `out` (stderr, with any progress, is dropped).
  Process cli({"sh", "-c",
               "exec \"$0\" upload \"$1\" \"$2\" \"$3\" --session s1 --wait --json --url \"$4\" "
               "--token \"$5\" 2>/dev/null",
               ConveyorBinary(), a, big, b, url, Service::Token("olga")},
              {}, out);
  int st = cli.Wait(90s);
  ASSERT_NE(st, -1) << cli.Log();
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 1) << cli.Log();
  std::vector<nlohmann::json> lines;
  std::istringstream in(cli.Log());
  for (std::string line; std::getline(in, line);) {
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    ASSERT_TRUE(j.is_object()) << "not a JSON object on stdout: " << line;
    lines.push_back(std::move(j));
  }
  ASSERT_EQ(lines.size(), 3u) << cli.Log();
  EXPECT_EQ(lines[0]["file"], a);
  EXPECT_EQ(lines[0]["status"], "completed");
  EXPECT_TRUE(lines[0]["result"].contains("aiResponse")) << lines[0].dump();
  EXPECT_EQ(lines[0]["jobId"].get<std::string>().size(), 36u);
  EXPECT_EQ(lines[1]["file"], big);
  EXPECT_EQ(lines[1]["status"], "refused");
  EXPECT_TRUE(lines[1]["jobId"].is_null());
  EXPECT_NE(lines[1]["error"].get<std::string>().find("payload_too_large"), std::string::npos);
  EXPECT_EQ(lines[2]["status"], "completed");
  // What the status route says is what the command printed.
  auto final = svc.WaitFinal("olga", lines[2]["jobId"].get<std::string>(), 10s);
  ASSERT_TRUE(final);
  EXPECT_EQ((*final)["result"], lines[2]["result"]);
}

TEST(Service, SigtermStopsTheApiCleanly) {
  Service svc;
  svc.StartApi();
  svc.api().Signal(SIGTERM);
  int st = svc.api().Wait(20s);
  ASSERT_NE(st, -1) << "api did not exit";
  EXPECT_TRUE(WIFEXITED(st));
  EXPECT_EQ(WEXITSTATUS(st), 0);
}

}  // namespace
}  // namespace conveyor::testing

namespace conveyor::testing {
namespace {

// `conveyor dev` with no REDIS_HOST: starts its own redis-server, prints a
// working token, processes an upload, and stops redis-server on SIGTERM.
TEST(Dev, RunsEverythingOnTheEmbeddedDefaults) {
  TempDir data;
  int port = FreePort();
  std::map<std::string, std::string> env = {{"PORT", std::to_string(port)},
                                            {"DATA_DIR", data.path()},
                                            {"BIND_ADDRESS", "127.0.0.1"},
                                            {"UPLOAD_FSYNC", "false"}};
  Process dev({ConveyorBinary(), "dev"}, env, data.path() + "/dev.log");
  // The real environment may carry these; dev must not depend on them.
  ASSERT_TRUE(WaitForPort(port, std::chrono::seconds(30))) << dev.Log();
  std::string token;
  ASSERT_TRUE(Eventually(
      [&] {
        std::string log = dev.Log();
        auto at = log.find("token: ");
        if (at == std::string::npos) return false;
        auto end = log.find('\n', at);
        if (end == std::string::npos) return false;
        token = log.substr(at + 7, end - at - 7);
        return true;
      },
      std::chrono::seconds(10)))
      << dev.Log();
  auto r = Upload(port, token, "s1", {"file", "a.txt", "text/plain", kText});
  ASSERT_EQ(r.status, 202) << r.body;
  std::string id = Service::Json(r)["data"]["jobId"];
  ASSERT_TRUE(Eventually(
      [&] {
        auto s = Request(port, "GET", "/api/chat/upload/status/" + id,
                         {{"Authorization", "Bearer " + token}});
        return Service::Json(s).value("/data/status"_json_pointer, std::string()) == "completed";
      },
      std::chrono::seconds(30)))
      << dev.Log();
  EXPECT_TRUE(std::filesystem::exists(data.path() + "/redis/appendonlydir") ||
              std::filesystem::exists(data.path() + "/redis/appendonly.aof"));
  {
    // Its Redis wants the password generated for the run; its data is private.
    auto log = dev.Log();
    auto at = log.find("started redis-server on port ");
    ASSERT_NE(at, std::string::npos) << log;
    int redis_port = std::atoi(log.c_str() + at + 29);
    std::string ping = RunCapture({"redis-cli", "-p", std::to_string(redis_port), "PING"});
    EXPECT_NE(ping.find("NOAUTH"), std::string::npos) << ping;
    struct stat st {};
    ASSERT_EQ(::stat((data.path() + "/redis").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0700u);
    ASSERT_EQ(::stat((data.path() + "/redis/redis.conf").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    ASSERT_EQ(::stat((data.path() + "/conveyor.db").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    // /readyz lists the worker's sandbox layers.
    auto ready = Request(port, "GET", "/readyz", {});
    auto j = Service::Json(ready);
    EXPECT_TRUE(j.contains("sandbox")) << ready.body;
    EXPECT_EQ(j.value("/sandbox/seccomp"_json_pointer, std::string()), "on") << ready.body;
  }
  dev.Signal(SIGTERM);
  int st = dev.Wait(std::chrono::seconds(30));
  ASSERT_NE(st, -1) << "dev did not exit\n" << dev.Log();
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << dev.Log();
  // Its redis-server is gone: nothing answers on the port it printed.
  auto log = dev.Log();
  auto at = log.find("started redis-server on port ");
  ASSERT_NE(at, std::string::npos) << log;
  int redis_port = std::atoi(log.c_str() + at + 29);
  EXPECT_FALSE(WaitForPort(redis_port, std::chrono::milliseconds(200)));
}

}  // namespace
}  // namespace conveyor::testing
