#include "core/metrics.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <type_traits>

namespace conveyor::metrics {
namespace {

void AppendLabels(std::string& out, const std::vector<std::string>& names,
                  const std::vector<std::string>& values, std::string_view extra_name = {},
                  std::string_view extra_value = {}) {
  if (names.empty() && extra_name.empty()) return;
  out += '{';
  bool first = true;
  for (size_t i = 0; i < names.size(); ++i) {
    if (!first) out += ',';
    first = false;
    out += names[i];
    out += "=\"";
    out += EscapeLabelValue(values[i]);
    out += '"';
  }
  if (!extra_name.empty()) {
    if (!first) out += ',';
    out += extra_name;
    out += "=\"";
    out += extra_value;
    out += '"';
  }
  out += '}';
}

void AppendHeader(std::string& out, const std::string& name, const std::string& help,
                  const char* type) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += EscapeHelp(help);
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

template <typename V>
void RenderSimple(std::string& out, const Family<V>& f, const char* type) {
  AppendHeader(out, f.name(), f.help(), type);
  f.ForEach([&](const std::vector<std::string>& values, const V& v) {
    out += f.name();
    AppendLabels(out, f.labels(), values);
    out += ' ';
    out += FormatValue(v.value());
    out += '\n';
  });
}

void RenderHistogram(std::string& out, const HistogramFamily& f) {
  AppendHeader(out, f.name(), f.help(), "histogram");
  f.ForEach([&](const std::vector<std::string>& values, const HistogramValue& h) {
    HistogramValue::Snapshot s = h.Read();
    for (size_t i = 0; i <= f.bounds().size(); ++i) {
      out += f.name();
      out += "_bucket";
      const std::string le = i < f.bounds().size() ? FormatValue(f.bounds()[i]) : "+Inf";
      AppendLabels(out, f.labels(), values, "le", le);
      out += ' ';
      out += std::to_string(s.cumulative[i]);
      out += '\n';
    }
    out += f.name();
    out += "_sum";
    AppendLabels(out, f.labels(), values);
    out += ' ';
    out += FormatValue(s.sum);
    out += '\n';
    out += f.name();
    out += "_count";
    AppendLabels(out, f.labels(), values);
    out += ' ';
    out += std::to_string(s.count);
    out += '\n';
  });
}

void CheckNames(const std::string& name, const std::vector<std::string>& labels) {
  bool ok = IsValidMetricName(name);
  for (const auto& l : labels) ok = ok && IsValidLabelName(l) && l != "le";
  if (!ok) {
    std::fprintf(stderr, "metrics: invalid metric or label name in %s\n", name.c_str());
    std::abort();
  }
}

}  // namespace

HistogramValue::HistogramValue(const std::vector<double>* bounds)
    : bounds_(bounds), buckets_(new std::atomic<uint64_t>[bounds->size() + 1]) {
  for (size_t i = 0; i <= bounds_->size(); ++i) buckets_[i].store(0);
}

void HistogramValue::Observe(double v) {
  size_t i = 0;
  while (i < bounds_->size() && v > (*bounds_)[i]) ++i;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
}

HistogramValue::Snapshot HistogramValue::Read() const {
  Snapshot s;
  s.cumulative.resize(bounds_->size() + 1);
  uint64_t total = 0;
  for (size_t i = 0; i <= bounds_->size(); ++i) {
    total += buckets_[i].load(std::memory_order_relaxed);
    s.cumulative[i] = total;
  }
  s.count = total;
  s.sum = sum_.load(std::memory_order_relaxed);
  return s;
}

Registry::Entry& Registry::Find(const std::string& name, Type type) {
  auto it = families_.find(name);
  if (it != families_.end() && it->second.type != type) {
    std::fprintf(stderr, "metrics: %s registered twice with different types\n", name.c_str());
    std::abort();
  }
  if (it == families_.end()) it = families_.emplace(name, Entry{type, nullptr, nullptr, nullptr}).first;
  return it->second;
}

CounterFamily& Registry::Counter(const std::string& name, const std::string& help,
                                 std::vector<std::string> labels) {
  CheckNames(name, labels);
  std::lock_guard lock(mu_);
  Entry& e = Find(name, Type::kCounter);
  if (!e.counter) e.counter = std::make_unique<CounterFamily>(name, help, std::move(labels));
  return *e.counter;
}

GaugeFamily& Registry::Gauge(const std::string& name, const std::string& help,
                             std::vector<std::string> labels) {
  CheckNames(name, labels);
  std::lock_guard lock(mu_);
  Entry& e = Find(name, Type::kGauge);
  if (!e.gauge) e.gauge = std::make_unique<GaugeFamily>(name, help, std::move(labels));
  return *e.gauge;
}

HistogramFamily& Registry::Histogram(const std::string& name, const std::string& help,
                                     std::vector<std::string> labels,
                                     std::vector<double> bounds) {
  CheckNames(name, labels);
  std::lock_guard lock(mu_);
  Entry& e = Find(name, Type::kHistogram);
  if (!e.histogram) {
    e.histogram =
        std::make_unique<HistogramFamily>(name, help, std::move(labels), std::move(bounds));
  }
  return *e.histogram;
}

void Registry::AddCollector(std::function<void()> collector) {
  std::lock_guard lock(mu_);
  collectors_.push_back(std::move(collector));
}

std::string Registry::Render() const {
  std::vector<std::function<void()>> collectors;
  {
    std::lock_guard lock(mu_);
    collectors = collectors_;
  }
  for (const auto& c : collectors) c();
  std::string out;
  std::lock_guard lock(mu_);
  for (const auto& [name, e] : families_) {
    switch (e.type) {
      case Type::kCounter: RenderSimple(out, *e.counter, "counter"); break;
      case Type::kGauge: RenderSimple(out, *e.gauge, "gauge"); break;
      case Type::kHistogram: RenderHistogram(out, *e.histogram); break;
    }
  }
  return out;
}

Registry& DefaultRegistry() {
  static Registry* r = new Registry();  // never destroyed: used until exit
  return *r;
}

std::string EscapeLabelValue(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string EscapeHelp(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string FormatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    return std::to_string(static_cast<long long>(v));
  }
  char buf[32];
  for (int precision = 6; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof buf, "%.*g", precision, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  return buf;
}

bool IsValidMetricName(std::string_view name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

bool IsValidLabelName(std::string_view name) {
  return IsValidMetricName(name) && name.find(':') == std::string_view::npos &&
         name.rfind("__", 0) != 0;
}

int64_t SteadyNowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

double SecondsSince(int64_t start_steady_ns) {
  return static_cast<double>(SteadyNowNs() - start_steady_ns) / 1e9;
}

}  // namespace conveyor::metrics
