// File: tests/support/test_support.h
//
// Real components for tests: free loopback ports, temp dirs, child processes
// and a real redis-server started on a free port and stopped afterwards.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <string>
#include <vector>

namespace conveyor::testing {

// A TCP port on 127.0.0.1 that was free a moment ago.
int FreePort();

// A fresh directory under $TMPDIR, removed with its contents on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// A child process. Output goes to `log_path` (stdout and stderr).
class Process {
 public:
  Process() = default;
  // Starts argv[0] (searched in PATH) with the current environment plus `env`.
  Process(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
          const std::string& log_path);
  ~Process();  // SIGKILLs and reaps if still running
  Process(Process&&) noexcept;
  Process& operator=(Process&&) noexcept;

  pid_t pid() const { return pid_; }
  bool running();
  void Signal(int sig);
  // Waits for exit up to `timeout`; returns the exit status (as from waitpid)
  // or -1 on timeout.
  int Wait(std::chrono::milliseconds timeout);
  // SIGTERM, wait up to 10 s, then SIGKILL.
  void Stop();
  void Kill();  // SIGKILL and reap
  std::string Log() const;

 private:
  pid_t pid_ = -1;
  std::string log_path_;
};

// Blocks until a TCP connect to 127.0.0.1:port succeeds or `timeout` passes.
bool WaitForPort(int port, std::chrono::milliseconds timeout);

void WaitBrief();  // ~5 ms

// Polls `pred` every few ms until it is true or `timeout` passes.
template <class Pred>
bool Eventually(Pred pred, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    WaitBrief();
  }
  return pred();
}

// A real redis-server on a free port with AOF on (appendfsync everysec),
// its files in a temp dir.
class RedisServer {
 public:
  RedisServer();
  ~RedisServer();
  int port() const { return port_; }
  const std::string& dir() const { return dir_.path(); }
  void Start();    // (re)start on the same port and dir
  void Stop();     // SHUTDOWN-like: SIGTERM and wait
  void Kill();     // SIGKILL (AOF keeps what was fsynced)
  // Runs redis-cli with `args` against this server and returns its stdout.
  std::string Cli(const std::vector<std::string>& args) const;

 private:
  TempDir dir_;
  int port_;
  Process proc_;
};

// A real PostgreSQL server on a free port, its cluster in a temp dir:
// initdb (-A trust, superuser "conveyor", UTF8, C locale) and `postgres`
// listening on 127.0.0.1 with fsync off. The binaries come from
// $CONVEYOR_PG_BINDIR, else `pg_config --bindir`, else
// /usr/lib/postgresql/<n>/bin. initdb and postgres refuse to run as root: as
// root they run as the "postgres" user, which then owns the temp dir.
class PostgresServer {
 public:
  PostgresServer();   // initdb + Start(); throws std::runtime_error on failure
  ~PostgresServer();  // Stop()
  PostgresServer(const PostgresServer&) = delete;
  PostgresServer& operator=(const PostgresServer&) = delete;
  int port() const { return port_; }
  const std::string& dir() const { return dir_.path(); }
  void Start();  // (re)start on the same port and cluster; waits until ready
  void Stop();   // fast shutdown (SIGINT: clients are disconnected), SIGKILL after 10 s
  // "postgres://conveyor@127.0.0.1:<port>/<db>".
  std::string Url(const std::string& db = "postgres") const;
  // Creates database `name` (a plain identifier) and returns its Url().
  std::string CreateDatabase(const std::string& name);
  // Runs psql -c `sql` against `db`; its stdout.
  std::string Psql(const std::string& sql, const std::string& db = "postgres") const;
  std::string Log() const;

 private:
  TempDir dir_;
  std::string bindir_;
  int port_;
  pid_t pid_ = -1;
};

// Runs a command and returns its stdout (stderr goes to the test log).
std::string RunCapture(const std::vector<std::string>& argv, int* exit_status = nullptr);

// Path of the built `conveyor` binary (set by CMake).
std::string ConveyorBinary();

}  // namespace conveyor::testing
