// Operations end to end: the real `conveyor api` and `conveyor worker`
// (LOG_FORMAT=json, the worker's METRICS_PORT) against a real redis-server.
// Both /metrics bodies pass `promtool check metrics`; one request id follows
// an upload through the API's and the worker's log lines; the worker is
// listed by `conveyor queue workers` while it runs and not after it stops.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <signal.h>

#include <fstream>
#include <sstream>

#include "service.h"

namespace conveyor::testing {
namespace {

using namespace std::chrono_literals;

const std::string kText = "Observability test: metrics, logs and the worker registry.\n";

// `promtool check metrics` on `body`; its exit status (0: clean), output in *out.
int PromtoolCheck(const std::string& body, const std::string& dir, std::string* out) {
  const std::string path = dir + "/scrape.txt";
  std::ofstream(path) << body;
  int status = -1;
  *out = RunCapture({"sh", "-c", "promtool check metrics < '" + path + "' 2>&1"}, &status);
  return status;
}

// The value of the first sample line starting with `series` ("" if none).
std::string Sample(const std::string& body, const std::string& series) {
  std::istringstream in(body);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(series + " ", 0) == 0) return line.substr(series.size() + 1);
  }
  return "";
}

std::vector<nlohmann::json> JsonLines(const std::string& log, const std::string& needle) {
  std::vector<nlohmann::json> out;
  std::istringstream in(log);
  std::string line;
  while (std::getline(in, line)) {
    if (line.find(needle) == std::string::npos) continue;
    out.push_back(nlohmann::json::parse(line, nullptr, false));
  }
  return out;
}

std::string WorkersJson(Service& svc) {
  std::vector<std::string> argv = {"env"};
  for (const auto& [k, v] : svc.env()) argv.push_back(k + "=" + v);
  argv.insert(argv.end(), {ConveyorBinary(), "queue", "workers", "--json"});
  return RunCapture(argv);
}

TEST(Observability, MetricsLogsAndWorkerRegistryAcrossApiAndWorker) {
  const int metrics_port = FreePort();
  Service svc({{"LOG_FORMAT", "json"},
               {"METRICS_PORT", std::to_string(metrics_port)},
               {"WORKER_CONCURRENCY", "3"}});
  svc.Start();
  ASSERT_TRUE(WaitForPort(metrics_port, 20s)) << svc.worker().Log();

  // An upload with the client's own request id: echoed, and carried to the worker.
  const std::string rid = "trace-7f3a-upload.1";
  const std::string b = "ObsBoundary";
  auto up = Request(svc.port(), "POST", "/api/chat/upload/async",
                    {{"Authorization", "Bearer " + Service::Token("olga")},
                     {"Content-Type", "multipart/form-data; boundary=" + b},
                     {"X-Request-Id", rid}},
                    MultipartBody(b, {{"session_id", "s1"}}, {{"file", "a.txt", "text/plain", kText}}));
  ASSERT_EQ(up.status, 202) << up.body;
  EXPECT_EQ(up.headers["x-request-id"], rid);
  const std::string job_id = Service::Json(up)["data"]["jobId"];
  auto final = svc.WaitFinal("olga", job_id, 30s);
  ASSERT_TRUE(final) << svc.worker().Log();
  ASSERT_EQ((*final)["status"], "completed");

  // A request id that is not safe to echo is replaced by a generated one.
  auto bad = Request(svc.port(), "GET", "/healthz", {{"X-Request-Id", "bad id\"<>"}});
  EXPECT_FALSE(bad.headers["x-request-id"].empty());
  EXPECT_NE(bad.headers["x-request-id"], "bad id\"<>");
  auto none = Request(svc.port(), "GET", "/healthz", {});
  EXPECT_FALSE(none.headers["x-request-id"].empty());
  EXPECT_NE(none.headers["x-request-id"], bad.headers["x-request-id"]);
  auto toolong = Request(svc.port(), "GET", "/healthz", {{"X-Request-Id", std::string(200, 'a')}});
  EXPECT_NE(toolong.headers["x-request-id"], std::string(200, 'a'));

  // The worker's /metrics and /healthz; the job shows there.
  std::string worker_metrics;
  ASSERT_TRUE(Eventually(
      [&] {
        auto m = Request(metrics_port, "GET", "/metrics", {});
        worker_metrics = m.body;
        return m.status == 200 && Sample(m.body, "conveyor_jobs_completed_total") == "1";
      },
      10s))
      << worker_metrics;
  EXPECT_EQ(Request(metrics_port, "GET", "/healthz", {}).status, 200);
  EXPECT_EQ(Sample(worker_metrics, "conveyor_worker_slots"), "3");
  EXPECT_EQ(Sample(worker_metrics, "conveyor_job_stage_duration_seconds_count{stage=\"extract\"}"), "1");
  EXPECT_EQ(Sample(worker_metrics, "conveyor_job_stage_duration_seconds_count{stage=\"analyse\"}"), "1");
  EXPECT_EQ(Sample(worker_metrics, "conveyor_job_stage_duration_seconds_count{stage=\"store\"}"), "1");
  EXPECT_EQ(Sample(worker_metrics, "conveyor_job_end_to_end_seconds_count"), "1");
  EXPECT_EQ(Sample(worker_metrics, "conveyor_extract_child_cpu_seconds_count"), "1");
  EXPECT_NE(Sample(worker_metrics, "conveyor_extract_child_peak_rss_bytes_sum"), "0");
  EXPECT_EQ(Sample(worker_metrics, "conveyor_workers_live"), "1");

  // The API's /metrics: queue depth from Redis, the live worker, request latency.
  std::string api_metrics;
  ASSERT_TRUE(Eventually(
      [&] {
        api_metrics = Request(svc.port(), "GET", "/metrics", {}).body;
        return Sample(api_metrics, "conveyor_queue_jobs{state=\"completed\"}") == "1";
      },
      5s))
      << api_metrics;
  EXPECT_EQ(Sample(api_metrics, "conveyor_workers_live"), "1");
  EXPECT_EQ(Sample(api_metrics, "conveyor_queue_jobs{state=\"wait\"}"), "0");
  EXPECT_EQ(Sample(api_metrics, "conveyor_queue_dead_letter_jobs"), "0");
  EXPECT_FALSE(Sample(api_metrics, "conveyor_redis_round_trip_seconds").empty());
  EXPECT_FALSE(Sample(api_metrics, "conveyor_db_round_trip_seconds").empty());
  EXPECT_EQ(Sample(api_metrics,
                   "conveyor_http_request_duration_seconds_count{route=\"upload\"}"), "1")
      << api_metrics;

  // Both bodies are valid exposition text by promtool's rules.
  std::string out;
  EXPECT_EQ(PromtoolCheck(api_metrics, svc.data_dir(), &out), 0) << out;
  EXPECT_EQ(PromtoolCheck(worker_metrics, svc.data_dir(), &out), 0) << out;

  // One grep for the request id finds the API's acceptance and the worker's
  // lines of that job, all JSON objects with the job id.
  auto api_lines = JsonLines(svc.api().Log(), rid);
  auto worker_lines = JsonLines(svc.worker().Log(), rid);
  ASSERT_FALSE(api_lines.empty()) << svc.api().Log();
  ASSERT_FALSE(worker_lines.empty()) << svc.worker().Log();
  for (const auto& l : api_lines) {
    ASSERT_TRUE(l.is_object());
    EXPECT_EQ(l["request_id"], rid);
    EXPECT_EQ(l["job_id"], job_id);
    EXPECT_EQ(l["user_id"], "olga");
    EXPECT_TRUE(l.contains("time") && l.contains("level") && l.contains("message")) << l.dump();
  }
  bool completed_line = false;
  for (const auto& l : worker_lines) {
    ASSERT_TRUE(l.is_object());
    EXPECT_EQ(l["job_id"], job_id);
    completed_line |= l["message"] == "worker: job " + job_id + " completed";
  }
  EXPECT_TRUE(completed_line) << svc.worker().Log();

  // The worker registry: listed while running, gone after a graceful stop.
  auto workers = nlohmann::json::parse(WorkersJson(svc), nullptr, false);
  ASSERT_TRUE(workers.is_array()) << WorkersJson(svc);
  ASSERT_EQ(workers.size(), 1u) << workers.dump();
  EXPECT_EQ(workers[0]["pid"], svc.worker().pid());
  EXPECT_EQ(workers[0]["concurrency"], 3);
  EXPECT_GT(workers[0]["lastBeat"].get<int64_t>(), 0);
  svc.worker().Signal(SIGTERM);
  ASSERT_NE(svc.worker().Wait(20s), -1);
  workers = nlohmann::json::parse(WorkersJson(svc), nullptr, false);
  EXPECT_TRUE(workers.is_array() && workers.empty()) << workers.dump();
  api_metrics = "";
  EXPECT_TRUE(Eventually(
      [&] {
        api_metrics = Request(svc.port(), "GET", "/metrics", {}).body;
        return Sample(api_metrics, "conveyor_workers_live") == "0";
      },
      5s))
      << api_metrics;
}

TEST(Observability, WorkerMetricsNeedTheTokenWhenOneIsSet) {
  const int metrics_port = FreePort();
  Service svc({{"METRICS_PORT", std::to_string(metrics_port)}, {"METRICS_TOKEN", "m-secret"}});
  svc.StartWorker();
  ASSERT_TRUE(WaitForPort(metrics_port, 20s)) << svc.worker().Log();
  EXPECT_EQ(Request(metrics_port, "GET", "/metrics", {}).status, 401);
  EXPECT_EQ(Request(metrics_port, "GET", "/metrics", {{"Authorization", "Bearer wrong"}}).status,
            401);
  auto m = Request(metrics_port, "GET", "/metrics", {{"Authorization", "Bearer m-secret"}});
  EXPECT_EQ(m.status, 200);
  EXPECT_NE(m.body.find("# TYPE conveyor_worker_slots_busy gauge"), std::string::npos) << m.body;
  EXPECT_EQ(Request(metrics_port, "GET", "/healthz", {}).status, 200);
}

// Two workers of one host with the same METRICS_PORT: the second runs
// without its metrics endpoint (and says so) and still processes jobs.
TEST(Observability, AWorkerWhoseMetricsPortIsTakenStillWorks) {
  const int metrics_port = FreePort();
  Service svc({{"METRICS_PORT", std::to_string(metrics_port)}});
  svc.StartApi();
  int busy = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(busy, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(metrics_port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(busy, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(listen(busy, 1), 0);
  svc.StartWorker();
  std::string id = svc.UploadOk("alice", "s1", {"file", "a.txt", "text/plain", "Tides and harbours."});
  ASSERT_FALSE(id.empty());
  auto final = svc.WaitFinal("alice", id, 30s);
  close(busy);
  ASSERT_TRUE(final) << svc.worker().Log();
  EXPECT_EQ((*final)["status"], "completed");
  EXPECT_NE(svc.worker().Log().find("without its metrics endpoint"), std::string::npos)
      << svc.worker().Log();
}

}  // namespace
}  // namespace conveyor::testing
