// sandbox_cost: what one sandboxed extraction costs on a small text file, for
// each way of starting the child (worker/sandbox.h): spawned
// (EXTRACT_FORK_SERVER=off), forked by the full extract server
// (EXTRACT_LEAN_SERVER=off) and forked by the lean one (the default).
//
//   sandbox_cost [--jobs N] [--runs R] [--binary PATH] [--path spawn|fork|lean|all]
//
// For each path: one warm-up job (for the fork path it starts the extract
// server; its time is printed apart), then R runs of N sequential
// RunSandboxed calls on a 2 KiB text file. Prints, per run and as the median
// of the runs, the wall-clock milliseconds per job and the CPU milliseconds
// per job (this process plus its children and, on the fork path, the extract
// server and its children, from /proc). Defaults: N=200, R=5, the conveyor
// binary of this build. Run as root to measure the full sandbox (uid drop,
// netns); on a shared machine compare medians.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "worker/sandbox.h"

namespace {

using Clock = std::chrono::steady_clock;
using conveyor::worker::SandboxSettings;

double CpuMs(const rusage& u) {
  auto ms = [](const timeval& t) { return static_cast<double>(t.tv_sec) * 1e3 + t.tv_usec / 1e3; };
  return ms(u.ru_utime) + ms(u.ru_stime);
}

// CPU time of `pid` and of its reaped children, in ms (0 when unreadable).
double ProcessTreeCpuMs(pid_t pid) {
  if (pid <= 0) return 0;
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t close = stat.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream fields(stat.substr(close + 2));
  std::vector<std::string> f;
  for (std::string w; fields >> w;) f.push_back(w);
  // After the name: state(0) ... utime(11) stime(12) cutime(13) cstime(14).
  if (f.size() < 15) return 0;
  double ticks = std::stod(f[11]) + std::stod(f[12]) + std::stod(f[13]) + std::stod(f[14]);
  return ticks * 1e3 / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// Everything this process and its descendants spent, in ms.
double TotalCpuMs(const SandboxSettings& s) {
  rusage self{}, children{};
  getrusage(RUSAGE_SELF, &self);
  getrusage(RUSAGE_CHILDREN, &children);
  double total = CpuMs(self) + CpuMs(children);
  if (s.fork_server) {
    total += ProcessTreeCpuMs(conveyor::worker::ExtractServerPid(s.binary_path));
    if (!s.lean_binary_path.empty()) {
      total += ProcessTreeCpuMs(conveyor::worker::ExtractServerPid(s.lean_binary_path));
    }
  }
  return total;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

int Bench(const char* name, SandboxSettings settings, const std::string& path, int jobs, int runs) {
  conveyor::processing::Input input;
  input.path = path;
  input.name_hint = "notes.txt";
  auto start = Clock::now();
  auto first = conveyor::worker::RunSandboxed(settings, input, {}, nullptr);
  double first_ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  if (!first) {
    std::fprintf(stderr, "%s: %s\n", name, first.status().ToString().c_str());
    return 1;
  }
  std::printf("%-6s first job %.1f ms%s\n", name, first_ms,
              settings.fork_server ? " (starts the extract server)" : "");
  std::vector<double> wall, cpu;
  for (int r = 0; r < runs; ++r) {
    double cpu0 = TotalCpuMs(settings);
    auto t0 = Clock::now();
    for (int i = 0; i < jobs; ++i) {
      auto out = conveyor::worker::RunSandboxed(settings, input, {}, nullptr);
      if (!out) {
        std::fprintf(stderr, "%s: %s\n", name, out.status().ToString().c_str());
        return 1;
      }
    }
    double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    wall.push_back(ms / jobs);
    cpu.push_back((TotalCpuMs(settings) - cpu0) / jobs);
    std::printf("%-6s run %d: %.2f ms/job wall, %.2f ms/job CPU\n", name, r + 1, wall.back(),
                cpu.back());
  }
  std::printf("%-6s median of %d runs x %d jobs: %.2f ms/job wall, %.2f ms/job CPU\n", name, runs,
              jobs, Median(wall), Median(cpu));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  int jobs = 200, runs = 5;
  std::string binary = CONVEYOR_BINARY, which = "all";
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--jobs")
      jobs = std::atoi(argv[i + 1]);
    else if (flag == "--runs")
      runs = std::atoi(argv[i + 1]);
    else if (flag == "--binary")
      binary = argv[i + 1];
    else if (flag == "--path")
      which = argv[i + 1];
    else {
      std::fprintf(stderr,
                   "usage: sandbox_cost [--jobs N] [--runs R] [--binary PATH] "
                   "[--path spawn|fork|lean|all]\n");
      return 2;
    }
  }
  if (jobs < 1 || runs < 1) return 2;
  char dir_template[] = "/tmp/sandbox-cost-XXXXXX";
  if (mkdtemp(dir_template) == nullptr) return 1;
  const std::string path = std::string(dir_template) + "/notes.txt";
  {
    std::ofstream out(path);
    for (int i = 0; i < 12; ++i) {
      out << "Conveyor stores uploaded files and processes them in a worker. The worker extracts "
             "text, writes a short summary and keeps chunks as searchable memory.\n\n";
    }
  }
  SandboxSettings settings;
  settings.binary_path = binary;
  int rc = 0;
  if (which == "spawn" || which == "all") {
    settings.fork_server = false;
    rc |= Bench("spawn", settings, path, jobs, runs);
  }
  if (which == "fork" || which == "all") {
    settings.fork_server = true;
    rc |= Bench("fork", settings, path, jobs, runs);
  }
  if (which == "lean" || which == "all") {
    settings.fork_server = true;
    settings.lean_binary_path = conveyor::worker::LeanExtractorBeside(binary);
    if (settings.lean_binary_path.empty()) {
      std::fprintf(stderr, "lean: no conveyor-extract beside %s\n", binary.c_str());
      rc |= 1;
    } else {
      rc |= Bench("lean", settings, path, jobs, runs);
    }
  }
  std::remove(path.c_str());
  rmdir(dir_template);
  return rc;
}
