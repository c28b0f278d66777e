#include "processing/processing.h"

#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <random>
#include <thread>

#include "processing/internal/text_util.h"
#include "test_support.h"

namespace conveyor::processing {
namespace {

using conveyor::testing::TempDir;

class ProcessingTest : public ::testing::Test {
 protected:
  std::string Write(const std::string& name, const std::string& bytes) {
    std::string path = dir_ / name;
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
  }
  FileKind SniffBytes(const std::string& name, const std::string& bytes) {
    auto k = Sniff(Write(name, bytes), name);
    EXPECT_TRUE(k.ok()) << k.status().ToString();
    return k.ok() ? *k : FileKind::kUnknown;
  }
  Result<Output> RunBytes(const std::string& name, const std::string& bytes,
                          const Limits& limits = Limits(), const std::string& message = "") {
    return processing::Run({Write(name, bytes), name, message}, limits, nullptr);
  }
  TempDir dir_;
};

const char kProse[] =
    "Solar panels convert sunlight into electricity. The efficiency of solar panels has improved "
    "steadily for decades. Cats sleep for most of the day. Modern solar panels reach efficiency "
    "above twenty percent in sunlight. Installation costs of solar panels keep falling.\n\n"
    "My neighbour painted the fence blue. Solar electricity now competes with coal on cost.";

const char kMarkdown[] =
    "# Release notes\n\n"
    "Version **2.0** brings [a new parser](https://example.com/parser).\n\n"
    "## Changes\n\n"
    "- Faster uploads\n"
    "- Better `search`\n";

TEST_F(ProcessingTest, SniffsEachKindByContent) {
  EXPECT_EQ(SniffBytes("a.txt", kProse), FileKind::kText);
  EXPECT_EQ(SniffBytes("a.md", kMarkdown), FileKind::kMarkdown);
  EXPECT_EQ(SniffBytes("a.csv", "name,age,city\nAda,36,London\nAlan,41,Wilmslow\n"), FileKind::kCsv);
  EXPECT_EQ(SniffBytes("a.json", R"({"name": "Ada", "langs": ["en", "fr"]})"), FileKind::kJson);
  EXPECT_EQ(SniffBytes("a.tsv", "a\tb\tc\n1\t2\t3\n4\t5\t6\n"), FileKind::kCsv);
}

TEST_F(ProcessingTest, SniffIgnoresLyingNames) {
  EXPECT_EQ(SniffBytes("x.txt", R"([{"id": 1}, {"id": 2}])"), FileKind::kJson);
  EXPECT_EQ(SniffBytes("x.json", kProse), FileKind::kText);
  EXPECT_EQ(SniffBytes("x.txt", kMarkdown), FileKind::kMarkdown);
  EXPECT_EQ(SniffBytes("data.json", "id;name;score\n1;Ada;9.5\n2;Alan;8.0\n3;Grace;9.9\n"),
            FileKind::kCsv);
  std::mt19937 rng(42);
  std::string random_bytes(4096, '\0');
  for (auto& c : random_bytes) c = static_cast<char>(rng());
  EXPECT_EQ(SniffBytes("x.txt", random_bytes), FileKind::kUnknown);
  // Binary formats are told by their signatures, whatever the name says.
  std::string png("\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x10\0\0\0\x10\x08\x06\0\0\0", 33);
  EXPECT_EQ(SniffBytes("x.txt", png), FileKind::kImage);
  EXPECT_EQ(SniffBytes("report.txt", "%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\nendobj\n"),
            FileKind::kPdf);
  // A zip is only an office document when its entries say so.
  EXPECT_EQ(SniffBytes("x.docx", std::string("PK\x03\x04\x14\0\0\0\x08\0", 10)), FileKind::kUnknown);
  // Latin-1 is text now (converted to UTF-8); NULs still are not.
  EXPECT_EQ(SniffBytes("latin1.txt", "caf\xe9 au lait\n"), FileKind::kText);
  EXPECT_EQ(SniffBytes("nul.txt", std::string("hello\0world", 11)), FileKind::kUnknown);
}

// libmagic's text tests are off (sniff.cc): formats it names by their
// opening bytes are still refused, text-shaped ones included, and source
// code or scripts, which its text tests would call text/x-..., are text.
TEST_F(ProcessingTest, TextShapedFormatsLibmagicNamesAreRefused) {
  EXPECT_EQ(SniffBytes("a.txt", "<?xml version=\"1.0\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\">"
                                "<text>hi</text></svg>\n"),
            FileKind::kUnknown);
  EXPECT_EQ(SniffBytes("a.txt", "%!PS-Adobe-3.0\n%%Title: x\nshowpage\n"), FileKind::kUnknown);
  EXPECT_EQ(SniffBytes("a.c", "#include <stdio.h>\nint main(void) {\n  return 0;\n}\n"),
            FileKind::kText);
  EXPECT_EQ(SniffBytes("run", "#!/bin/sh\necho hello\n"), FileKind::kText);
}

TEST_F(ProcessingTest, MarkdownNameBreaksTheTieWithPlainText) {
  EXPECT_EQ(SniffBytes("plain.md", "Just a sentence.\n"), FileKind::kMarkdown);
  EXPECT_EQ(SniffBytes("plain.txt", "Just a sentence.\n"), FileKind::kText);
  // A markdown link at the start is not JSON.
  EXPECT_EQ(SniffBytes("links.txt", "[Home](https://example.com) and more\n- item\n"),
            FileKind::kMarkdown);
}

TEST_F(ProcessingTest, ProseWithCommasIsNotCsv) {
  EXPECT_EQ(SniffBytes("a.txt", "Hello, world.\nGoodbye, moon.\n"), FileKind::kText);
}

TEST_F(ProcessingTest, EmptyAndWhitespaceInputs) {
  EXPECT_EQ(SniffBytes("empty.txt", ""), FileKind::kUnknown);
  auto empty = RunBytes("empty.txt", "");
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.code(), Errc::kInvalidArgument);
  EXPECT_EQ(empty.status().message(), "Invalid file format");

  auto blank = RunBytes("blank.txt", "  \n\n\t \n");
  ASSERT_TRUE(blank.ok()) << blank.status().ToString();
  EXPECT_EQ(blank->words, 0);
  EXPECT_TRUE(blank->chunks.empty());
  EXPECT_FALSE(blank->summary.empty());

  auto bom = RunBytes("bom.txt", "\xEF\xBB\xBFHello there.");
  ASSERT_TRUE(bom.ok());
  EXPECT_EQ(bom->text, "Hello there.");
  EXPECT_EQ(bom->words, 2);
}

TEST_F(ProcessingTest, InvalidFormatHasExactMessage) {
  std::string png("\x89PNG\r\n\x1a\n\0\0\0\rIHDR", 16);
  auto r = RunBytes("image.txt", png);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), Errc::kInvalidArgument);
  EXPECT_EQ(r.status().message(), "Invalid file format");
}

TEST_F(ProcessingTest, InvalidJsonGivesClearPermanentError) {
  auto r = RunBytes("bad.json", "{\"a\": 1,, \"b\": 2}");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), Errc::kInvalidArgument);
  EXPECT_TRUE(r.status().message().starts_with("Invalid JSON: ")) << r.status().message();
  EXPECT_NE(r.status().message().find("line 1"), std::string::npos) << r.status().message();
  // Even under a name that says otherwise.
  auto r2 = RunBytes("bad.txt", "{\"unterminated\": \"yes");
  ASSERT_FALSE(r2.ok());
  EXPECT_TRUE(r2.status().message().starts_with("Invalid JSON: "));
  // Hostile nesting is refused, not a stack overflow.
  auto deep = RunBytes("deep.json", std::string(100000, '[') + std::string(100000, ']'));
  ASSERT_FALSE(deep.ok());
  EXPECT_TRUE(deep.status().message().starts_with("Invalid JSON: "));
}

TEST_F(ProcessingTest, JsonLinesAreAccepted) {
  auto r = RunBytes("events.jsonl", "{\"event\": \"login\", \"user\": \"ada\"}\n{\"event\": \"logout\", \"user\": \"ada\"}\n");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->kind, FileKind::kJson);
  EXPECT_NE(r->text.find("event: logout"), std::string::npos) << r->text;
}

TEST_F(ProcessingTest, JsonBecomesKeyValueLines) {
  auto r = RunBytes("x.txt", R"({"name": "Ada", "born": 1815, "langs": ["en", "fr"], "address": {"city": "London"}})");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->kind, FileKind::kJson);
  EXPECT_NE(r->text.find("name: Ada"), std::string::npos) << r->text;
  EXPECT_NE(r->text.find("born: 1815"), std::string::npos);
  EXPECT_NE(r->text.find("langs: en, fr"), std::string::npos);
  EXPECT_NE(r->text.find("address.city: London"), std::string::npos);
  EXPECT_NE(r->summary.find("JSON object with 4 keys"), std::string::npos) << r->summary;
}

TEST_F(ProcessingTest, CsvRowsBecomeColumnValueLines) {
  auto r = RunBytes("people.csv", "name,age,note\nAda,36,\"likes, commas\"\n\"Alan\",41,\"said \"\"hi\"\"\"\n");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->kind, FileKind::kCsv);
  EXPECT_NE(r->text.find("name: Ada, age: 36, note: likes, commas."), std::string::npos) << r->text;
  EXPECT_NE(r->text.find("note: said \"hi\""), std::string::npos) << r->text;
  EXPECT_NE(r->summary.find("CSV table with 2 rows and 3 columns: name, age, note."), std::string::npos)
      << r->summary;
}

TEST_F(ProcessingTest, MarkdownMarkupIsStripped) {
  auto r = RunBytes("notes.md", kMarkdown);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->kind, FileKind::kMarkdown);
  EXPECT_EQ(r->text.find('#'), std::string::npos) << r->text;
  EXPECT_EQ(r->text.find("**"), std::string::npos) << r->text;
  EXPECT_EQ(r->text.find("https://"), std::string::npos) << r->text;
  EXPECT_NE(r->text.find("Version 2.0 brings a new parser."), std::string::npos) << r->text;
  EXPECT_NE(r->text.find("- Faster uploads"), std::string::npos) << r->text;
}

TEST_F(ProcessingTest, SplitSentencesHandlesAbbreviationsAndNumbers) {
  auto s = SplitSentences("Dr. Smith paid $3.50 today. He left! Did he? Yes.\nNew line here");
  ASSERT_EQ(s.size(), 5u) << ::testing::PrintToString(s);
  EXPECT_EQ(s[0], "Dr. Smith paid $3.50 today.");
  EXPECT_EQ(s[1], "He left!");
  EXPECT_EQ(s[4], "New line here");
  auto wrapped = SplitSentences("This sentence is wrapped\nacross two lines. Next.");
  ASSERT_EQ(wrapped.size(), 2u);
  EXPECT_EQ(wrapped[0], "This sentence is wrapped across two lines.");
}

TEST_F(ProcessingTest, SummaryPicksCentralSentencesInOrder) {
  std::string summary = Summarize(kProse, 2);
  EXPECT_NE(summary.find("solar panels"), std::string::npos) << summary;
  EXPECT_EQ(summary.find("Cats"), std::string::npos) << summary;
  EXPECT_EQ(summary.find("neighbour"), std::string::npos) << summary;
  EXPECT_EQ(SplitSentences(summary).size(), 2u) << summary;
  // Original order is kept.
  auto all = SplitSentences(kProse);
  auto picked = SplitSentences(summary);
  auto pos0 = std::find(all.begin(), all.end(), picked[0]);
  auto pos1 = std::find(all.begin(), all.end(), picked[1]);
  ASSERT_NE(pos0, all.end());
  ASSERT_NE(pos1, all.end());
  EXPECT_LT(pos0, pos1);
  // Fewer sentences than asked: all of them.
  EXPECT_EQ(Summarize("One. Two.", 3), "One. Two.");
  EXPECT_EQ(Summarize("", 3), "");
}

TEST_F(ProcessingTest, ChunksRespectSizeOverlapAndCodePoints) {
  std::string text;
  for (int i = 0; i < 200; ++i) {
    text += "Sentence number " + std::to_string(i) + " talks about caf\xC3\xA9 and \xE6\x97\xA5\xE6\x9C\xAC. ";
    if (i % 10 == 9) text += "\n\n";
  }
  auto chunks = Chunk(text, 300, 50);
  ASSERT_GT(chunks.size(), 5u);
  for (size_t i = 0; i < chunks.size(); ++i) {
    EXPECT_LE(chunks[i].size(), 300u);
    EXPECT_TRUE(internal::IsValidUtf8(chunks[i], false)) << i;
    EXPECT_FALSE(chunks[i].empty());
  }
  // Consecutive chunks share text (the overlap).
  for (size_t i = 0; i + 1 < chunks.size(); ++i) {
    std::string head = chunks[i + 1].substr(0, 12);
    EXPECT_NE(chunks[i].find(head), std::string::npos) << "chunk " << i + 1 << " starts [" << head << "]";
  }
  // Every sentence appears in some chunk.
  for (int i = 0; i < 200; i += 37) {
    std::string needle = "Sentence number " + std::to_string(i) + " ";
    bool found = std::any_of(chunks.begin(), chunks.end(),
                             [&](const std::string& c) { return c.find(needle) != std::string::npos; });
    EXPECT_TRUE(found) << needle;
  }
  // No overlap: the chunks tile the text.
  auto tiles = Chunk("aaaa bbbb cccc dddd eeee ffff", 10, 0);
  EXPECT_EQ(tiles, (std::vector<std::string>{"aaaa bbbb", "cccc dddd", "eeee ffff"}));
  // A word longer than a chunk is cut on code point boundaries.
  std::string long_word;
  for (int i = 0; i < 100; ++i) long_word += "\xE2\x82\xAC";  // €
  for (const auto& c : Chunk(long_word, 10, 3)) {
    EXPECT_LE(c.size(), 10u);
    EXPECT_TRUE(internal::IsValidUtf8(c, false));
  }
  EXPECT_TRUE(Chunk("", 100, 10).empty());
  EXPECT_EQ(Chunk("short", 100, 10), std::vector<std::string>{"short"});
}

TEST_F(ProcessingTest, RunEndToEndReportsStages) {
  std::vector<std::pair<std::string, int>> stages;
  Limits limits;
  limits.chunk_chars = 120;
  limits.chunk_overlap_chars = 20;
  limits.summary_sentences = 2;
  auto r = processing::Run({Write("solar.txt", kProse), "solar.txt", "tell me about solar costs"}, limits,
               [&](const std::string& stage, int percent) { stages.emplace_back(stage, percent); });
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->kind, FileKind::kText);
  EXPECT_EQ(r->words, internal::CountWords(kProse));
  EXPECT_GT(r->chunks.size(), 1u);
  EXPECT_NE(r->summary.find("Plain text"), std::string::npos) << r->summary;
  EXPECT_NE(r->summary.find("cost"), std::string::npos) << r->summary;
  std::vector<std::string> names;
  for (auto& [s, p] : stages) names.push_back(s);
  EXPECT_EQ(names, (std::vector<std::string>{"detect", "extract", "analyse", "chunk"}));
  for (size_t i = 1; i < stages.size(); ++i) EXPECT_GT(stages[i].second, stages[i - 1].second);
}

TEST_F(ProcessingTest, LimitsAreEnforced) {
  Limits small;
  small.max_input_bytes = 10;
  auto big = RunBytes("big.txt", std::string(100, 'a'), small);
  EXPECT_EQ(big.code(), Errc::kResourceExhausted);

  Limits cut;
  cut.max_text_bytes = 7;
  auto r = RunBytes("cut.txt", "\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9", cut);  // 10 bytes of é
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->text.size(), 6u);
  EXPECT_TRUE(internal::IsValidUtf8(r->text, false));
}

TEST_F(ProcessingTest, LargeTextBeyondSniffWindowIsProcessedWhole) {
  std::string text;
  while (text.size() < (3u << 20)) text += "Many words fill this large file about rivers and lakes. ";
  auto r = RunBytes("large.txt", text);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->text.size(), text.size());
  // Binary after a text head is not text.
  auto mixed = RunBytes("mixed.txt", text + std::string("\0\0\0\x01\x02", 5));
  EXPECT_EQ(mixed.status().message(), "Invalid file format");
}

TEST_F(ProcessingTest, MissingFileIsPermanent) {
  auto r = processing::Run({dir_ / "nope", "nope.txt", ""}, Limits(), nullptr);
  EXPECT_EQ(r.code(), Errc::kFailedPrecondition);
}

TEST_F(ProcessingTest, FileKindNames) {
  EXPECT_EQ(FileKindName(FileKind::kText), "text");
  EXPECT_EQ(FileKindName(FileKind::kMarkdown), "markdown");
  EXPECT_EQ(FileKindName(FileKind::kCsv), "csv");
  EXPECT_EQ(FileKindName(FileKind::kJson), "json");
  EXPECT_EQ(FileKindName(FileKind::kUnknown), "unknown");
}

TEST(Utf8, ValidatesAndCuts) {
  EXPECT_TRUE(internal::IsValidUtf8("h\xC3\xA9llo \xF0\x9F\x98\x80", false));
  EXPECT_FALSE(internal::IsValidUtf8("\xC0\xAF", false));          // overlong
  EXPECT_FALSE(internal::IsValidUtf8("\xED\xA0\x80", false));      // surrogate
  EXPECT_FALSE(internal::IsValidUtf8("\xF0\x9F\x98", false));      // cut
  EXPECT_TRUE(internal::IsValidUtf8("ok\xF0\x9F\x98", true));      // cut at a window end
  EXPECT_EQ(internal::Utf8Prefix("a\xC3\xA9", 2), 1u);
}

}  // namespace
}  // namespace conveyor::processing

namespace conveyor::processing {
namespace {

TEST(ProcessingThreads, SniffAndRunFromManyThreadsAtOnce) {
  conveyor::testing::TempDir dir;
  std::string json_path = dir / "a.txt", png_path = dir / "b.txt";
  std::ofstream(json_path) << R"({"k": [1, 2, 3]})";
  std::ofstream(png_path, std::ios::binary) << std::string("\x89PNG\r\n\x1a\n\0\0\0\rIHDR", 16);
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 50; ++i) {
        auto a = Sniff(json_path, "a.txt");
        auto b = Sniff(png_path, "b.txt");
        if (!a.ok() || *a != FileKind::kJson || !b.ok() || *b != FileKind::kImage) ++wrong;
        if (!processing::Run({json_path, "a.txt", ""}, Limits(), nullptr).ok()) ++wrong;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong.load(), 0);
}

}  // namespace
}  // namespace conveyor::processing
