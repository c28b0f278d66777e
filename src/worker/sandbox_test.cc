#include "worker/sandbox.h"

#include <dirent.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <thread>

#include "processing/test_files.h"
#include "test_support.h"
#include "worker/fork_server.h"
#include "worker/sandbox_protocol.h"

namespace conveyor::worker {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

// Generous bounds for "quickly": the point is that a fault never takes the
// full production limits (60 s), even on a loaded machine.
constexpr auto kQuick = std::chrono::seconds(15);

SandboxSettings TestSettings(const std::string& fault = "") {
  SandboxSettings s;
  s.binary_path = conveyor::testing::ConveyorBinary();
  s.timeout_ms = 20000;
  s.cpu_seconds = 10;
  s.memory_mb = 512;
  s.max_output_bytes = 8 << 20;
  if (!fault.empty()) s.extra_env.push_back("CONVEYOR_EXTRACT_TEST_FAULT=" + fault);
  return s;
}

std::string WriteFile(const conveyor::testing::TempDir& dir, const std::string& name,
                      const std::string& content) {
  std::string path = dir / name;
  std::ofstream(path, std::ios::binary) << content;
  return path;
}

const char kText[] =
    "Conveyor stores uploaded files and processes them in a worker.\n\n"
    "The worker extracts text, writes a short summary and keeps chunks as searchable memory. "
    "Parsers run in a sandboxed child process with CPU, memory and time limits. "
    "A broken file costs one job, never the worker.\n";

// Children of `pid`, running or zombie (every thread's, from /proc).
std::set<pid_t> ChildrenOf(pid_t pid) {
  std::set<pid_t> out;
  std::string task_dir = "/proc/" + std::to_string(pid) + "/task";
  DIR* d = opendir(task_dir.c_str());
  if (d == nullptr) return out;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    std::ifstream in(task_dir + "/" + e->d_name + "/children");
    for (pid_t c; in >> c;) out.insert(c);
  }
  closedir(d);
  return out;
}

// True when no extract child is left, running or zombie: this process has
// no child but the extract server, and the server has none.
bool NoChildrenLeft() {
  SettleSandboxChild();  // the calling thread's child that gave its result
  std::set<pid_t> mine = ChildrenOf(getpid());
  const pid_t server = ExtractServerPid(TestSettings().binary_path);
  if (server > 0) {
    mine.erase(server);
    if (!ChildrenOf(server).empty()) return false;
  }
  return mine.empty();
}

// Waits (on a pidfd, no polling) until `pid` has exited; false after 10 s.
bool AwaitExit(pid_t pid, int pidfd) {
  pollfd p{pidfd, POLLIN, 0};
  return poll(&p, 1, 10000) == 1 || kill(pid, 0) != 0;
}

// Kills the extract server of the test binary and waits until it is dead.
void KillExtractServer() {
  const pid_t server = ExtractServerPid(TestSettings().binary_path);
  if (server <= 0) return;
  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, server, 0));
  ASSERT_GE(pidfd, 0);
  ASSERT_EQ(kill(server, SIGKILL), 0);
  EXPECT_TRUE(AwaitExit(server, pidfd));
  close(pidfd);
}

// Every test of the child's behaviour runs on both ways of starting it
// (SandboxSettings::fork_server): spawned, and forked by the extract server.
class Sandbox : public ::testing::TestWithParam<bool> {
 protected:
  SandboxSettings Settings(const std::string& fault = "") const {
    SandboxSettings s = TestSettings(fault);
    s.fork_server = GetParam();
    return s;
  }
};

INSTANTIATE_TEST_SUITE_P(Paths, Sandbox, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "ForkServer" : "Spawn";
                         });

TEST_P(Sandbox, PlainTextRoundTripsLikeInProcessRun) {
  conveyor::testing::TempDir dir;
  processing::Input input{WriteFile(dir, "notes.txt", kText), "notes.txt", "what about limits?"};
  processing::Limits limits;
  limits.chunk_chars = 120;
  limits.chunk_overlap_chars = 20;
  std::vector<std::pair<std::string, int>> stages;
  auto got = RunSandboxed(Settings(), input, limits,
                          [&](const std::string& stage, int pct) { stages.emplace_back(stage, pct); });
  ASSERT_TRUE(got) << got.status().ToString();
  auto want = processing::Run(input, limits, nullptr);
  ASSERT_TRUE(want);
  EXPECT_EQ(got->kind, processing::FileKind::kText);
  EXPECT_EQ(got->text, want->text);
  EXPECT_EQ(got->summary, want->summary);
  EXPECT_EQ(got->words, want->words);
  EXPECT_EQ(got->chunks, want->chunks);
  EXPECT_GT(got->chunks.size(), 1u);
  ASSERT_FALSE(stages.empty());
  EXPECT_EQ(stages.front().first, "detect");
  EXPECT_EQ(stages.back().first, "chunk");
  EXPECT_TRUE(NoChildrenLeft());
}

TEST_P(Sandbox, NonUtf8TextSurvivesTheJsonTrip) {
  conveyor::testing::TempDir dir;
  // Latin-1 bytes are not UTF-8: whatever processing makes of them must come
  // back the same through the JSON wire format, or fail the same way.
  std::string content = "Caf\xE9 cr\xE8me. " + std::string(kText);
  processing::Input input{WriteFile(dir, "latin1.txt", content), "latin1.txt", ""};
  auto got = RunSandboxed(Settings(), input, {}, nullptr);
  auto want = processing::Run(input, {}, nullptr);
  ASSERT_EQ(got.ok(), want.ok());
  if (want) {
    EXPECT_EQ(got->text, want->text);
  } else {
    EXPECT_EQ(got.status().message(), want.status().message());
  }
}

TEST_P(Sandbox, ChildErrorsPassThroughWithTheirCode) {
  conveyor::testing::TempDir dir;
  std::string binary(4096, '\0');
  for (size_t i = 0; i < binary.size(); ++i) binary[i] = static_cast<char>(i * 7);
  auto bad = RunSandboxed(Settings(), {WriteFile(dir, "x.bin", binary), "x.bin", ""}, {}, nullptr);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.code(), Errc::kInvalidArgument);
  EXPECT_EQ(bad.status().message(), "Invalid file format");

  // A missing input: a public message, no path.
  auto missing = RunSandboxed(Settings(), {dir / "nope.txt", "nope.txt", ""}, {}, nullptr);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.code(), Errc::kFailedPrecondition);
  EXPECT_EQ(missing.status().message(), kInputMissingMessage);
}

// Runs `fault` and checks the outcome and that it came quickly.
void ExpectFault(SandboxSettings settings, Errc code, const std::string& message) {
  conveyor::testing::TempDir dir;
  processing::Input input{WriteFile(dir, "a.txt", kText), "a.txt", ""};
  auto start = Clock::now();
  auto r = RunSandboxed(settings, input, {}, nullptr);
  auto took = Clock::now() - start;
  ASSERT_FALSE(r);
  EXPECT_EQ(r.code(), code) << r.status().ToString();
  EXPECT_EQ(r.status().message(), message);
  EXPECT_LT(took, kQuick);
  EXPECT_TRUE(NoChildrenLeft());
}

TEST_P(Sandbox, CrashingParserFailsAsCrashed) {
  ExpectFault(Settings("crash"), Errc::kInvalidArgument, kParserCrashedMessage);
}

TEST_P(Sandbox, SpinningParserHitsTheCpuLimit) {
  auto s = Settings("spin");
  s.cpu_seconds = 1;
  s.timeout_ms = 60000;  // the CPU limit, not the wall clock, must end it
  auto start = Clock::now();
  ExpectFault(s, Errc::kDeadlineExceeded, kParseTooLongMessage);
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(10));
}

TEST_P(Sandbox, SpinningParserHitsTheWallClockTimeout) {
  auto s = Settings("spin");
  s.cpu_seconds = 600;
  s.timeout_ms = 700;
  auto start = Clock::now();
  ExpectFault(s, Errc::kDeadlineExceeded, kParseTooLongMessage);
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(5));
}

TEST_P(Sandbox, AllocatingParserHitsTheMemoryLimit) {
  auto s = Settings("alloc");
  s.memory_mb = 256;
  ExpectFault(s, Errc::kResourceExhausted, kParseTooMuchMemoryMessage);
}

TEST_P(Sandbox, FloodingParserHitsTheOutputCap) {
  auto s = Settings("flood");
  s.max_output_bytes = 1 << 20;
  ExpectFault(s, Errc::kResourceExhausted, kExtractedTooLargeMessage);
}

TEST_P(Sandbox, OutputCapAlsoBoundsARealResult) {
  conveyor::testing::TempDir dir;
  std::string big;
  while (big.size() < (256u << 10)) big += kText;
  auto s = Settings();
  s.max_output_bytes = 64 << 10;
  auto r = RunSandboxed(s, {WriteFile(dir, "big.txt", big), "big.txt", ""}, {}, nullptr);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.status().message(), kExtractedTooLargeMessage);
}

TEST_P(Sandbox, ParentKeepsWorkingAfterEachFault) {
  conveyor::testing::TempDir dir;
  processing::Input input{WriteFile(dir, "a.txt", kText), "a.txt", ""};
  for (const char* fault : {"crash", "spin", "alloc", "flood"}) {
    auto s = Settings(fault);
    s.cpu_seconds = 1;
    s.memory_mb = 256;
    s.max_output_bytes = 1 << 20;
    EXPECT_FALSE(RunSandboxed(s, input, {}, nullptr)) << fault;
    auto ok = RunSandboxed(Settings(), input, {}, nullptr);
    ASSERT_TRUE(ok) << "after " << fault << ": " << ok.status().ToString();
    EXPECT_NE(ok->text.find("sandboxed child process"), std::string::npos);
  }
  EXPECT_TRUE(NoChildrenLeft());
}

// A child that has answered is not waited for; one that then fails to exit
// is killed at its job's deadline by the next settle, and a thread never
// has more than one such child behind it.
TEST_P(Sandbox, AnsweredChildIsLeftToEndAndKilledAtItsDeadline) {
  conveyor::testing::TempDir dir;
  processing::Input input{WriteFile(dir, "a.txt", kText), "a.txt", ""};
  auto linger = Settings("linger");
  linger.timeout_ms = 1500;
  const auto start = Clock::now();
  auto r = RunSandboxed(linger, input, {}, nullptr);
  ASSERT_TRUE(r) << r.status().ToString();
  EXPECT_NE(r->text.find("sandboxed child process"), std::string::npos);
  EXPECT_LT(Clock::now() - start, milliseconds(1500)) << "waited for the child's end";
  const pid_t server = ExtractServerPid(linger.binary_path);
  auto extract_children = [&] {
    auto c = GetParam() && server > 0 ? ChildrenOf(server) : ChildrenOf(getpid());
    c.erase(server);
    return c;
  };
  auto alive = extract_children();
  ASSERT_EQ(alive.size(), 1u) << "the answered child should still be running";
  const pid_t first = *alive.begin();

  // The thread's next child settles the first one before it starts.
  auto next = RunSandboxed(Settings(), input, {}, nullptr);
  ASSERT_TRUE(next) << next.status().ToString();
  EXPECT_GE(Clock::now() - start, milliseconds(1500)) << "the first child was not awaited";
  alive = extract_children();
  EXPECT_EQ(alive.count(first), 0u) << "the lingering child was not killed";
  EXPECT_LE(alive.size(), 1u);
  EXPECT_TRUE(NoChildrenLeft());
}

TEST_P(Sandbox, ConcurrentChildrenDoNotDisturbEachOther) {
  conveyor::testing::TempDir dir;
  processing::Input input{WriteFile(dir, "a.txt", kText), "a.txt", ""};
  std::atomic<int> ok{0}, crashed{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 6; ++i) {
    threads.emplace_back([&, i] {
      auto r = RunSandboxed(Settings(i % 2 ? "crash" : ""), input, {}, nullptr);
      if (r) ok++;
      else if (r.status().message() == kParserCrashedMessage) crashed++;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 3);
  EXPECT_EQ(crashed.load(), 3);
  EXPECT_TRUE(NoChildrenLeft());
}

TEST_P(Sandbox, MissingBinaryIsAnInternalError) {
  conveyor::testing::TempDir dir;
  auto s = Settings();
  s.binary_path = dir / "no-such-conveyor";
  auto r = RunSandboxed(s, {WriteFile(dir, "a.txt", kText), "a.txt", ""}, {}, nullptr);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.code(), Errc::kInternal);
  EXPECT_TRUE(NoChildrenLeft());
}

// --- the extract server's own failure modes ---------------------------------

SandboxSettings ForkSettings(const std::string& fault = "") {
  SandboxSettings s = TestSettings(fault);
  s.fork_server = true;
  return s;
}

TEST(SandboxForkServer, ServerKilledBetweenJobsIsReplacedForTheNextJob) {
  conveyor::testing::TempDir dir;
  processing::Input input{WriteFile(dir, "a.txt", kText), "a.txt", ""};
  ASSERT_TRUE(RunSandboxed(ForkSettings(), input, {}, nullptr));
  const pid_t first = ExtractServerPid(ForkSettings().binary_path);
  ASSERT_GT(first, 0);
  KillExtractServer();
  auto r = RunSandboxed(ForkSettings(), input, {}, nullptr);
  ASSERT_TRUE(r) << r.status().ToString();
  EXPECT_NE(r->text.find("sandboxed child process"), std::string::npos);
  const pid_t second = ExtractServerPid(ForkSettings().binary_path);
  EXPECT_GT(second, 0);
  EXPECT_NE(second, first);
  EXPECT_TRUE(NoChildrenLeft());
}

TEST(SandboxForkServer, ServerKilledDuringAJobFailsItAsRetryableAndTakesTheChild) {
  conveyor::testing::TempDir dir;
  processing::Input input{WriteFile(dir, "a.txt", kText), "a.txt", ""};
  ASSERT_TRUE(RunSandboxed(ForkSettings(), input, {}, nullptr));
  SettleSandboxChild();  // so that the server's only child is the one below
  const pid_t server = ExtractServerPid(ForkSettings().binary_path);
  ASSERT_GT(server, 0);
  auto spin = ForkSettings("spin");
  spin.cpu_seconds = 600;
  spin.timeout_ms = 60000;
  std::optional<Result<processing::Output>> result;
  std::thread job([&] { result = RunSandboxed(spin, input, {}, nullptr); });
  // The spinning child, once forked (nothing to wait on but /proc).
  pid_t child = -1;
  for (auto until = Clock::now() + kQuick; child < 0 && Clock::now() < until;) {
    auto children = ChildrenOf(server);
    if (!children.empty()) child = *children.begin();
    else std::this_thread::sleep_for(milliseconds(5));
  }
  ASSERT_GT(child, 0);
  int child_fd = static_cast<int>(syscall(SYS_pidfd_open, child, 0));
  ASSERT_GE(child_fd, 0);
  auto start = Clock::now();
  ASSERT_EQ(kill(server, SIGKILL), 0);
  job.join();
  ASSERT_TRUE(result.has_value());
  ASSERT_FALSE(*result);
  EXPECT_EQ(result->code(), Errc::kUnavailable) << result->status().ToString();
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(5));
  EXPECT_TRUE(AwaitExit(child, child_fd)) << "the child outlived its server";
  close(child_fd);
  // The next job gets a new server.
  auto next = RunSandboxed(ForkSettings(), input, {}, nullptr);
  ASSERT_TRUE(next) << next.status().ToString();
  EXPECT_NE(ExtractServerPid(ForkSettings().binary_path), server);
  EXPECT_TRUE(NoChildrenLeft());
}

TEST(SandboxForkServer, ShutdownSignalsToTheServiceLeaveTheServerToTheWorker) {
  conveyor::testing::TempDir dir;
  processing::Input input{WriteFile(dir, "a.txt", kText), "a.txt", ""};
  ASSERT_TRUE(RunSandboxed(ForkSettings(), input, {}, nullptr));
  const pid_t server = ExtractServerPid(ForkSettings().binary_path);
  ASSERT_GT(server, 0);
  // An ignored signal is dropped when sent: no race with the next job.
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) ASSERT_EQ(kill(server, sig), 0);
  auto r = RunSandboxed(ForkSettings(), input, {}, nullptr);
  ASSERT_TRUE(r) << r.status().ToString();
  EXPECT_EQ(ExtractServerPid(ForkSettings().binary_path), server);
}

TEST(SandboxForkServer, ServerHoldsNoSecretsAndNoDescriptorButItsSocket) {
  // A worker with a secret in its environment starts a new server.
  setenv("JWT_SECRET", "fork-server-secret", 1);
  KillExtractServer();
  conveyor::testing::TempDir dir;
  processing::Input input{WriteFile(dir, "a.txt", kText), "a.txt", ""};
  auto r = RunSandboxed(ForkSettings(), input, {}, nullptr);
  unsetenv("JWT_SECRET");
  ASSERT_TRUE(r) << r.status().ToString();
  SettleSandboxChild();  // the child's status pipe leaves the server with it
  const pid_t server = ExtractServerPid(ForkSettings().binary_path);
  ASSERT_GT(server, 0);
  const std::string proc = "/proc/" + std::to_string(server);
  std::ifstream env_file(proc + "/environ");
  std::string env((std::istreambuf_iterator<char>(env_file)), std::istreambuf_iterator<char>());
  if (geteuid() == 0) {
    EXPECT_NE(env.find("OMP_THREAD_LIMIT=1"), std::string::npos) << "cannot read the environment";
  }
  EXPECT_EQ(env.find("JWT_SECRET"), std::string::npos);
  EXPECT_EQ(env.find("fork-server-secret"), std::string::npos);
  if (geteuid() != 0) GTEST_SKIP() << "the server's descriptors are readable by root only";
  std::map<int, std::string> fds;
  DIR* d = opendir((proc + "/fd").c_str());
  ASSERT_NE(d, nullptr);
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    char target[256] = {};
    ssize_t n = readlink((proc + "/fd/" + e->d_name).c_str(), target, sizeof target - 1);
    fds[std::atoi(e->d_name)] = n > 0 ? std::string(target, static_cast<size_t>(n)) : "?";
  }
  closedir(d);
  EXPECT_EQ(fds[0], "/dev/null");
  EXPECT_EQ(fds[1], "/dev/null");
  EXPECT_EQ(fds[2], "/dev/null");
  EXPECT_TRUE(fds[3].starts_with("socket:")) << fds[3];
  // Beyond them: its signalfd, and what it prepared for its children (a
  // Landlock ruleset; as root, the children's network namespace, while the
  // server itself stays in ours).
  char own_ns[64] = {}, server_ns[64] = {};
  ASSERT_GT(readlink("/proc/self/ns/net", own_ns, sizeof own_ns - 1), 0);
  ASSERT_GT(readlink((proc + "/ns/net").c_str(), server_ns, sizeof server_ns - 1), 0);
  EXPECT_STREQ(server_ns, own_ns);
  int rulesets = 0, namespaces = 0;
  for (const auto& [fd, target] : fds) {
    if (fd <= 3) continue;
    if (target == "anon_inode:[landlock-ruleset]") {
      ++rulesets;
    } else if (target.starts_with("net:")) {
      ++namespaces;
      EXPECT_NE(target, own_ns) << "the children's namespace is the host's";
    } else {
      EXPECT_EQ(target, "anon_inode:[signalfd]") << "descriptor " << fd;
    }
  }
  EXPECT_LE(rulesets, 1);
  EXPECT_EQ(namespaces, 1);
}

TEST(SandboxForkServer, SpawnRequestRoundTripsAndGarbageIsRefused) {
  sandbox::SpawnRequest r;
  r.limits.cpu_seconds = 7;
  r.limits.memory_mb = 300;
  r.limits.max_open_files = 32;
  r.limits.uid = -1;
  r.limits.require = "uid+seccomp";
  r.limits.skip = "netns";
  r.probe = true;
  r.env = {"PATH=/usr/bin", "EMPTY="};
  r.args = {"read", "", "/etc/hostname"};
  const std::string bytes = sandbox::EncodeSpawnRequest(r);
  auto back = sandbox::DecodeSpawnRequest(bytes);
  ASSERT_TRUE(back) << back.status().ToString();
  EXPECT_EQ(back->limits.cpu_seconds, 7);
  EXPECT_EQ(back->limits.memory_mb, 300);
  EXPECT_EQ(back->limits.max_open_files, 32);
  EXPECT_EQ(back->limits.uid, -1);
  EXPECT_EQ(back->limits.require, "uid+seccomp");
  EXPECT_EQ(back->limits.skip, "netns");
  EXPECT_TRUE(back->probe);
  EXPECT_EQ(back->env, r.env);
  EXPECT_EQ(back->args, r.args);
  // Every cut, a byte more, and an environment entry without '='.
  for (size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_FALSE(sandbox::DecodeSpawnRequest(bytes.substr(0, n))) << "cut at " << n;
  }
  EXPECT_FALSE(sandbox::DecodeSpawnRequest(bytes + "x"));
  r.env = {"NOEQUALS"};
  EXPECT_FALSE(sandbox::DecodeSpawnRequest(sandbox::EncodeSpawnRequest(r)));
  // A count that promises more entries than there are bytes.
  std::string lying = bytes;
  EXPECT_FALSE(sandbox::DecodeSpawnRequest(std::string(lying.size() + 10, '\xff')));
}

TEST(SandboxProtocol, ResultLineRoundTripsWithOverlappingChunks) {
  processing::Output out;
  out.kind = processing::FileKind::kMarkdown;
  out.text = "alpha beta gamma delta epsilon";
  out.summary = "Markdown, 5 words.";
  out.words = 5;
  out.chunks = {"alpha beta gamma", "gamma delta epsilon", "not in the text"};
  std::string line = sandbox::ResultLine(out, "seccomp");
  ASSERT_EQ(line.back(), '\n');
  line.pop_back();
  auto m = sandbox::DecodeLine(line);
  ASSERT_TRUE(m) << m.status().ToString();
  ASSERT_EQ(m->type, sandbox::Message::Type::kResult);
  EXPECT_EQ(m->isolation, "seccomp");
  EXPECT_EQ(m->output.kind, out.kind);
  EXPECT_EQ(m->output.text, out.text);
  EXPECT_EQ(m->output.summary, out.summary);
  EXPECT_EQ(m->output.words, out.words);
  EXPECT_EQ(m->output.chunks, out.chunks);
}

TEST(SandboxProtocol, ErrorAndProgressLinesRoundTrip) {
  std::string e = sandbox::ErrorLine(ResourceExhausted("too big"));
  e.pop_back();
  auto m = sandbox::DecodeLine(e);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->type, sandbox::Message::Type::kError);
  EXPECT_EQ(m->error.code(), Errc::kResourceExhausted);
  EXPECT_EQ(m->error.message(), "too big");
  std::string p = sandbox::ProgressLine("extract", 20);
  p.pop_back();
  m = sandbox::DecodeLine(p);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->type, sandbox::Message::Type::kProgress);
  EXPECT_EQ(m->stage, "extract");
  EXPECT_EQ(m->percent, 20);
}

TEST(SandboxProtocol, RejectsGarbageAndOutOfRangeChunks) {
  EXPECT_FALSE(sandbox::DecodeLine("not json"));
  EXPECT_FALSE(sandbox::DecodeLine("{\"something\":1}"));
  EXPECT_FALSE(sandbox::DecodeLine(R"({"result":{"text":"abc","chunks":[{"o":2,"n":5}]}})"));
  EXPECT_FALSE(sandbox::DecodeRequest("[]"));
  std::string encoded = sandbox::EncodeRequest({{"/secret/path", "n.txt", "m"}, {}});
  EXPECT_EQ(encoded.find("/secret/path"), std::string::npos) << "the child never learns the path";
  auto req = sandbox::DecodeRequest(encoded);
  ASSERT_TRUE(req);
  EXPECT_EQ(req->input.fd, sandbox::kInputFd);
  EXPECT_EQ(req->input.name_hint, "n.txt");
  EXPECT_EQ(req->input.message, "m");
}

// --- hostile child lines: the decoder trusts nothing --------------------------------

std::string ResultWith(const std::string& fields) {
  return R"({"isolation":"none","result":{"kind":"text","kindId":1,"text":"abcdef",)" + fields + "}}";
}

TEST(SandboxProtocol, RepeatedChunkReferencesCannotMultiplyMemory) {
  // 1 MiB of text referenced 100 times is 100 MiB decoded: over an 8 MiB cap.
  std::string text(1 << 20, 'a');
  std::string chunks;
  for (int i = 0; i < 100; ++i) chunks += std::string(i ? "," : "") + R"({"o":0,"n":1048576})";
  std::string line = R"({"isolation":"none","result":{"kind":"text","kindId":1,"text":")" + text +
                     R"(","chunks":[)" + chunks + "]}}";
  auto m = sandbox::DecodeLine(line, 8 << 20);
  ASSERT_FALSE(m);
  EXPECT_EQ(m.code(), Errc::kResourceExhausted);
  EXPECT_EQ(m.status().message(), kExtractedTooLargeMessage);
  // The same line within a budget that holds it decodes.
  EXPECT_TRUE(sandbox::DecodeLine(line, 200 << 20));
  // Inline chunks count too.
  std::string inline_chunks = R"({"isolation":"none","result":{"kind":"text","kindId":1,"text":"","chunks":[)";
  for (int i = 0; i < 20; ++i) inline_chunks += std::string(i ? "," : "") + R"({"t":")" + std::string(1000, 'x') + "\"}";
  EXPECT_FALSE(sandbox::DecodeLine(inline_chunks + "]}}", 10000));
}

TEST(SandboxProtocol, KindIdMustBeARealFormatNamedAsItSays) {
  EXPECT_TRUE(sandbox::DecodeLine(ResultWith(R"("words":1)")));
  for (const char* bad : {R"({"isolation":"none","result":{"kind":"text","kindId":999,"text":""}})",
                          R"({"isolation":"none","result":{"kind":"text","kindId":-1,"text":""}})",
                          R"({"isolation":"none","result":{"kind":"unknown","kindId":0,"text":""}})",
                          R"({"isolation":"none","result":{"kind":"pdf","kindId":1,"text":""}})",
                          R"({"isolation":"none","result":{"kind":"text","kindId":1.5,"text":""}})",
                          R"({"isolation":"none","result":{"kind":"text","text":""}})",
                          R"({"isolation":"none","result":{"kind":"text","kindId":"1","text":""}})"}) {
    EXPECT_FALSE(sandbox::DecodeLine(bad)) << bad;
  }
}

TEST(SandboxProtocol, EveryFieldIsChecked) {
  const char* bad[] = {
      // progress
      R"({"progress":{"stage":"extract","percent":101}})",
      R"({"progress":{"stage":"extract","percent":-1}})",
      R"({"progress":{"stage":"Extract; rm -rf","percent":5}})",
      R"({"progress":{"stage":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","percent":5}})",
      R"({"progress":{"stage":"extract"}})",
      R"({"progress":{"stage":"extract","percent":5,"extra":1}})",
      // error
      R"({"error":{"code":"ok","message":"fine"}})",
      R"({"error":{"code":"no_such_code","message":"x"}})",
      R"({"error":{"code":"internal"}})",
      R"({"error":{"code":"internal","message":5}})",
      // shape
      R"({"progress":{"stage":"extract","percent":5},"error":{"code":"internal","message":"x"}})",
      R"({"result":{"kind":"text","kindId":1,"text":"abc"}})",
      R"({"isolation":5,"result":{"kind":"text","kindId":1,"text":"abc"}})",
      R"({"isolation":"none","result":{"kind":"text","kindId":1,"text":"abc"},"more":1})",
      R"([1,2,3])",
      R"("text")",
      "",
  };
  for (const char* line : bad) EXPECT_FALSE(sandbox::DecodeLine(line)) << line;
  const std::string bad_results[] = {
      ResultWith(R"("words":-1)"),
      ResultWith(R"("pages":1e300)"),
      ResultWith(R"("tables":"3")"),
      ResultWith(R"("encoding":"ebcdic")"),
      ResultWith(R"("summary":7)"),
      ResultWith(R"("chunks":{"o":0})"),
      ResultWith(R"("chunks":[{"o":0,"n":2,"t":"x"}])"),
      ResultWith(R"("chunks":[{"o":-1,"n":2}])"),
      ResultWith(R"("chunks":[{"o":4,"n":3}])"),
      ResultWith(R"("chunks":[{"o":18446744073709551615,"n":1}])"),
      ResultWith(R"("chunks":[{"t":5}])"),
      ResultWith(R"("unknownField":true)"),
  };
  for (const auto& line : bad_results) EXPECT_FALSE(sandbox::DecodeLine(line)) << line;
  auto ok = sandbox::DecodeLine(ResultWith(
      R"("summary":"s","words":2,"pages":0,"encoding":"utf-8","chunks":[{"o":1,"n":2},{"t":"zz"}])"));
  ASSERT_TRUE(ok) << ok.status().ToString();
  EXPECT_EQ(ok->output.chunks, (std::vector<std::string>{"bc", "zz"}));
  EXPECT_EQ(ok->output.encoding, "utf-8");
}

TEST(SandboxProtocol, ProbeLineRoundTrips) {
  std::string line = sandbox::ProbeLine("uid+seccomp");
  line.pop_back();
  auto m = sandbox::DecodeLine(line);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->type, sandbox::Message::Type::kProbe);
  EXPECT_EQ(m->isolation, "uid+seccomp");
}

// The lean extract server (conveyor-extract beside the test's conveyor).
SandboxSettings LeanSettings(const std::string& fault = "") {
  SandboxSettings s = TestSettings(fault);
  s.lean_binary_path = LeanExtractorBeside(s.binary_path);
  return s;
}

TEST(SandboxLean, IsFoundBesideTheBinaryOnly) {
  const std::string lean = LeanExtractorBeside(conveyor::testing::ConveyorBinary());
  ASSERT_FALSE(lean.empty());
  EXPECT_EQ(std::filesystem::path(lean).filename(), "conveyor-extract");
  conveyor::testing::TempDir dir;
  EXPECT_EQ(LeanExtractorBeside(dir / "conveyor"), "");
  // A file of that name that is not executable is not it either.
  WriteFile(dir, "conveyor", "");
  WriteFile(dir, "conveyor-extract", "#!/bin/sh\n");
  EXPECT_EQ(LeanExtractorBeside(dir / "conveyor"), "");
}

TEST(SandboxLean, TextStaysInTheLeanServer) {
  const SandboxSettings s = LeanSettings();
  ASSERT_FALSE(s.lean_binary_path.empty());
  conveyor::testing::TempDir dir;
  processing::Input input;
  input.path = WriteFile(dir, "notes.txt", kText);
  input.name_hint = "notes.txt";
  auto out = RunSandboxed(s, input, {}, nullptr);
  ASSERT_TRUE(out) << out.status().ToString();
  EXPECT_EQ(out->kind, processing::FileKind::kText);
  EXPECT_NE(out->text.find("searchable memory"), std::string::npos);
  EXPECT_GT(ExtractServerPid(s.lean_binary_path), 0);
  // The full server was never needed, so never started.
  EXPECT_EQ(ExtractServerPid(s.binary_path), -1);
}

TEST(SandboxLean, PdfGoesOnToTheFullServerWithOneExtractStage) {
  const SandboxSettings s = LeanSettings();
  ASSERT_FALSE(s.lean_binary_path.empty());
  conveyor::testing::TempDir dir;
  processing::Input input;
  input.path = WriteFile(
      dir, "report.pdf",
      processing::testing::Pdf({"Quarterly figures in the first page", "and a second page"}));
  input.name_hint = "report.pdf";
  std::vector<std::string> stages;
  auto out =
      RunSandboxed(s, input, {}, [&](const std::string& stage, int) { stages.push_back(stage); });
  ASSERT_TRUE(out) << out.status().ToString();
  EXPECT_EQ(out->kind, processing::FileKind::kPdf);
  EXPECT_EQ(out->pages, 2);
  EXPECT_NE(out->text.find("Quarterly figures"), std::string::npos);
  EXPECT_GT(ExtractServerPid(s.lean_binary_path), 0);
  EXPECT_GT(ExtractServerPid(s.binary_path), 0);
  // Both children detected; only the full one extracted.
  EXPECT_EQ(std::count(stages.begin(), stages.end(), "detect"), 2);
  EXPECT_EQ(std::count(stages.begin(), stages.end(), "extract"), 1);
}

TEST(SandboxLean, AFaultInTheLeanChildIsTheJobsAnswer) {
  // A crash is the file's fault: it is not tried again in the full server.
  const SandboxSettings s = LeanSettings("crash");
  ASSERT_FALSE(s.lean_binary_path.empty());
  conveyor::testing::TempDir dir;
  processing::Input input;
  input.path = WriteFile(dir, "notes.txt", kText);
  auto out = RunSandboxed(s, input, {}, nullptr);
  ASSERT_FALSE(out);
  EXPECT_EQ(out.code(), Errc::kInvalidArgument);
  EXPECT_EQ(out.status().message(), kParserCrashedMessage);
  EXPECT_EQ(ExtractServerPid(s.binary_path), -1);
}

TEST(SandboxLean, ProbeReportsTheLayersOfBothServers) {
  const SandboxSettings s = LeanSettings();
  ASSERT_FALSE(s.lean_binary_path.empty());
  auto lean = ProbeSandbox(s);
  ASSERT_TRUE(lean) << lean.status().ToString();
  SandboxSettings full_only = s;
  full_only.lean_binary_path.clear();
  auto full = ProbeSandbox(full_only);
  ASSERT_TRUE(full) << full.status().ToString();
  EXPECT_EQ(lean->ToString(), full->ToString());
  EXPECT_GT(ExtractServerPid(s.lean_binary_path), 0);
}

TEST(SandboxLean, ABrokenLeanBinaryFailsTheProbe) {
  conveyor::testing::TempDir dir;
  SandboxSettings s = TestSettings();
  s.lean_binary_path = dir / "no-such-conveyor-extract";
  auto probed = ProbeSandbox(s);
  ASSERT_FALSE(probed);
  EXPECT_EQ(probed.code(), Errc::kInternal);
}

}  // namespace
}  // namespace conveyor::worker
