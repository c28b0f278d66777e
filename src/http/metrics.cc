#include "http/internal/metrics.h"

#include <cstdio>

namespace conveyor::http {

void Metrics::CountRequest(std::string_view route, int status) {
  std::lock_guard lock(mu_);
  ++requests_[{std::string(route), status}];
}

void Metrics::UploadAccepted(double seconds) {
  accepted_.fetch_add(1, std::memory_order_relaxed);
  latency_sum_us_.fetch_add(static_cast<uint64_t>(seconds * 1e6), std::memory_order_relaxed);
  for (size_t i = 0; i < kBuckets.size(); ++i) {
    if (seconds <= kBuckets[i]) {
      bucket_counts_[i].fetch_add(1, std::memory_order_relaxed);
      break;
    }
  }
}

std::string Metrics::Render() const {
  std::string out;
  char line[256];
  out += "# HELP conveyor_http_requests_total HTTP requests by route and status.\n";
  out += "# TYPE conveyor_http_requests_total counter\n";
  {
    std::lock_guard lock(mu_);
    for (const auto& [key, n] : requests_) {
      std::snprintf(line, sizeof line,
                    "conveyor_http_requests_total{route=\"%s\",status=\"%d\"} %llu\n",
                    key.first.c_str(), key.second, static_cast<unsigned long long>(n));
      out += line;
    }
  }
  auto gauge = [&](const char* name, const char* type, const char* help, long long v) {
    std::snprintf(line, sizeof line, "# HELP %s %s\n# TYPE %s %s\n%s %lld\n", name, help, name,
                  type, name, v);
    out += line;
  };
  gauge("conveyor_uploads_accepted_total", "counter", "Uploads answered 202.",
        static_cast<long long>(accepted_.load()));
  gauge("conveyor_upload_bytes_received_total", "counter", "Upload body bytes read.",
        static_cast<long long>(bytes_received_.load()));
  gauge("conveyor_http_requests_in_flight", "gauge", "Requests being served.",
        static_cast<long long>(in_flight_.load()));
  gauge("conveyor_http_connections_open", "gauge", "Open client connections.",
        static_cast<long long>(connections_.load()));
  gauge("conveyor_http_connections_refused_total", "counter",
        "Connections answered 503 at a connection limit.",
        static_cast<long long>(refused_.load()));

  out += "# HELP conveyor_upload_duration_seconds Upload time from request header to 202.\n";
  out += "# TYPE conveyor_upload_duration_seconds histogram\n";
  uint64_t cumulative = 0;
  for (size_t i = 0; i < kBuckets.size(); ++i) {
    cumulative += bucket_counts_[i].load(std::memory_order_relaxed);
    std::snprintf(line, sizeof line, "conveyor_upload_duration_seconds_bucket{le=\"%g\"} %llu\n",
                  kBuckets[i], static_cast<unsigned long long>(cumulative));
    out += line;
  }
  uint64_t count = accepted_.load();
  std::snprintf(line, sizeof line,
                "conveyor_upload_duration_seconds_bucket{le=\"+Inf\"} %llu\n"
                "conveyor_upload_duration_seconds_sum %.6f\n"
                "conveyor_upload_duration_seconds_count %llu\n",
                static_cast<unsigned long long>(count),
                static_cast<double>(latency_sum_us_.load()) / 1e6,
                static_cast<unsigned long long>(count));
  out += line;
  return out;
}

}  // namespace conveyor::http
