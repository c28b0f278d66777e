// The tus 1.0 routes (/api/chat/upload/tus) of the real `conveyor api`,
// with a real worker and redis-server: the protocol's answers, its refusals,
// and the uploads it completes, resumes after a restart, and expires.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <thread>

#include "core/ids.h"
#include "service.h"

namespace conveyor::testing {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

constexpr const char* kTus = "/api/chat/upload/tus";


std::string Sha256(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<const char*>(md), len);
}

// Readable text the worker can process (words, lines), `n` bytes.
std::string Text(size_t n, uint32_t seed = 7) {
  static const char* kWords[] = {"invoice", "river", "conveyor", "upload", "resumable",
                                 "harbor", "ledger", "orange", "signal", "meadow"};
  std::mt19937 rng(seed);
  std::string s;
  while (s.size() < n) {
    s += kWords[rng() % 10];
    s += (rng() % 12 == 0) ? ".\n" : " ";
  }
  s.resize(n);
  return s;
}

class TusTest : public ::testing::Test {
 protected:
  void StartService(Env env = {}) {
    service_ = std::make_unique<Service>(std::move(env));
    service_->Start();
  }

  std::map<std::string, std::string> Headers(const std::string& user = "alice") {
    return {{"Authorization", "Bearer " + Service::Token(user)}, {"Tus-Resumable", "1.0.0"}};
  }

  std::string Metadata(const std::string& session = "s1", const std::string& name = "notes.txt") {
    return "session_id " + Base64Encode(session) + ",filename " + Base64Encode(name) + ",filetype " +
           Base64Encode("text/plain") + ",message " + Base64Encode("resumed");
  }

  // POST creation; returns the answer (Location in headers).
  HttpResponse Create(int64_t length, const std::string& user = "alice",
                      const std::string& metadata = "") {
    auto h = Headers(user);
    h["Upload-Length"] = std::to_string(length);
    h["Upload-Metadata"] = metadata.empty() ? Metadata() : metadata;
    return Request(service_->port(), "POST", kTus, h);
  }

  // The upload's path from a creation answer.
  static std::string Location(const HttpResponse& r) {
    auto it = r.headers.find("location");
    return it == r.headers.end() ? "" : it->second;
  }
  static std::string IdOf(const std::string& location) {
    return location.substr(location.rfind('/') + 1);
  }

  HttpResponse Patch(const std::string& location, int64_t offset, const std::string& bytes,
                     const std::string& user = "alice",
                     std::map<std::string, std::string> extra = {}) {
    auto h = Headers(user);
    h["Upload-Offset"] = std::to_string(offset);
    h["Content-Type"] = "application/offset+octet-stream";
    // Request() adds Content-Length for a body; an empty one gets it here.
    if (bytes.empty()) h["Content-Length"] = "0";
    for (auto& [k, v] : extra) h[k] = v;
    return Request(service_->port(), "PATCH", location, h, bytes);
  }

  HttpResponse Head(const std::string& location, const std::string& user = "alice") {
    return Request(service_->port(), "HEAD", location, Headers(user));
  }

  static int64_t Offset(const HttpResponse& r) {
    auto it = r.headers.find("upload-offset");
    return it == r.headers.end() ? -1 : std::stoll(it->second);
  }

  std::string TusDir() const { return service_->data_dir() + "/tus"; }

  std::unique_ptr<Service> service_;
};

TEST_F(TusTest, OptionsAdvertisesVersionExtensionsAndLimits) {
  StartService({{"MAX_UPLOAD_BYTES", "1048576"}});
  auto r = Request(service_->port(), "OPTIONS", kTus,
                   {{"Authorization", "Bearer " + Service::Token("alice")}});
  EXPECT_EQ(r.status, 204);
  EXPECT_EQ(r.headers["tus-version"], "1.0.0");
  EXPECT_EQ(r.headers["tus-extension"],
            "creation,creation-with-upload,termination,checksum,expiration");
  EXPECT_EQ(r.headers["tus-max-size"], "1048576");
  EXPECT_EQ(r.headers["tus-checksum-algorithm"], "sha256");
  EXPECT_EQ(r.headers.count("content-length"), 0u);  // a 204 announces no body
  // Like every /api route, it needs the token.
  EXPECT_EQ(Request(service_->port(), "OPTIONS", kTus, {}).status, 401);
}

TEST_F(TusTest, UploadInTwoPatchesBecomesAJobThatCompletes) {
  StartService();
  const std::string data = Text(300000);
  auto created = Create(static_cast<int64_t>(data.size()));
  ASSERT_EQ(created.status, 201) << created.body;
  EXPECT_EQ(created.headers["tus-resumable"], "1.0.0");
  EXPECT_EQ(created.headers["upload-offset"], "0");
  EXPECT_FALSE(created.headers["upload-expires"].empty());
  const std::string loc = Location(created);
  ASSERT_EQ(loc.rfind("/api/chat/upload/tus/", 0), 0u) << loc;
  const std::string id = IdOf(loc);

  auto first = Patch(loc, 0, data.substr(0, 100000));
  ASSERT_EQ(first.status, 204) << first.body;
  EXPECT_EQ(Offset(first), 100000);
  EXPECT_EQ(first.headers.count("upload-job-id"), 0u);

  auto head = Head(loc);
  ASSERT_EQ(head.status, 200);
  EXPECT_EQ(Offset(head), 100000);
  EXPECT_EQ(head.headers["upload-length"], std::to_string(data.size()));
  EXPECT_EQ(head.headers["cache-control"], "no-store");
  EXPECT_NE(head.headers["upload-metadata"].find("session_id " + Base64Encode("s1")), std::string::npos);

  // Resume at the server's offset with the rest.
  auto last = Patch(loc, Offset(head), data.substr(100000));
  ASSERT_EQ(last.status, 204) << last.body;
  EXPECT_EQ(Offset(last), static_cast<int64_t>(data.size()));
  ASSERT_EQ(last.headers["upload-job-id"], id);

  // The job is the multipart path's: it completes in the real worker.
  auto final_state = service_->WaitFinal("alice", id, 60s);
  ASSERT_TRUE(final_state.has_value());
  EXPECT_EQ((*final_state)["status"], "completed") << final_state->dump();
  // A later HEAD still names the job; the partial bytes are gone (the blob
  // store has them).
  auto after = Head(loc);
  EXPECT_EQ(after.status, 200);
  EXPECT_EQ(after.headers["upload-job-id"], id);
  EXPECT_FALSE(fs::exists(TusDir() + "/" + id + ".bin"));
  // An empty PATCH at the end (a client making sure) names it too; bytes
  // past the end are refused.
  auto again = Patch(loc, static_cast<int64_t>(data.size()), "");
  EXPECT_EQ(again.status, 204);
  EXPECT_EQ(again.headers["upload-job-id"], id);
  EXPECT_EQ(Patch(loc, static_cast<int64_t>(data.size()), "x").status, 413);
}

TEST_F(TusTest, CreationWithUploadCompletesInOneRequest) {
  StartService();
  const std::string data = Text(5000, 3);
  auto h = Headers();
  h["Upload-Length"] = std::to_string(data.size());
  h["Upload-Metadata"] = Metadata("s2", "one.txt");
  h["Content-Type"] = "application/offset+octet-stream";
  auto r = Request(service_->port(), "POST", kTus, h, data);
  ASSERT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(Offset(r), static_cast<int64_t>(data.size()));
  const std::string id = IdOf(Location(r));
  ASSERT_EQ(r.headers["upload-job-id"], id);
  auto final_state = service_->WaitFinal("alice", id, 60s);
  ASSERT_TRUE(final_state.has_value());
  EXPECT_EQ((*final_state)["status"], "completed");
}

TEST_F(TusTest, ProtocolErrorsGetTheirStatusAndChangeNothing) {
  StartService({{"MAX_UPLOAD_BYTES", "100000"}});
  auto created = Create(1000);
  ASSERT_EQ(created.status, 201);
  const std::string loc = Location(created);
  ASSERT_EQ(Patch(loc, 0, std::string(400, 'a')).status, 204);

  // Wrong offset: 409.
  auto wrong = Patch(loc, 100, std::string(10, 'b'));
  EXPECT_EQ(wrong.status, 409);
  EXPECT_NE(wrong.body.find("offset_mismatch"), std::string::npos);
  // Missing or wrong Tus-Resumable: 412 with Tus-Version.
  auto h = Headers();
  h.erase("Tus-Resumable");
  auto no_version = Request(service_->port(), "HEAD", loc, h);
  EXPECT_EQ(no_version.status, 412);
  EXPECT_EQ(no_version.headers["tus-version"], "1.0.0");
  auto old = Patch(loc, 400, "x", "alice", {{"Tus-Resumable", "0.2.2"}});
  EXPECT_EQ(old.status, 412);
  EXPECT_EQ(old.headers["tus-version"], "1.0.0");
  // Past the declared length: 413, nothing stored.
  auto past = Patch(loc, 400, std::string(601, 'c'));
  EXPECT_EQ(past.status, 413);
  // Wrong Content-Type: 415.
  auto media = Patch(loc, 400, "abc", "alice", {{"Content-Type", "text/plain"}});
  EXPECT_EQ(media.status, 415);
  EXPECT_EQ(Offset(Head(loc)), 400);

  // Unknown ids and another user's upload: 404, never 403.
  const std::string unknown = std::string(kTus) + "/6f1c2d3e-4a5b-4c6d-8e7f-8091a2b3c4d5";
  EXPECT_EQ(Head(unknown).status, 404);
  EXPECT_EQ(Head(std::string(kTus) + "/not-a-uuid").status, 404);
  EXPECT_EQ(Head(loc, "mallory").status, 404);
  EXPECT_EQ(Patch(loc, 400, "x", "mallory").status, 404);
  EXPECT_EQ(Request(service_->port(), "DELETE", loc, Headers("mallory")).status, 404);
  EXPECT_EQ(Offset(Head(loc)), 400);

  // Creation refusals: over MAX_UPLOAD_BYTES 413, no session_id 400,
  // a session_id that is not UTF-8 400, an empty upload 400.
  EXPECT_EQ(Create(100001).status, 413);
  auto no_session = Create(10, "alice", "filename " + Base64Encode("a.txt"));
  EXPECT_EQ(no_session.status, 400);
  EXPECT_NE(no_session.body.find("missing_session_id"), std::string::npos);
  auto bad_session = Create(10, "alice", "session_id " + Base64Encode("\xff\xfe"));
  EXPECT_EQ(bad_session.status, 400);
  EXPECT_NE(bad_session.body.find("invalid_session_id"), std::string::npos);
  EXPECT_EQ(Create(0).status, 400);
  EXPECT_EQ(Create(10, "alice", "session_id !!!").status, 400);
}

TEST_F(TusTest, ChecksumMismatchIs460AndTheChunkIsDropped) {
  StartService();
  const std::string data = Text(2000, 5);
  auto created = Create(static_cast<int64_t>(data.size()));
  ASSERT_EQ(created.status, 201);
  const std::string loc = Location(created);
  const std::string part = data.substr(0, 1000);

  auto bad = Patch(loc, 0, part, "alice",
                   {{"Upload-Checksum", "sha256 " + Base64Encode(Sha256("something else"))}});
  EXPECT_EQ(bad.status, 460);
  EXPECT_NE(bad.body.find("checksum_mismatch"), std::string::npos);
  EXPECT_EQ(Offset(Head(loc)), 0);
  EXPECT_EQ(fs::file_size(TusDir() + "/" + IdOf(loc) + ".bin") <= 1000, true);

  auto unsupported = Patch(loc, 0, part, "alice", {{"Upload-Checksum", "md5 AAAA"}});
  EXPECT_EQ(unsupported.status, 400);

  auto good = Patch(loc, 0, part, "alice", {{"Upload-Checksum", "sha256 " + Base64Encode(Sha256(part))}});
  EXPECT_EQ(good.status, 204);
  EXPECT_EQ(Offset(Head(loc)), 1000);
  // What the store holds is exactly the accepted chunk.
  EXPECT_EQ(fs::file_size(TusDir() + "/" + IdOf(loc) + ".bin"), 1000u);
}

TEST_F(TusTest, TerminationDeletesTheUpload) {
  StartService();
  auto created = Create(100);
  ASSERT_EQ(created.status, 201);
  const std::string loc = Location(created);
  const std::string id = IdOf(loc);
  ASSERT_EQ(Patch(loc, 0, std::string(50, 'z')).status, 204);
  ASSERT_TRUE(fs::exists(TusDir() + "/" + id + ".info"));
  auto del = Request(service_->port(), "DELETE", loc, Headers());
  EXPECT_EQ(del.status, 204);
  EXPECT_EQ(Head(loc).status, 404);
  EXPECT_EQ(Patch(loc, 50, std::string(50, 'z')).status, 404);
  EXPECT_EQ(Request(service_->port(), "DELETE", loc, Headers()).status, 404);
  EXPECT_FALSE(fs::exists(TusDir() + "/" + id + ".info"));
  EXPECT_FALSE(fs::exists(TusDir() + "/" + id + ".bin"));
}

TEST_F(TusTest, ASecondPatchWhileOneStreamsIsRefusedWith423) {
  StartService();
  const std::string data = Text(20000, 9);
  auto created = Create(static_cast<int64_t>(data.size()));
  ASSERT_EQ(created.status, 201);
  const std::string loc = Location(created);

  // The first PATCH sends its head and half its body, then waits.
  HttpConnection slow(service_->port());
  std::string head = "PATCH " + loc + " HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer " +
                     Service::Token("alice") +
                     "\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\n"
                     "Content-Type: application/offset+octet-stream\r\nContent-Length: " +
                     std::to_string(data.size()) + "\r\n\r\n";
  ASSERT_TRUE(slow.Send(head + data.substr(0, 10000)));
  // Until the server has read that head, a second PATCH could take the upload
  // first and finish it itself. An empty PATCH changes nothing either way,
  // and is 423 once the first one holds the upload.
  ASSERT_TRUE(Eventually([&] { return Patch(loc, 0, "").status == 423; }, 10s));
  HttpResponse second = Patch(loc, 0, data);
  EXPECT_EQ(second.status, 423) << second.body;
  EXPECT_NE(second.body.find("upload_locked"), std::string::npos);
  // The first one finishes and completes the upload; the second changed nothing.
  ASSERT_TRUE(slow.Send(data.substr(10000)));
  auto done = slow.Read();
  EXPECT_EQ(done.status, 204);
  EXPECT_EQ(Offset(done), static_cast<int64_t>(data.size()));
  EXPECT_EQ(done.headers["upload-job-id"], IdOf(loc));
}

TEST_F(TusTest, ACutOffPatchKeepsTheBytesItDelivered) {
  StartService();
  const std::string data = Text(200000, 11);
  auto created = Create(static_cast<int64_t>(data.size()));
  ASSERT_EQ(created.status, 201);
  const std::string loc = Location(created);
  {
    HttpConnection cut(service_->port());
    std::string head = "PATCH " + loc + " HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer " +
                       Service::Token("alice") +
                       "\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\n"
                       "Content-Type: application/offset+octet-stream\r\nContent-Length: " +
                       std::to_string(data.size()) + "\r\n\r\n";
    ASSERT_TRUE(cut.Send(head + data.substr(0, 120000)));
  }  // the connection is cut here, 80000 bytes short
  // HEAD says how much arrived, once the cut PATCH let go of the upload (an
  // empty PATCH at that offset is 423 until then); the client resumes there.
  int64_t offset = -1;
  ASSERT_TRUE(Eventually(
      [&] {
        auto h = Head(loc);
        offset = Offset(h);
        return h.status == 200 && offset > 0 && Patch(loc, offset, "", "alice").status == 204;
      },
      10s))
      << offset;
  EXPECT_EQ(offset, 120000);  // every byte that arrived was kept
  auto rest = Patch(loc, offset, data.substr(static_cast<size_t>(offset)));
  ASSERT_EQ(rest.status, 204) << rest.body;
  ASSERT_EQ(rest.headers["upload-job-id"], IdOf(loc));
  auto final_state = service_->WaitFinal("alice", IdOf(loc), 60s);
  ASSERT_TRUE(final_state.has_value());
  EXPECT_EQ((*final_state)["status"], "completed");
}

TEST_F(TusTest, PartialUploadSurvivesAnApiRestart) {
  StartService({{"UPLOAD_FSYNC", "true"}});
  const std::string data = Text(400000, 13);
  auto created = Create(static_cast<int64_t>(data.size()));
  ASSERT_EQ(created.status, 201);
  const std::string loc = Location(created);
  ASSERT_EQ(Patch(loc, 0, data.substr(0, 250000)).status, 204);

  // SIGKILL: no graceful anything.
  service_->api().Kill();
  service_->StartApi();
  auto head = Head(loc);
  ASSERT_EQ(head.status, 200);
  EXPECT_EQ(Offset(head), 250000);
  EXPECT_EQ(Head(loc, "mallory").status, 404);  // the owner survives the restart too
  auto rest = Patch(loc, 250000, data.substr(250000));
  ASSERT_EQ(rest.status, 204) << rest.body;
  ASSERT_EQ(rest.headers["upload-job-id"], IdOf(loc));
  auto final_state = service_->WaitFinal("alice", IdOf(loc), 60s);
  ASSERT_TRUE(final_state.has_value());
  EXPECT_EQ((*final_state)["status"], "completed");
}

TEST_F(TusTest, ExpiredUploadIsSweptAndGone) {
  StartService({{"TUS_EXPIRATION_MS", "1500"}, {"TUS_SWEEP_INTERVAL_MS", "100"}});
  auto created = Create(100);
  ASSERT_EQ(created.status, 201);
  const std::string loc = Location(created);
  const std::string id = IdOf(loc);
  ASSERT_EQ(Patch(loc, 0, std::string(10, 'q')).status, 204);
  ASSERT_TRUE(fs::exists(TusDir() + "/" + id + ".bin"));
  // The sweep deletes both files once the upload expired.
  EXPECT_TRUE(Eventually(
      [&] {
        return !fs::exists(TusDir() + "/" + id + ".bin") &&
               !fs::exists(TusDir() + "/" + id + ".info");
      },
      20s));
  EXPECT_EQ(Head(loc).status, 404);
  EXPECT_EQ(Patch(loc, 10, std::string(90, 'q')).status, 404);
}

TEST_F(TusTest, PerUserRateLimitAppliesAtCreation) {
  StartService({{"RATE_LIMIT_PER_MINUTE", "2"}});
  EXPECT_EQ(Create(10).status, 201);
  EXPECT_EQ(Create(10).status, 201);
  auto third = Create(10);
  EXPECT_EQ(third.status, 429);
  EXPECT_FALSE(third.headers["retry-after"].empty());
  // Another user has a budget of their own.
  EXPECT_EQ(Create(10, "bob").status, 201);
}

}  // namespace
}  // namespace conveyor::testing

namespace conveyor::testing {
namespace {

// `conveyor upload --resumable`: a run killed midway leaves its upload URL in
// the state file; the next run resumes at the server's offset, sends only the
// rest, and the job completes.
TEST_F(TusTest, CliResumableResumesAfterTheClientIsKilled) {
  StartService();
  TempDir work;
  const std::string file = work.path() + "/big.txt";
  const std::string data = Text(2 << 20, 17);
  {
    std::ofstream out(file, std::ios::binary);
    out << data;
  }
  const std::string url = "http://127.0.0.1:" + std::to_string(service_->port());
  std::map<std::string, std::string> env = {{"XDG_CACHE_HOME", work.path() + "/cache"},
                                            {"CONVEYOR_TOKEN", Service::Token("alice")}};
  Process first({ConveyorBinary(), "upload", file, "--session", "s1", "--resumable",
                 "--limit-rate", "262144", "--url", url},
                env, work.path() + "/first.log");
  // Once the server holds part of the file, the client dies.
  auto held = [&]() -> int64_t {
    int64_t most = 0;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(TusDir(), ec)) {
      if (e.path().extension() == ".bin") most = std::max<int64_t>(most, e.file_size(ec));
    }
    return most;
  };
  ASSERT_TRUE(Eventually([&] { return held() >= 300000; }, 30s)) << first.Log();
  first.Kill();
  ASSERT_LT(held(), static_cast<int64_t>(data.size()));
  const std::string state = work.path() + "/cache/conveyor/tus-uploads.json";
  ASSERT_TRUE(fs::exists(state));
  EXPECT_EQ(fs::status(state).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);

  Process second({ConveyorBinary(), "upload", file, "--session", "s1", "--resumable", "--wait",
                  "--json", "--url", url},
                 env, work.path() + "/second.log");
  ASSERT_EQ(second.Wait(90s), 0) << second.Log();
  const std::string log = second.Log();
  // It resumed at a byte the first run had delivered, not at 0.
  size_t at = log.find("resuming at byte ");
  ASSERT_NE(at, std::string::npos) << log;
  int64_t resumed = std::stoll(log.substr(at + 17));
  EXPECT_GE(resumed, 300000);
  EXPECT_LT(resumed, static_cast<int64_t>(data.size()));
  // The --json line: completed, with the job id.
  size_t brace = log.find("{\"file\"");
  ASSERT_NE(brace, std::string::npos) << log;
  auto j = nlohmann::json::parse(log.substr(brace, log.find('\n', brace) - brace), nullptr, false);
  EXPECT_EQ(j.value("status", ""), "completed") << log;
  EXPECT_TRUE(IsUuid(j.value("jobId", "")));
  // The upload is done: nothing left to resume.
  EXPECT_EQ(nlohmann::json::parse(std::ifstream(state)), nlohmann::json::object());
}

}  // namespace
}  // namespace conveyor::testing
