// File: tests/integration/service.h
//
// The whole service for end-to-end tests: a real redis-server on a free port,
// the real `conveyor api` and `conveyor worker` processes with their data in a
// temp dir, and helpers to talk to them over HTTP.
#pragma once

#include <chrono>
#include <ctime>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "http/auth.h"
#include "http_client.h"
#include "test_support.h"

namespace conveyor::testing {

using Env = std::map<std::string, std::string>;

class Service {
 public:
  static constexpr const char* kSecret = "integration-secret-0123456789abcdef";

  explicit Service(std::map<std::string, std::string> env = {}) : env_(std::move(env)) {
    api_port_ = FreePort();
    env_.emplace("JWT_SECRET", kSecret);
    env_.emplace("REDIS_HOST", "127.0.0.1");
    env_["REDIS_PORT"] = std::to_string(redis_.port());
    env_.emplace("DATA_DIR", data_.path());
    env_.emplace("UPLOAD_FSYNC", "false");
    env_.emplace("BIND_ADDRESS", "127.0.0.1");
    env_["PORT"] = std::to_string(api_port_);
  }

  void StartApi() {
    api_ = Process({ConveyorBinary(), "api"}, env_, data_.path() + "/api.log");
    if (!WaitForPort(api_port_, std::chrono::seconds(20))) {
      throw std::runtime_error("api did not start: " + api_.Log());
    }
  }
  void StartWorker() {
    worker_ = Process({ConveyorBinary(), "worker"}, env_, data_.path() + "/worker.log");
  }
  void Start() {
    StartApi();
    StartWorker();
  }

  int port() const { return api_port_; }
  RedisServer& redis() { return redis_; }
  Process& api() { return api_; }
  Process& worker() { return worker_; }
  const std::string& data_dir() const { return data_.path(); }
  std::string storage_dir() const { return data_.path() + "/uploads"; }
  const std::map<std::string, std::string>& env() const { return env_; }

  static std::string Token(const std::string& user) {
    auto t = http::MintToken(kSecret, user, std::time(nullptr), 3600);
    return t ? *t : std::string();
  }

  static nlohmann::json Json(const HttpResponse& r) {
    return nlohmann::json::parse(r.body, nullptr, false);
  }

  HttpResponse Status(const std::string& user, const std::string& job_id) {
    return Request(api_port_, "GET", "/api/chat/upload/status/" + job_id,
                   {{"Authorization", "Bearer " + Token(user)}});
  }

  // Uploads and returns the job id ("" on failure; the test asserts).
  std::string UploadOk(const std::string& user, const std::string& session, const FormFile& f) {
    auto r = Upload(api_port_, Token(user), session, f);
    if (r.status != 202) return "";
    auto j = Json(r);
    return j.value("/data/jobId"_json_pointer, std::string());
  }

  // Polls the status endpoint until the job is completed or failed.
  std::optional<nlohmann::json> WaitFinal(const std::string& user, const std::string& job_id,
                                          std::chrono::milliseconds timeout) {
    std::optional<nlohmann::json> last;
    bool ok = Eventually(
        [&] {
          auto r = Status(user, job_id);
          if (r.status != 200) return false;
          auto j = Json(r);
          std::string s = j.value("/data/status"_json_pointer, std::string());
          if (s == "completed" || s == "failed") {
            last = j["data"];
            return true;
          }
          return false;
        },
        timeout);
    return ok ? last : std::nullopt;
  }

 private:
  RedisServer redis_;
  TempDir data_;
  std::map<std::string, std::string> env_;
  int api_port_ = 0;
  Process api_;
  Process worker_;
};

}  // namespace conveyor::testing
