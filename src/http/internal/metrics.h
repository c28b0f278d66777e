// File: http/internal/metrics.h
//
// The API's Prometheus metrics (GET /metrics). All methods are thread-safe
// and cheap (atomics; one mutex for the route/status counter map).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>

namespace conveyor::http {

class Metrics {
 public:
  // conveyor_http_requests_total{route,status}
  void CountRequest(std::string_view route, int status);
  // conveyor_upload_bytes_received_total
  void AddBytesReceived(int64_t n) { bytes_received_.fetch_add(n, std::memory_order_relaxed); }
  // conveyor_uploads_accepted_total and conveyor_upload_duration_seconds
  // (from the end of the request header to the 202).
  void UploadAccepted(double seconds);
  // conveyor_http_requests_in_flight
  void EnterRequest() { in_flight_.fetch_add(1, std::memory_order_relaxed); }
  void LeaveRequest() { in_flight_.fetch_sub(1, std::memory_order_relaxed); }
  // conveyor_http_connections_open
  void ConnectionOpened() { connections_.fetch_add(1, std::memory_order_relaxed); }
  void ConnectionClosed() { connections_.fetch_sub(1, std::memory_order_relaxed); }
  // conveyor_http_connections_refused_total (503 at a connection limit)
  void ConnectionRefused() { refused_.fetch_add(1, std::memory_order_relaxed); }

  std::string Render() const;  // Prometheus text exposition format 0.0.4

 private:
  static constexpr std::array<double, 12> kBuckets = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                      0.1,   0.25,   0.5,   1,    2.5,   10};
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;
  std::atomic<int64_t> bytes_received_{0};
  std::atomic<int64_t> in_flight_{0};
  std::atomic<int64_t> connections_{0};
  std::atomic<uint64_t> refused_{0};
  std::atomic<uint64_t> accepted_{0};
  std::array<std::atomic<uint64_t>, kBuckets.size()> bucket_counts_{};
  std::atomic<uint64_t> latency_sum_us_{0};
};

}  // namespace conveyor::http
