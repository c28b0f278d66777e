// Per-user upload limits shared through Redis (queue/limits.h), end to end:
// two real `conveyor api` processes on one real redis-server (and one
// database, as two hosts of a deployment share theirs). Every limit must hold across the two, as if one process
// served the user: uploads per minute, bytes per hour and uploads in flight
// (released when the worker finishes the jobs).
#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "service.h"

namespace conveyor::testing {
namespace {

using std::chrono::seconds;

// A second API process on the first one's Redis and database, on its own
// port: what a second host of the same deployment is.
class SecondApi {
 public:
  explicit SecondApi(const Service& first) {
    Env env = first.env();
    port_ = FreePort();
    env["PORT"] = std::to_string(port_);
    api_ = Process({ConveyorBinary(), "api"}, env, first.data_dir() + "/api2.log");
    if (!WaitForPort(port_, seconds(20))) throw std::runtime_error("api 2: " + api_.Log());
  }
  int port() const { return port_; }

 private:
  int port_ = 0;
  Process api_;
};

FormFile Text(size_t bytes) {
  FormFile f;
  f.data = std::string(bytes, 'a');
  return f;
}

// 429 with Retry-After and the API's JSON error shape.
void ExpectRateLimited(const HttpResponse& r) {
  EXPECT_EQ(r.status, 429) << r.body;
  ASSERT_TRUE(r.headers.count("retry-after")) << r.body;
  EXPECT_GE(std::stoi(r.headers.at("retry-after")), 1);
  auto j = Service::Json(r);
  EXPECT_EQ(j.value("success", true), false) << r.body;
  EXPECT_EQ(j.value("/error/code"_json_pointer, std::string()), "rate_limited") << r.body;
  EXPECT_FALSE(j.value("/error/message"_json_pointer, std::string()).empty()) << r.body;
}

TEST(UploadLimits, UploadsPerMinuteHoldAcrossTwoApiProcesses) {
  Service svc({{"RATE_LIMIT_PER_MINUTE", "4"}, {"UPLOADS_IN_FLIGHT_PER_USER", "0"}});
  svc.StartApi();
  SecondApi api2(svc);
  const std::string token = Service::Token("alice");
  // Alternating processes: each alone would allow 4, together only 4.
  for (int i = 0; i < 4; ++i) {
    auto r = Upload(i % 2 == 0 ? svc.port() : api2.port(), token, "s1", Text(10));
    EXPECT_EQ(r.status, 202) << i << ": " << r.body;
  }
  ExpectRateLimited(Upload(svc.port(), token, "s1", Text(10)));
  ExpectRateLimited(Upload(api2.port(), token, "s1", Text(10)));
  // Another user has a budget of their own.
  EXPECT_EQ(Upload(api2.port(), Service::Token("bob"), "s1", Text(10)).status, 202);
}

TEST(UploadLimits, BytesPerHourHoldAcrossTwoApiProcesses) {
  Service svc({{"UPLOAD_BYTES_PER_HOUR", "5000"}, {"RATE_LIMIT_PER_MINUTE", "0"},
               {"UPLOADS_IN_FLIGHT_PER_USER", "0"}});
  svc.StartApi();
  SecondApi api2(svc);
  const std::string token = Service::Token("alice");
  // About 2,200 bytes of body each: two fit in 5,000, a third does not.
  EXPECT_EQ(Upload(svc.port(), token, "s1", Text(2000)).status, 202);
  EXPECT_EQ(Upload(api2.port(), token, "s1", Text(2000)).status, 202);
  auto r = Upload(svc.port(), token, "s1", Text(2000));
  ExpectRateLimited(r);
  EXPECT_NE(r.body.find("upload_bytes_per_hour"), std::string::npos) << r.body;
}

TEST(UploadLimits, InFlightHoldsAcrossTwoApiProcessesUntilTheWorkerFinishes) {
  Service svc({{"UPLOADS_IN_FLIGHT_PER_USER", "2"}, {"RATE_LIMIT_PER_MINUTE", "0"}});
  svc.StartApi();
  SecondApi api2(svc);
  const std::string token = Service::Token("alice");
  // No worker yet: the jobs stay in the queue, so they stay in flight.
  std::string a = svc.UploadOk("alice", "s1", Text(10));
  std::string b;
  {
    auto r = Upload(api2.port(), token, "s1", Text(10));
    ASSERT_EQ(r.status, 202) << r.body;
    b = Service::Json(r).value("/data/jobId"_json_pointer, std::string());
  }
  ASSERT_FALSE(a.empty());
  auto refused = Upload(api2.port(), token, "s1", Text(10));
  ExpectRateLimited(refused);
  EXPECT_NE(refused.body.find("uploads_in_flight"), std::string::npos) << refused.body;
  ExpectRateLimited(Upload(svc.port(), token, "s1", Text(10)));

  // Once the worker has finished them, the slots are free again.
  svc.StartWorker();
  ASSERT_TRUE(svc.WaitFinal("alice", a, seconds(30)));
  ASSERT_TRUE(Eventually(
      [&] {
        auto s = Request(api2.port(), "GET", "/api/chat/upload/status/" + b,
                         {{"Authorization", "Bearer " + token}});
        auto st = Service::Json(s).value("/data/status"_json_pointer, std::string());
        return st == "completed" || st == "failed";
      },
      seconds(30)));
  // The row says completed before the queue's completion frees the slot (row
  // first, then Redis): a refused upload changes nothing, so ask until the
  // slot is free.
  int last = 0;
  EXPECT_TRUE(Eventually(
      [&] { return (last = Upload(api2.port(), token, "s1", Text(10)).status) == 202; },
      seconds(30)))
      << last;
}

}  // namespace
}  // namespace conveyor::testing
