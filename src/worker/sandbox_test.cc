#include "worker/sandbox.h"

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <fstream>
#include <thread>

#include "test_support.h"
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

// True when this process has no child left, running or zombie.
bool NoChildrenLeft() {
  int status = 0;
  pid_t r = waitpid(-1, &status, WNOHANG);
  return r == -1 && errno == ECHILD;
}

TEST(Sandbox, PlainTextRoundTripsLikeInProcessRun) {
  conveyor::testing::TempDir dir;
  processing::Input input{WriteFile(dir, "notes.txt", kText), "notes.txt", "what about limits?"};
  processing::Limits limits;
  limits.chunk_chars = 120;
  limits.chunk_overlap_chars = 20;
  std::vector<std::pair<std::string, int>> stages;
  auto got = RunSandboxed(TestSettings(), input, limits,
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

TEST(Sandbox, NonUtf8TextSurvivesTheJsonTrip) {
  conveyor::testing::TempDir dir;
  // Latin-1 bytes are not UTF-8: whatever processing makes of them must come
  // back the same through the JSON wire format, or fail the same way.
  std::string content = "Caf\xE9 cr\xE8me. " + std::string(kText);
  processing::Input input{WriteFile(dir, "latin1.txt", content), "latin1.txt", ""};
  auto got = RunSandboxed(TestSettings(), input, {}, nullptr);
  auto want = processing::Run(input, {}, nullptr);
  ASSERT_EQ(got.ok(), want.ok());
  if (want) {
    EXPECT_EQ(got->text, want->text);
  } else {
    EXPECT_EQ(got.status().message(), want.status().message());
  }
}

TEST(Sandbox, ChildErrorsPassThroughWithTheirCode) {
  conveyor::testing::TempDir dir;
  std::string binary(4096, '\0');
  for (size_t i = 0; i < binary.size(); ++i) binary[i] = static_cast<char>(i * 7);
  auto bad = RunSandboxed(TestSettings(), {WriteFile(dir, "x.bin", binary), "x.bin", ""}, {}, nullptr);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.code(), Errc::kInvalidArgument);
  EXPECT_EQ(bad.status().message(), "Invalid file format");

  auto missing = RunSandboxed(TestSettings(), {dir / "nope.txt", "nope.txt", ""}, {}, nullptr);
  auto want = processing::Run({dir / "nope.txt", "nope.txt", ""}, {}, nullptr);
  ASSERT_FALSE(missing);
  ASSERT_FALSE(want);
  EXPECT_EQ(missing.code(), want.code());
  EXPECT_EQ(missing.status().message(), want.status().message());
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

TEST(Sandbox, CrashingParserFailsAsCrashed) {
  ExpectFault(TestSettings("crash"), Errc::kInvalidArgument, kParserCrashedMessage);
}

TEST(Sandbox, SpinningParserHitsTheCpuLimit) {
  auto s = TestSettings("spin");
  s.cpu_seconds = 1;
  s.timeout_ms = 60000;  // the CPU limit, not the wall clock, must end it
  auto start = Clock::now();
  ExpectFault(s, Errc::kResourceExhausted, kParseTooLongMessage);
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(10));
}

TEST(Sandbox, SpinningParserHitsTheWallClockTimeout) {
  auto s = TestSettings("spin");
  s.cpu_seconds = 600;
  s.timeout_ms = 700;
  auto start = Clock::now();
  ExpectFault(s, Errc::kResourceExhausted, kParseTooLongMessage);
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(5));
}

TEST(Sandbox, AllocatingParserHitsTheMemoryLimit) {
  auto s = TestSettings("alloc");
  s.memory_mb = 256;
  ExpectFault(s, Errc::kResourceExhausted, kParseTooMuchMemoryMessage);
}

TEST(Sandbox, FloodingParserHitsTheOutputCap) {
  auto s = TestSettings("flood");
  s.max_output_bytes = 1 << 20;
  ExpectFault(s, Errc::kResourceExhausted, kExtractedTooLargeMessage);
}

TEST(Sandbox, OutputCapAlsoBoundsARealResult) {
  conveyor::testing::TempDir dir;
  std::string big;
  while (big.size() < (256u << 10)) big += kText;
  auto s = TestSettings();
  s.max_output_bytes = 64 << 10;
  auto r = RunSandboxed(s, {WriteFile(dir, "big.txt", big), "big.txt", ""}, {}, nullptr);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.status().message(), kExtractedTooLargeMessage);
}

TEST(Sandbox, ParentKeepsWorkingAfterEachFault) {
  conveyor::testing::TempDir dir;
  processing::Input input{WriteFile(dir, "a.txt", kText), "a.txt", ""};
  for (const char* fault : {"crash", "spin", "alloc", "flood"}) {
    auto s = TestSettings(fault);
    s.cpu_seconds = 1;
    s.memory_mb = 256;
    s.max_output_bytes = 1 << 20;
    EXPECT_FALSE(RunSandboxed(s, input, {}, nullptr)) << fault;
    auto ok = RunSandboxed(TestSettings(), input, {}, nullptr);
    ASSERT_TRUE(ok) << "after " << fault << ": " << ok.status().ToString();
    EXPECT_NE(ok->text.find("sandboxed child process"), std::string::npos);
  }
  EXPECT_TRUE(NoChildrenLeft());
}

TEST(Sandbox, ConcurrentChildrenDoNotDisturbEachOther) {
  conveyor::testing::TempDir dir;
  processing::Input input{WriteFile(dir, "a.txt", kText), "a.txt", ""};
  std::atomic<int> ok{0}, crashed{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 6; ++i) {
    threads.emplace_back([&, i] {
      auto r = RunSandboxed(TestSettings(i % 2 ? "crash" : ""), input, {}, nullptr);
      if (r) ok++;
      else if (r.status().message() == kParserCrashedMessage) crashed++;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 3);
  EXPECT_EQ(crashed.load(), 3);
  EXPECT_TRUE(NoChildrenLeft());
}

TEST(Sandbox, MissingBinaryIsAnInternalError) {
  conveyor::testing::TempDir dir;
  auto s = TestSettings();
  s.binary_path = dir / "no-such-conveyor";
  auto r = RunSandboxed(s, {WriteFile(dir, "a.txt", kText), "a.txt", ""}, {}, nullptr);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.code(), Errc::kInternal);
  EXPECT_TRUE(NoChildrenLeft());
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
  auto req = sandbox::DecodeRequest(sandbox::EncodeRequest({{"/p", "n.txt", "m"}, {}}));
  ASSERT_TRUE(req);
  EXPECT_EQ(req->input.path, "/p");
  EXPECT_EQ(req->input.name_hint, "n.txt");
  EXPECT_EQ(req->input.message, "m");
}

}  // namespace
}  // namespace conveyor::worker
