// child_rss PID [INTERVAL_MS]: samples the extract children of process PID
// (the worker: its `conveyor extract` children, or the children of its
// `conveyor extract-server`, whose own memory is not counted) every
// INTERVAL_MS (default 20) until PID exits or this process gets
// SIGTERM/SIGINT, then prints
//
//   children=K samples=S max_child_hwm_kb=H max_child_rss_kb=R
//
// K distinct child pids seen; H the largest VmHWM (a child's peak RSS so far)
// read from any of them; R the largest VmRSS. A child that lives less than
// one interval may be missed. Used by bench/processing.sh.
#include <dirent.h>
#include <signal.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

volatile std::sig_atomic_t g_stop = 0;
void OnSignal(int) { g_stop = 1; }

// Children of `pid`, from /proc/PID/task/*/children (every thread's).
std::vector<pid_t> Children(pid_t pid) {
  std::vector<pid_t> out;
  std::string task_dir = "/proc/" + std::to_string(pid) + "/task";
  DIR* d = opendir(task_dir.c_str());
  if (d == nullptr) return out;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    std::ifstream in(task_dir + "/" + e->d_name + "/children");
    pid_t c;
    while (in >> c) out.push_back(c);
  }
  closedir(d);
  return out;
}

// VmHWM and VmRSS of `pid` in kB (0 when gone).
std::pair<long, long> Memory(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  long hwm = 0, rss = 0;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string key;
    long kb = 0;
    ls >> key >> kb;
    if (key == "VmHWM:") hwm = kb;
    if (key == "VmRSS:") rss = kb;
  }
  return {hwm, rss};
}

// True when `pid` is an extract server (`<binary> extract-server`).
bool IsExtractServer(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline");
  std::string cmdline((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return cmdline.find(std::string("\0extract-server", 15)) != std::string::npos;
}

// The extract children of `pid`: its children, with an extract server
// replaced by the server's children.
std::vector<pid_t> ExtractChildren(pid_t pid) {
  std::vector<pid_t> out;
  for (pid_t c : Children(pid)) {
    if (!IsExtractServer(c)) {
      out.push_back(c);
      continue;
    }
    for (pid_t g : Children(c)) out.push_back(g);
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s PID [INTERVAL_MS]\n", argv[0]);
    return 2;
  }
  pid_t pid = static_cast<pid_t>(std::atol(argv[1]));
  int interval_ms = argc > 2 ? std::atoi(argv[2]) : 20;
  std::signal(SIGTERM, OnSignal);
  std::signal(SIGINT, OnSignal);
  std::set<pid_t> seen;
  long max_hwm = 0, max_rss = 0, samples = 0;
  while (!g_stop && kill(pid, 0) == 0) {
    for (pid_t c : ExtractChildren(pid)) {
      auto [hwm, rss] = Memory(c);
      if (hwm == 0 && rss == 0) continue;
      seen.insert(c);
      max_hwm = std::max(max_hwm, hwm);
      max_rss = std::max(max_rss, rss);
    }
    ++samples;
    std::this_thread::sleep_for(std::chrono::milliseconds(interval_ms));
  }
  std::printf("children=%zu samples=%ld max_child_hwm_kb=%ld max_child_rss_kb=%ld\n", seen.size(),
              samples, max_hwm, max_rss);
  return 0;
}
