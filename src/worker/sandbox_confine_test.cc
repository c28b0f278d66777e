// Each confinement layer (confine.h) against a child that tries to escape:
// sandbox_probe confines itself as the extract child does, then attempts one
// thing. Every escape is first shown to work unconfined (so a test that
// passes proves the layer, not a broken probe), then refused confined, by
// all layers together and by the one layer that must refuse it on its own.
// Each runs twice: with the probe started as a new process (the spawn path)
// and forked by an extract server (sandbox_probe --fork-server, the fork
// path: the same server loop and child set-up as `conveyor extract-server`).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "test_support.h"
#include "core/fd.h"
#include "worker/confine.h"
#include "worker/fork_server.h"
#include "worker/sandbox.h"

namespace conveyor::worker {
namespace {

using conveyor::testing::RunCapture;
using conveyor::testing::TempDir;

std::string ProbeBinary() { return CONVEYOR_SANDBOX_PROBE; }

// The probe's extract server, shared by every fork-path run (it dies with
// this process).
sandbox::ForkServer& ProbeServer() {
  static auto* server = new sandbox::ForkServer({ProbeBinary(), "--fork-server"},
                                                {"PATH=/usr/bin:/bin", "OMP_THREAD_LIMIT=1"});
  return *server;
}

// The probe's output when forked by ProbeServer() with `words` on `input`.
std::string ForkProbe(const std::vector<std::string>& words, const std::string& input) {
  sandbox::SpawnRequest request;
  request.limits.cpu_seconds = 10;
  request.limits.memory_mb = 512;
  request.env = {"PATH=/usr/bin:/bin"};
  request.args = words;
  UniqueFd in(::open(input.c_str(), O_RDONLY | O_CLOEXEC));
  UniqueFd null(::open("/dev/null", O_RDWR | O_CLOEXEC));
  int out[2];
  if (!in.valid() || !null.valid() || pipe2(out, O_CLOEXEC) != 0) return "test: cannot open";
  UniqueFd out_r(out[0]), out_w(out[1]);
  auto child = ProbeServer().Spawn(request, {null.get(), out_w.get(), null.get(), in.get()});
  if (!child) return "test: " + child.status().ToString();
  out_w.reset();
  std::string text;
  char buf[4096];
  for (ssize_t n; (n = read(out_r.get(), buf, sizeof buf)) > 0;) text.append(buf, static_cast<size_t>(n));
  EXPECT_TRUE((*child)->Wait(std::chrono::steady_clock::now() + std::chrono::seconds(20)));
  return text;
}

// The parameter: forked by an extract server (true) or spawned (false).
class SandboxConfine : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    // The worker's side: secrets in its environment, non-dumpable.
    setenv("JWT_SECRET", "probe-secret", 1);
    ASSERT_TRUE(sandbox::ProtectWorkerProcess());
    // A data directory laid out as the service lays it out: the database
    // 0600 in a 0700 directory, uploads 0600 in a 0700 directory; plus a
    // world-readable file in a world-readable directory, which only
    // Landlock keeps from the child.
    ::chmod(dir_.path().c_str(), 0755);
    std::filesystem::create_directories(dir_ / "data/uploads");
    ::chmod((dir_ / "data").c_str(), 0700);
    ::chmod((dir_ / "data/uploads").c_str(), 0700);
    Write(db_, "SQLite format 3 secret rows", 0600);
    Write(other_upload_, "another user's pending upload", 0600);
    Write(input_, "the job's own input", 0600);
    Write(public_, "world-readable, outside the sandbox's view", 0644);
  }

  static void Write(const std::string& path, const std::string& content, mode_t mode) {
    std::ofstream(path, std::ios::binary) << content;
    ::chmod(path.c_str(), mode);
  }

  // The probe's verdict line ("allowed" / "refused: ...").
  std::string Probe(const std::vector<std::string>& flags, const std::string& action,
                    const std::string& arg = "") {
    std::vector<std::string> words = flags;
    words.push_back(action);
    if (!arg.empty()) words.push_back(arg);
    std::string out;
    if (GetParam()) {
      out = ForkProbe(words, input_);
    } else {
      std::vector<std::string> argv = {ProbeBinary(), "--input", input_};
      argv.insert(argv.end(), words.begin(), words.end());
      out = RunCapture(argv);
    }
    while (!out.empty() && out.back() == '\n') out.pop_back();
    return out;
  }
  static std::vector<std::string> Only(const std::string& layer) {
    std::string skip;
    for (const char* name : sandbox::kLayerNames) {
      if (layer == name) continue;
      if (!skip.empty()) skip += '+';
      skip += name;
    }
    return {"--skip", skip};
  }

  // `action` works unconfined and is refused by every layer together, and
  // by `layer` alone (when this host has it).
  void ExpectRefused(const std::string& action, const std::string& arg, const std::string& layer) {
    EXPECT_EQ(Probe({"--no-confine"}, action, arg), "allowed") << action << " " << arg;
    EXPECT_TRUE(Probe({}, action, arg).starts_with("refused")) << action << " " << arg;
    if (!Have(layer)) return;
    EXPECT_TRUE(Probe(Only(layer), action, arg).starts_with("refused"))
        << action << " " << arg << " with only " << layer;
  }

  bool Have(const std::string& layer) {
    if (layers_.empty()) layers_ = Probe({}, "layers");
    return sandbox::ParseLayers(layers_).Has(layer);
  }

  static bool Root() { return geteuid() == 0; }

  TempDir dir_;
  std::string db_ = dir_ / "data/conveyor.db";
  std::string other_upload_ = dir_ / "data/uploads/8c1d3f0e-1111-4222-8333-944445555666";
  std::string input_ = dir_ / "data/uploads/0b6f6a3c-aaaa-4bbb-8ccc-dddddddddddd";
  std::string public_ = dir_ / "public.txt";
  std::string layers_;
};

TEST_P(SandboxConfine, ThisHostGrantsTheLayersItShould) {
  std::string layers = Probe({}, "layers");
  std::printf("sandbox layers on this host: %s\n", layers.c_str());
  EXPECT_TRUE(sandbox::ParseLayers(layers).seccomp) << layers;
  if (Root()) {
    EXPECT_TRUE(sandbox::ParseLayers(layers).uid) << layers;
    EXPECT_EQ(Probe({}, "uid"), "65534");
  }
}

TEST_P(SandboxConfine, ChildStillReadsItsInputAndLibrariesAndStartsThreads) {
  EXPECT_EQ(Probe({}, "read-input"), "allowed");
  EXPECT_EQ(Probe({}, "read", "/usr/lib/os-release"), "allowed");
  EXPECT_EQ(Probe({}, "thread"), "allowed");
}

TEST_P(SandboxConfine, CannotReadTheDatabaseOrAnotherUpload) {
  if (!Root()) GTEST_SKIP() << "the unconfined baseline needs root (tests and CI run as root)";
  ExpectRefused("read", db_, "uid");
  ExpectRefused("read", db_, "landlock");
  ExpectRefused("read", other_upload_, "uid");
  ExpectRefused("read", other_upload_, "landlock");
}

TEST_P(SandboxConfine, CannotReadFilesOutsideItsViewEvenWorldReadableOnes) {
  ExpectRefused("read", public_, "landlock");
  ExpectRefused("read", "/etc/hostname", "landlock");
}

TEST_P(SandboxConfine, CannotWriteOrTruncateAnything) {
  if (!Root()) GTEST_SKIP() << "the unconfined baseline needs root";
  ExpectRefused("write", dir_ / "data/uploads/dropped", "uid");
  ExpectRefused("write", dir_ / "data/uploads/dropped2", "landlock");
  ExpectRefused("write", dir_ / "dropped3", "landlock");
  ExpectRefused("write", dir_ / "dropped4", "seccomp");
  // (The unconfined baselines truncate their target: scratch copies.)
  Write(dir_ / "data/scratch.db", "x", 0600);
  Write(dir_ / "scratch.txt", "x", 0644);
  ExpectRefused("truncate", dir_ / "data/scratch.db", "uid");
  ExpectRefused("truncate", dir_ / "scratch.txt", "landlock");
  // The database itself, against the whole sandbox and each layer alone.
  EXPECT_TRUE(Probe({}, "truncate", db_).starts_with("refused"));
  EXPECT_TRUE(Probe(Only("uid"), "truncate", db_).starts_with("refused"));
  EXPECT_TRUE(Probe(Only("landlock"), "truncate", db_).starts_with("refused"));
  EXPECT_TRUE(Probe({}, "write", db_).starts_with("refused"));
  std::ifstream db(db_);
  std::string content((std::istreambuf_iterator<char>(db)), std::istreambuf_iterator<char>());
  EXPECT_EQ(content, "SQLite format 3 secret rows");
}

TEST_P(SandboxConfine, CannotReadTheWorkersEnvironment) {
  if (!Root()) GTEST_SKIP() << "the unconfined baseline needs root";
  const std::string me = std::to_string(getpid());
  ExpectRefused("environ", me, "uid");
  ExpectRefused("environ", me, "landlock");
}

TEST_P(SandboxConfine, CannotStartProcessesOrExec) {
  ExpectRefused("fork", "", "seccomp");
  EXPECT_TRUE(Probe({}, "exec").starts_with("refused"));
  EXPECT_TRUE(Probe(Only("seccomp"), "exec").starts_with("refused"));
}

TEST_P(SandboxConfine, CannotTraceOrSignalTheWorker) {
  if (!Root()) GTEST_SKIP() << "the unconfined baseline needs root";
  const std::string me = std::to_string(getpid());
  ExpectRefused("kill", me, "uid");
  ExpectRefused("kill", me, "seccomp");
  // Tracing: no unconfined baseline (attaching to the test itself is no
  // test), only the refusals.
  EXPECT_TRUE(Probe({}, "ptrace", me).starts_with("refused"));
  EXPECT_TRUE(Probe(Only("seccomp"), "ptrace", me).starts_with("refused"));
  EXPECT_TRUE(Probe(Only("uid"), "ptrace", me).starts_with("refused"));
}

// Its own pid is the one seccomp lets it signal: on the fork path the
// program comes from the server's template with the child's pid put in.
TEST_P(SandboxConfine, MaySignalItself) {
  EXPECT_EQ(Probe({}, "kill-self"), "allowed");
  EXPECT_EQ(Probe(Only("seccomp"), "kill-self"), "allowed");
}

TEST_P(SandboxConfine, HasNoSocketsAndNoIoUring) {
  ExpectRefused("socket-inet", "", "seccomp");
  ExpectRefused("socket-unix", "", "seccomp");
  ExpectRefused("io-uring", "", "seccomp");
}

TEST_P(SandboxConfine, ChildHasNoDescriptorButItsFour) {
  EXPECT_EQ(Probe({}, "fds"), "0 1 2 3");
  // The fork path closes the server's own (its control socket, other jobs'
  // status pipes) before the child's code runs, confined or not.
  if (GetParam()) {
    EXPECT_EQ(Probe({"--no-confine"}, "fds"), "0 1 2 3");
  }
}

TEST_P(SandboxConfine, CannotReadTheServersEnvironmentOrSignalIt) {
  if (!GetParam()) GTEST_SKIP() << "the fork path's server only";
  if (!Root()) GTEST_SKIP() << "the unconfined baseline needs root";
  ASSERT_EQ(Probe({}, "read-input"), "allowed");  // the server is running
  const pid_t server = ProbeServer().server_pid();
  ASSERT_GT(server, 0);
  const std::string pid = std::to_string(server);
  ExpectRefused("environ", pid, "uid");
  ExpectRefused("environ", pid, "landlock");
  ExpectRefused("kill", pid, "uid");
  ExpectRefused("kill", pid, "seccomp");
  EXPECT_TRUE(Probe({}, "ptrace", pid).starts_with("refused"));
}

INSTANTIATE_TEST_SUITE_P(Paths, SandboxConfine, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "ForkServer" : "Spawn";
                         });

// The template PrepareConfinement compiles, filled in with a pid, is
// instruction for instruction what libseccomp compiles for that pid.
TEST(SeccompTemplate, FilledInIsWhatLibseccompCompilesForThatPid) {
  sandbox::PrepareConfinement();
  sandbox::ReleasePreparedConfinement();
  for (pid_t pid :
       {pid_t{1}, pid_t{2}, pid_t{300}, pid_t{65535}, pid_t{65536}, pid_t{4194303}, getpid()}) {
    std::vector<sock_filter> made = sandbox::SeccompProgram(pid);
    ASSERT_FALSE(made.empty()) << pid;
    EXPECT_TRUE(sandbox::SameProgram(sandbox::SeccompProgramFromTemplate(pid), made)) << pid;
  }
  // Two pids give two programs: the pid is in it.
  EXPECT_FALSE(sandbox::SameProgram(sandbox::SeccompProgram(2), sandbox::SeccompProgram(3)));
}

TEST(SandboxLayers, RequirementsParseAndMissingLayersAreNamed) {
  EXPECT_EQ(*sandbox::ParseRequirement("none"), "");
  EXPECT_EQ(*sandbox::ParseRequirement("all"), "uid+landlock+seccomp+netns");
  EXPECT_EQ(*sandbox::ParseRequirement("seccomp, landlock"), "landlock+seccomp");
  EXPECT_FALSE(sandbox::ParseRequirement("selinux"));
  sandbox::Layers have = sandbox::ParseLayers("uid+seccomp");
  EXPECT_EQ(sandbox::MissingLayers(have, "uid+landlock+seccomp"), "landlock");
  EXPECT_EQ(sandbox::MissingLayers(have, "uid"), "");
  EXPECT_EQ(sandbox::ParseLayers("none").ToString(), "none");
}

TEST(SandboxLayers, ProbeReportsWhatTheExtractChildGets) {
  for (bool fork_server : {false, true}) {
    SandboxSettings s;
    s.binary_path = conveyor::testing::ConveyorBinary();
    s.fork_server = fork_server;
    auto layers = ProbeSandbox(s);
    ASSERT_TRUE(layers) << layers.status().ToString();
    EXPECT_TRUE(layers->seccomp) << "fork_server=" << fork_server;
    if (geteuid() == 0) {
      EXPECT_TRUE(layers->uid) << "fork_server=" << fork_server;
    }
  }
}

TEST(SandboxLayers, ARequiredLayerTheChildLacksRefusesTheJob) {
  conveyor::testing::TempDir dir;
  std::string path = dir / "a.txt";
  std::ofstream(path) << "Some text to read.\n";
  for (bool fork_server : {false, true}) {
    SandboxSettings s;
    s.binary_path = conveyor::testing::ConveyorBinary();
    s.fork_server = fork_server;
    s.uid = -1;  // stays root: no uid layer
    s.require = "uid";
    auto r = RunSandboxed(s, {path, "a.txt", ""}, {}, nullptr);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.code(), Errc::kUnavailable);
    EXPECT_NE(r.status().message().find("uid"), std::string::npos) << r.status().message();
  }
}

}  // namespace
}  // namespace conveyor::worker
