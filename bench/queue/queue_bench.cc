// Queue engine benchmark: conveyor's BullMQ-format producer and consumer on a
// real Redis. Adds --jobs no-op jobs (the first half from one thread, the
// second from --producers threads), then processes them all with --consumers
// threads sharing one Consumer, as a worker's slots do (Fetch, then
// CompleteAndFetch("null"); the calls of all threads are pipelined on the
// consumer's one command connection). Prints one JSON line:
//   add_rate_single, add_rate_multi (jobs/s), process_rate (jobs/s),
//   cpu_s_per_10k (this process's user+sys CPU while processing, per 10,000
//   jobs), user_s_per_10k (the user part), switches_per_job (context
//   switches of all its threads while processing, per job), p50_ms / p99_ms
//   (job timestamp -> processedOn).
// bench/queue/run.sh runs it next to bullmq_bench.mjs and compares.
//
//   queue_bench --port 6379 [--host 127.0.0.1] [--jobs 20000] [--producers 4]
//               [--consumers 16]
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "queue/queue.h"

namespace {

using conveyor::queue::ActiveJob;
using conveyor::queue::JobOptions;
using conveyor::queue::OpenRedisConsumer;
using conveyor::queue::OpenRedisQueue;
using conveyor::queue::Queue;
using conveyor::queue::RedisOptions;
using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// This process's resource use so far (all threads).
struct Usage {
  double user_s = 0, cpu_s = 0;
  long switches = 0;  // voluntary and involuntary context switches
};

Usage Used() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto s = [](timeval tv) { return static_cast<double>(tv.tv_sec) + tv.tv_usec / 1e6; };
  return {s(ru.ru_utime), s(ru.ru_utime) + s(ru.ru_stime), ru.ru_nvcsw + ru.ru_nivcsw};
}

std::string JobId(int i) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "bench-%08d", i);
  return buf;
}

void Die(const char* what, const conveyor::Status& s) {
  std::fprintf(stderr, "queue_bench: %s: %s\n", what, s.ToString().c_str());
  std::exit(1);
}

// Adds jobs [from, to) on `threads` threads; returns the elapsed seconds.
double AddJobs(Queue& q, int from, int to, int threads) {
  std::atomic<int> next{from};
  auto start = Clock::now();
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      for (int i = next++; i < to; i = next++) {
        auto r = q.Add(JobId(i), "bench", R"({"i":)" + std::to_string(i) + "}", JobOptions{});
        if (!r) Die("add", r.status());
      }
    });
  }
  for (auto& t : pool) t.join();
  return Seconds(start, Clock::now());
}

}  // namespace

int main(int argc, char** argv) {
  RedisOptions o;
  o.host = "127.0.0.1";
  o.queue_name = "bench";
  int jobs = 20000, producers = 4, consumers = 16;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--host") o.host = v;
    else if (k == "--port") o.port = std::atoi(v.c_str());
    else if (k == "--jobs") jobs = std::atoi(v.c_str());
    else if (k == "--producers") producers = std::atoi(v.c_str());
    else if (k == "--consumers") consumers = std::atoi(v.c_str());
    else {
      std::fprintf(stderr, "queue_bench: unknown option %s\n", k.c_str());
      return 2;
    }
  }
  auto q = OpenRedisQueue(o);
  if (!q) Die("open queue", q.status());

  const int half = jobs / 2;
  double single_s = AddJobs(**q, 0, half, 1);
  double multi_s = AddJobs(**q, half, jobs, producers);

  std::atomic<int> done{0};
  std::mutex mu;
  std::vector<int64_t> latencies;
  latencies.reserve(jobs);
  auto shared = OpenRedisConsumer(o);
  if (!shared) Die("open consumer", shared.status());
  const Usage used0 = Used();
  auto start = Clock::now();
  std::vector<std::thread> pool;
  for (int t = 0; t < consumers; ++t) {
    pool.emplace_back([&, t] {
      auto& c = **shared;
      const std::string token = "bench-" + std::to_string(t);
      std::vector<int64_t> mine;
      // As the worker does: each completion also leases the next job, in one
      // round trip (CompleteAndFetch).
      std::optional<conveyor::queue::ActiveJob> next;
      uint64_t seq = 0;
      while (done.load() < jobs) {
        if (!next) {
          auto job = c.Fetch(token + ":" + std::to_string(seq++), 30000);
          if (!job) Die("fetch", job.status());
          if (!job->has_value()) {
            auto w = c.WaitForWork(50);
            if (!w) Die("wait", w.status());
            continue;
          }
          next = std::move(**job);
        }
        mine.push_back(NowMs() - next->timestamp_ms);
        auto r = c.CompleteAndFetch(*next, "null", token + ":" + std::to_string(seq++), 30000);
        if (!r.completed) Die("complete", r.completed.status());
        if (!r.next) Die("fetch", r.next.status());
        ++done;
        next = std::move(*r.next);
      }
      std::lock_guard<std::mutex> lock(mu);
      latencies.insert(latencies.end(), mine.begin(), mine.end());
    });
  }
  for (auto& t : pool) t.join();
  double process_s = Seconds(start, Clock::now());
  const Usage used1 = Used();
  const double cpu = used1.cpu_s - used0.cpu_s;

  std::sort(latencies.begin(), latencies.end());
  auto pct = [&](double p) {
    return latencies.empty() ? 0 : latencies[static_cast<size_t>(p * (latencies.size() - 1))];
  };
  std::printf(
      "{\"impl\":\"conveyor\",\"jobs\":%d,\"add_rate_single\":%.0f,\"add_rate_multi\":%.0f,"
      "\"producers\":%d,\"process_rate\":%.0f,\"consumers\":%d,\"cpu_s_per_10k\":%.3f,"
      "\"user_s_per_10k\":%.3f,\"switches_per_job\":%.2f,\"p50_ms\":%lld,\"p99_ms\":%lld}\n",
      jobs, half / single_s, (jobs - half) / multi_s, producers, jobs / process_s, consumers,
      cpu / jobs * 10000, (used1.user_s - used0.user_s) / jobs * 10000,
      static_cast<double>(used1.switches - used0.switches) / jobs,
      static_cast<long long>(pct(0.5)), static_cast<long long>(pct(0.99)));
  return 0;
}
