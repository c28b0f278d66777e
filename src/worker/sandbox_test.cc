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

  // A missing input: a public message, no path.
  auto missing = RunSandboxed(TestSettings(), {dir / "nope.txt", "nope.txt", ""}, {}, nullptr);
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

TEST(Sandbox, CrashingParserFailsAsCrashed) {
  ExpectFault(TestSettings("crash"), Errc::kInvalidArgument, kParserCrashedMessage);
}

TEST(Sandbox, SpinningParserHitsTheCpuLimit) {
  auto s = TestSettings("spin");
  s.cpu_seconds = 1;
  s.timeout_ms = 60000;  // the CPU limit, not the wall clock, must end it
  auto start = Clock::now();
  ExpectFault(s, Errc::kDeadlineExceeded, kParseTooLongMessage);
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(10));
}

TEST(Sandbox, SpinningParserHitsTheWallClockTimeout) {
  auto s = TestSettings("spin");
  s.cpu_seconds = 600;
  s.timeout_ms = 700;
  auto start = Clock::now();
  ExpectFault(s, Errc::kDeadlineExceeded, kParseTooLongMessage);
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
  EXPECT_EQ(m.code(), Errc::kInvalidArgument);
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

}  // namespace
}  // namespace conveyor::worker
