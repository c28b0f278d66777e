// File: core/metrics.h
//
// A small Prometheus metric registry: counters, gauges and histograms, each
// a family with fixed label names, rendered in the text exposition format
// 0.0.4 (one HELP and one TYPE line per family; histograms as cumulative
// `_bucket{le=...}` series ending in `le="+Inf"`, then `_sum` and `_count`;
// label values escaped: backslash, double quote and newline).
//
// Example:
//   metrics::Registry& r = metrics::DefaultRegistry();
//   static auto& jobs = r.Counter("conveyor_jobs_completed_total", "Jobs completed.");
//   jobs.Get().Inc();
//   static auto& stage = r.Histogram("conveyor_job_stage_duration_seconds",
//                                    "Time per stage.", {"stage"}, metrics::kLatencyBuckets);
//   stage.Get({"extract"}).Observe(0.25);
//
// Names are checked once, when a family is created (an invalid name or a
// name created twice with another type aborts: a programming error). Asking
// for an existing family with the same type returns it, so independent
// modules may share one. A child (one label-value tuple) lives as long as the
// registry; the reference Get returns stays valid.
//
// Collectors run at the start of Render, before anything is written: they
// set gauges whose values are read from elsewhere (queue depth from Redis),
// so the value is fresh without a timer.
//
// Threads: everything is thread-safe. Inc/Set/Observe are lock-free
// (atomics); Get takes the family's mutex (cache the reference on hot paths).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace conveyor::metrics {

// Latency buckets in seconds, 1 ms to 60 s.
inline const std::vector<double> kLatencyBuckets = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                    0.25,  0.5,    1,     2.5,  5,     10,   30,
                                                    60};
// Job-length buckets in seconds, 10 ms to 10 min.
inline const std::vector<double> kJobBuckets = {0.01, 0.05, 0.1, 0.25, 0.5, 1,   2.5,
                                                5,    10,   30,  60,   120, 300, 600};

class CounterValue {
 public:
  void Inc(double v = 1) { value_.fetch_add(v, std::memory_order_relaxed); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

class GaugeValue {
 public:
  void Set(double v) { value_.store(v, std::memory_order_relaxed); }
  void Add(double v) { value_.fetch_add(v, std::memory_order_relaxed); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

class HistogramValue {
 public:
  explicit HistogramValue(const std::vector<double>* bounds);
  void Observe(double v);
  // Cumulative count per bound (the last is +Inf = count), sum, count.
  struct Snapshot {
    std::vector<uint64_t> cumulative;
    double sum = 0;
    uint64_t count = 0;
  };
  Snapshot Read() const;

 private:
  const std::vector<double>* bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // one per bound, plus +Inf
  std::atomic<double> sum_{0};
};

enum class Type { kCounter, kGauge, kHistogram };

// One metric name with its children by label values.
template <typename V>
class Family {
 public:
  Family(std::string name, std::string help, std::vector<std::string> labels,
         std::vector<double> bounds = {})
      : name_(std::move(name)), help_(std::move(help)), labels_(std::move(labels)),
        bounds_(std::move(bounds)) {}

  // The child for these label values (as many as the family has labels;
  // missing ones are empty, extra ones ignored).
  V& Get(const std::vector<std::string>& values = {}) {
    std::vector<std::string> key(labels_.size());
    for (size_t i = 0; i < key.size() && i < values.size(); ++i) key[i] = values[i];
    std::lock_guard lock(mu_);
    auto it = children_.find(key);
    if (it == children_.end()) it = children_.emplace(std::move(key), Make()).first;
    return *it->second;
  }

  const std::string& name() const { return name_; }
  const std::string& help() const { return help_; }
  const std::vector<std::string>& labels() const { return labels_; }
  const std::vector<double>& bounds() const { return bounds_; }

  // Calls fn(label values, child) for each child, in label order.
  template <typename Fn>
  void ForEach(Fn fn) const {
    std::lock_guard lock(mu_);
    for (const auto& [values, child] : children_) fn(values, *child);
  }

 private:
  std::unique_ptr<V> Make() {
    if constexpr (std::is_same_v<V, HistogramValue>) {
      return std::make_unique<V>(&bounds_);
    } else {
      return std::make_unique<V>();
    }
  }

  const std::string name_;
  const std::string help_;
  const std::vector<std::string> labels_;
  const std::vector<double> bounds_;
  mutable std::mutex mu_;
  std::map<std::vector<std::string>, std::unique_ptr<V>> children_;
};

using CounterFamily = Family<CounterValue>;
using GaugeFamily = Family<GaugeValue>;
using HistogramFamily = Family<HistogramValue>;

class Registry {
 public:
  CounterFamily& Counter(const std::string& name, const std::string& help,
                         std::vector<std::string> labels = {});
  GaugeFamily& Gauge(const std::string& name, const std::string& help,
                     std::vector<std::string> labels = {});
  // `bounds`: upper bounds in increasing order (+Inf is implied).
  HistogramFamily& Histogram(const std::string& name, const std::string& help,
                             std::vector<std::string> labels, std::vector<double> bounds);

  // Runs before each Render (see the file comment). Collectors must not
  // call Render.
  void AddCollector(std::function<void()> collector);

  // Every family, in name order, in the text exposition format.
  std::string Render() const;

 private:
  struct Entry {
    Type type;
    std::unique_ptr<CounterFamily> counter;
    std::unique_ptr<GaugeFamily> gauge;
    std::unique_ptr<HistogramFamily> histogram;
  };
  Entry& Find(const std::string& name, Type type);

  mutable std::mutex mu_;
  std::map<std::string, Entry> families_;
  std::vector<std::function<void()>> collectors_;
};

// The process's registry (what /metrics of the API and the worker render).
Registry& DefaultRegistry();

// Helpers of the text format, exposed for tests and other renderers.
// A label value with \, " and newline escaped.
std::string EscapeLabelValue(std::string_view v);
// A HELP text with \ and newline escaped.
std::string EscapeHelp(std::string_view v);
// A sample value: integers without a fraction, +Inf/-Inf/NaN as Prometheus
// spells them, else the shortest text that reads back the same double.
std::string FormatValue(double v);
// Whether `name` is a valid metric or label name ([a-zA-Z_:][a-zA-Z0-9_:]*;
// labels without ':').
bool IsValidMetricName(std::string_view name);
bool IsValidLabelName(std::string_view name);

// Seconds since `start` on the steady clock, for Observe.
double SecondsSince(int64_t start_steady_ns);
int64_t SteadyNowNs();

}  // namespace conveyor::metrics
