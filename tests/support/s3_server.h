// File: tests/support/s3_server.h
//
// S3Server: a real S3-protocol server for tests of the object store.
#pragma once

#include <string>
#include <vector>

#include "test_support.h"

namespace conveyor::testing {

// A real S3-protocol server: s3rver (the npm package locked in
// tests/interop/package.json, installed by scripts/setup.sh) run by
// tests/interop/s3_server.mjs on a free loopback port, its objects in a temp
// dir, with bucket `bucket` created. It checks no signature; credentials are
// accepted whatever they are. Stopped by PID on destruction.
class S3Server {
 public:
  explicit S3Server(std::string bucket = "conveyor-test");  // throws std::runtime_error
  ~S3Server();
  S3Server(const S3Server&) = delete;
  S3Server& operator=(const S3Server&) = delete;
  int port() const { return port_; }
  const std::string& bucket() const { return bucket_; }
  std::string endpoint() const;  // "http://127.0.0.1:<port>"
  // Every object key in the bucket, read from the server's files (not
  // through the protocol), sorted.
  std::vector<std::string> ObjectKeys() const;
  // Multipart uploads neither completed nor aborted, from the server's files.
  int MultipartUploads() const;
  std::string Log() const { return proc_.Log(); }

 private:
  TempDir dir_;
  std::string bucket_;
  int port_;
  Process proc_;
};

}  // namespace conveyor::testing
