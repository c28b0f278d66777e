#include "test_support.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace conveyor::testing {

int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    throw std::runtime_error("bind failed");
  }
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/conveyor-test-XXXXXX";
  if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

Process::Process(const std::vector<std::string>& argv,
                 const std::map<std::string, std::string>& env, const std::string& log_path)
    : log_path_(log_path) {
  std::map<std::string, std::string> merged;
  for (char** e = environ; *e; ++e) {
    std::string kv(*e);
    auto eq = kv.find('=');
    if (eq != std::string::npos) merged[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  for (const auto& [k, v] : env) merged[k] = v;
  std::vector<std::string> envs;
  for (const auto& [k, v] : merged) envs.push_back(k + "=" + v);
  std::vector<char*> cargv, cenv;
  for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  for (const auto& e : envs) cenv.push_back(const_cast<char*>(e.c_str()));
  cenv.push_back(nullptr);

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  int rc = posix_spawnp(&pid_, cargv[0], &fa, nullptr, cargv.data(), cenv.data());
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) throw std::runtime_error("spawn " + argv[0] + ": " + std::strerror(rc));
}

Process::~Process() {
  if (pid_ > 0) Kill();
}

Process::Process(Process&& o) noexcept : pid_(o.pid_), log_path_(std::move(o.log_path_)) {
  o.pid_ = -1;
}

Process& Process::operator=(Process&& o) noexcept {
  if (this != &o) {
    if (pid_ > 0) Kill();
    pid_ = o.pid_;
    log_path_ = std::move(o.log_path_);
    o.pid_ = -1;
  }
  return *this;
}

bool Process::running() {
  if (pid_ <= 0) return false;
  int st = 0;
  pid_t r = ::waitpid(pid_, &st, WNOHANG);
  if (r == pid_) {
    pid_ = -1;
    return false;
  }
  return true;
}

void Process::Signal(int sig) {
  if (pid_ > 0) ::kill(pid_, sig);
}

int Process::Wait(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return 0;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int st = 0;
    pid_t r = ::waitpid(pid_, &st, WNOHANG);
    if (r == pid_) {
      pid_ = -1;
      return st;
    }
    if (std::chrono::steady_clock::now() >= deadline) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

void Process::Stop() {
  if (pid_ <= 0) return;
  Signal(SIGTERM);
  if (Wait(std::chrono::seconds(10)) == -1) Kill();
}

void Process::Kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int st = 0;
  ::waitpid(pid_, &st, 0);
  pid_ = -1;
}

std::string Process::Log() const {
  std::ifstream in(log_path_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool WaitForPort(int port, std::chrono::milliseconds timeout) {
  return Eventually(
      [&] {
        int fd = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = htons(static_cast<uint16_t>(port));
        bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
        ::close(fd);
        return ok;
      },
      timeout);
}

void WaitBrief() { std::this_thread::sleep_for(std::chrono::milliseconds(5)); }

RedisServer::RedisServer() : port_(FreePort()) { Start(); }

RedisServer::~RedisServer() { proc_.Kill(); }

void RedisServer::Start() {
  proc_ = Process({"redis-server", "--port", std::to_string(port_), "--bind", "127.0.0.1",
                   "--dir", dir_.path(), "--appendonly", "yes", "--appendfsync", "everysec",
                   "--save", "", "--daemonize", "no"},
                  {}, dir_.path() + "/redis.log");
  // Ready when PING answers (a listening socket may precede AOF loading).
  bool ok = Eventually(
      [&] {
        int st = 0;
        std::string out = RunCapture({"redis-cli", "-p", std::to_string(port_), "PING"}, &st);
        return out.rfind("PONG", 0) == 0;
      },
      std::chrono::seconds(20));
  if (!ok) throw std::runtime_error("redis-server did not start: " + proc_.Log());
}

void RedisServer::Stop() { proc_.Stop(); }

void RedisServer::Kill() { proc_.Kill(); }

std::string RedisServer::Cli(const std::vector<std::string>& args) const {
  std::vector<std::string> argv = {"redis-cli", "-p", std::to_string(port_)};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCapture(argv);
}

namespace {

// The directory holding initdb/postgres/pg_isready/psql.
std::string PostgresBindir() {
  if (const char* p = std::getenv("CONVEYOR_PG_BINDIR"); p != nullptr && *p != '\0') return p;
  int st = 0;
  std::string out = RunCapture({"pg_config", "--bindir"}, &st);
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  if (st == 0 && std::filesystem::exists(out + "/initdb")) return out;
  std::string best;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/usr/lib/postgresql", ec)) {
    std::string bin = e.path().string() + "/bin";
    if (std::filesystem::exists(bin + "/initdb") && bin > best) best = bin;
  }
  if (best.empty()) throw std::runtime_error("PostgreSQL server binaries not found");
  return best;
}

// Starts argv (absolute path) with output appended to `log`; as root, as the
// "postgres" user (fork + setgid/setuid, so the pid is the program's own).
pid_t SpawnAsPostgres(const std::vector<std::string>& argv, const std::string& log) {
  uid_t uid = 0;
  gid_t gid = 0;
  bool drop = ::geteuid() == 0;
  if (drop) {
    passwd* pw = ::getpwnam("postgres");
    if (pw == nullptr) throw std::runtime_error("running as root and no \"postgres\" user exists");
    uid = pw->pw_uid;
    gid = pw->pw_gid;
  }
  std::vector<char*> cargv;
  for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error("open " + log);
  if (drop && ::fchown(fd, uid, gid) != 0) {
    ::close(fd);
    throw std::runtime_error("chown " + log);
  }
  pid_t pid = ::fork();
  if (pid == 0) {
    // Only async-signal-safe calls from here on.
    int in = ::open("/dev/null", O_RDONLY);
    if (in >= 0) ::dup2(in, 0);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    if (drop && (::setgroups(0, nullptr) != 0 || ::setgid(gid) != 0 || ::setuid(uid) != 0)) {
      ::_exit(126);
    }
    ::execv(cargv[0], cargv.data());
    ::_exit(127);
  }
  ::close(fd);
  if (pid < 0) throw std::runtime_error("fork failed");
  return pid;
}

}  // namespace

PostgresServer::PostgresServer() : bindir_(PostgresBindir()), port_(FreePort()) {
  if (::geteuid() == 0) {
    passwd* pw = ::getpwnam("postgres");
    if (pw == nullptr || ::chown(dir_.path().c_str(), pw->pw_uid, pw->pw_gid) != 0) {
      throw std::runtime_error("cannot hand " + dir_.path() + " to the postgres user");
    }
  }
  pid_t pid = SpawnAsPostgres({bindir_ + "/initdb", "-D", dir_ / "data", "-A", "trust", "-U",
                               "conveyor", "-E", "UTF8", "--locale=C", "--no-sync"},
                              dir_ / "initdb.log");
  int st = 0;
  ::waitpid(pid, &st, 0);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    std::ifstream in(dir_ / "initdb.log");
    std::stringstream ss;
    ss << in.rdbuf();
    throw std::runtime_error("initdb failed: " + ss.str());
  }
  Start();
}

PostgresServer::~PostgresServer() { Stop(); }

void PostgresServer::Start() {
  if (pid_ > 0) return;
  pid_ = SpawnAsPostgres({bindir_ + "/postgres", "-D", dir_ / "data", "-p", std::to_string(port_),
                          "-k", dir_.path(), "-c", "listen_addresses=127.0.0.1", "-c",
                          "fsync=off", "-c", "full_page_writes=off", "-c",
                          "synchronous_commit=off"},
                         dir_ / "postgres.log");
  bool ok = Eventually(
      [&] {
        int st = 0;
        pid_t r = ::waitpid(pid_, &st, WNOHANG);
        if (r == pid_) {
          pid_ = -1;
          return true;  // exited: reported below
        }
        RunCapture({bindir_ + "/pg_isready", "-q", "-h", "127.0.0.1", "-p", std::to_string(port_),
                    "-U", "conveyor"},
                   &st);
        return WIFEXITED(st) && WEXITSTATUS(st) == 0;
      },
      std::chrono::seconds(30));
  if (!ok || pid_ < 0) throw std::runtime_error("postgres did not start: " + Log());
}

void PostgresServer::Stop() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGINT);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  int st = 0;
  while (::waitpid(pid_, &st, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() >= deadline) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &st, 0);
      break;
    }
    WaitBrief();
  }
  pid_ = -1;
}

std::string PostgresServer::Url(const std::string& db) const {
  return "postgres://conveyor@127.0.0.1:" + std::to_string(port_) + "/" + db;
}

std::string PostgresServer::Psql(const std::string& sql, const std::string& db) const {
  int st = 0;
  std::string out = RunCapture({bindir_ + "/psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                                "-h", "127.0.0.1", "-p", std::to_string(port_), "-U", "conveyor",
                                "-d", db, "-c", sql},
                               &st);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) throw std::runtime_error("psql failed: " + sql);
  return out;
}

std::string PostgresServer::CreateDatabase(const std::string& name) {
  Psql("CREATE DATABASE " + name);
  return Url(name);
}

std::string PostgresServer::Log() const {
  std::ifstream in(dir_ / "postgres.log");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string RunCapture(const std::vector<std::string>& argv, int* exit_status) {
  int pipefd[2];
  if (::pipe(pipefd) != 0) throw std::runtime_error("pipe");
  std::vector<char*> cargv;
  for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
  posix_spawn_file_actions_addclose(&fa, pipefd[0]);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  pid_t pid = -1;
  int rc = posix_spawnp(&pid, cargv[0], &fa, nullptr, cargv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  ::close(pipefd[1]);
  std::string out;
  if (rc == 0) {
    char buf[4096];
    ssize_t n;
    while ((n = ::read(pipefd[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  }
  ::close(pipefd[0]);
  int st = -1;
  if (rc == 0) ::waitpid(pid, &st, 0);
  if (exit_status) *exit_status = st;
  return out;
}

std::string ConveyorBinary() {
  if (const char* p = std::getenv("CONVEYOR_BINARY")) return p;
  return CONVEYOR_BINARY_PATH;
}

}  // namespace conveyor::testing
