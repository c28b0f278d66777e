#include "s3_server.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <stdexcept>

namespace conveyor::testing {

namespace {
// s3rver's file names: "<name>._S3rver_<resource>" (lib/stores/filesystem.js).
constexpr std::string_view kS3rverObject = "._S3rver_object";
}  // namespace

S3Server::S3Server(std::string bucket) : bucket_(std::move(bucket)), port_(FreePort()) {
  const std::string script = std::string(CONVEYOR_SOURCE_DIR) + "/tests/interop/s3_server.mjs";
  if (!std::filesystem::exists(std::string(CONVEYOR_SOURCE_DIR) +
                               "/tests/interop/node_modules/s3rver")) {
    throw std::runtime_error("s3rver is not installed: run scripts/setup.sh "
                             "(npm ci in tests/interop)");
  }
  proc_ = Process({"node", script, std::to_string(port_), dir_ / "data", bucket_}, {},
                  dir_ / "s3rver.log");
  bool ok = Eventually([&] { return proc_.Log().find("ready") != std::string::npos || !proc_.running(); },
                       std::chrono::seconds(30));
  if (!ok || !proc_.running()) throw std::runtime_error("s3rver did not start: " + proc_.Log());
}

S3Server::~S3Server() { proc_.Stop(); }

std::string S3Server::endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }

std::vector<std::string> S3Server::ObjectKeys() const {
  namespace fs = std::filesystem;
  std::vector<std::string> keys;
  const fs::path root = fs::path(dir_.path()) / "data" / bucket_;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (!it->is_regular_file() || !name.ends_with(kS3rverObject)) continue;
    fs::path rel = fs::relative(it->path(), root);
    std::string key = rel.string();
    keys.push_back(key.substr(0, key.size() - kS3rverObject.size()));
  }
  std::sort(keys.begin(), keys.end());
  return keys;
}

int S3Server::MultipartUploads() const {
  namespace fs = std::filesystem;
  const fs::path root = fs::path(dir_.path()) / "data" / bucket_ / "._S3rver_uploads";
  std::error_code ec;
  int n = 0;
  for (auto it = fs::directory_iterator(root, ec); !ec && it != fs::end(it); it.increment(ec)) {
    n += it->is_directory();
  }
  return n;
}

}  // namespace conveyor::testing
