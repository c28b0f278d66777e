// End-to-end format tests: a real file of every supported format goes
// through the real `conveyor api` and `conveyor worker` (sandboxed `conveyor
// extract` children) against a real redis-server, and hostile files fail
// cleanly and quickly with the extractors' own messages while the worker
// keeps processing.
//
// Office, PDF and image files come from the processing fixtures
// (processing/test_files.h); the client's file name and MIME type lie for
// many of them, since formats are told by content alone.
#include <gtest/gtest.h>
#include <leptonica/allheaders.h>

#include <chrono>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "processing/test_files.h"
#include "service.h"

namespace conveyor::testing {
namespace {

using namespace std::chrono_literals;
namespace files = conveyor::processing::testing;
using Clock = std::chrono::steady_clock;

constexpr const char* kSession = "formats";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

std::string Zip(const TempDir& dir, const std::string& name, const files::ZipEntries& entries) {
  std::string path = dir / name;
  files::WriteZip(path, entries);
  return ReadFile(path);
}

// Memory search hits of `q` in the formats session of `user`.
nlohmann::json Search(Service& svc, const std::string& user, const std::string& q) {
  auto r = Request(svc.port(), "GET",
                   "/api/chat/memory/search?session_id=" + std::string(kSession) + "&q=" + q +
                       "&limit=5",
                   {{"Authorization", "Bearer " + Service::Token(user)}});
  if (r.status != 200) return nlohmann::json::array();
  return Service::Json(r)["data"]["results"];
}

struct Sample {
  std::string kind;       // expected result.kind
  FormFile file;          // as the client sends it (name and MIME type may lie)
  std::string word;       // occurs in this file's text only
  int64_t pages = 0;      // expected result.pages
};

std::vector<Sample> EveryFormat(const TempDir& dir) {
  const std::string odf = "application/vnd.oasis.opendocument.";
  return {
      {"text",
       {"file", "plain.txt", "text/plain",
        "The lighthouse keeper wrote about the albatross that circled the harbour every "
        "morning. Nobody else saw it.\n"},
       "albatross"},
      {"markdown",
       {"file", "journal.md", "text/markdown",
        "# Garden journal\n\nThe **marigold** beds need water today.\n\n"
        "- prune the roses\n- weed the *kohlrabi* patch\n\n[seeds](https://example.com/seeds)\n"},
       "kohlrabi"},
      {"csv",
       {"file", "export.txt", "text/plain",
        "city,population,mascot\nOslo,700000,walrus\nLima,9700000,vicuna\nPerth,2100000,quokka\n"},
       "vicuna"},
      {"json",
       {"file", "payload.txt", "text/plain",
        R"({"expedition": {"leader": "Amundsen", "animals": ["narwhal", "seal"], "days": 42}})"},
       "narwhal"},
      {"html",
       {"file", "exhibits.html", "text/html",
        "<!DOCTYPE html><html><head><title>Museum</title></head><body><h1>Exhibits</h1>"
        "<p>The pterodactyl skeleton hangs in the main hall.</p>"
        "<script>var hidden = 'scriptword';</script></body></html>"},
       "pterodactyl"},
      {"pdf",
       {"file", "report.docx",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        files::Pdf({"Quarterly figures\nThe zeppelin fleet grew this year.",
                    "Second page about the observatory."})},
       "zeppelin", 2},
      {"docx",
       {"file", "notes.txt", "text/plain",
        Zip(dir, "a.docx",
            files::Docx("<w:p><w:r><w:t>Minutes of the meeting about the saxophone quartet."
                        "</w:t></w:r></w:p><w:p><w:r><w:t>Rehearsal is on Friday.</w:t></w:r></w:p>"))},
       "saxophone"},
      {"xlsx",
       {"file", "book.bin", "application/octet-stream",
        Zip(dir, "a.xlsx",
            files::Xlsx({"Instrument", "Count", "Theremin"},
                        {{"Band", "<row r=\"1\"><c r=\"A1\" t=\"s\"><v>0</v></c><c r=\"B1\" t=\"s\">"
                                  "<v>1</v></c></row><row r=\"2\"><c r=\"A2\" t=\"s\"><v>2</v></c>"
                                  "<c r=\"B2\"><v>3</v></c></row>"}}))},
       "theremin"},
      {"pptx",
       {"file", "deck.pdf", "application/pdf",
        Zip(dir, "a.pptx", files::Pptx({"Welcome to the kayak workshop", "Safety comes first"}))},
       "kayak"},
      {"odt",
       {"file", "story.odt", odf + "text",
        Zip(dir, "a.odt",
            files::Odf(odf + "text",
                       "<office:text><text:p>The armadillo sleeps all day long.</text:p>"
                       "</office:text>"))},
       "armadillo"},
      {"ods",
       {"file", "pets.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        Zip(dir, "a.ods",
            files::Odf(odf + "spreadsheet",
                       "<office:spreadsheet><table:table table:name=\"Pets\"><table:table-row>"
                       "<table:table-cell><text:p>Animal</text:p></table:table-cell>"
                       "<table:table-cell><text:p>Legs</text:p></table:table-cell>"
                       "</table:table-row><table:table-row>"
                       "<table:table-cell><text:p>Axolotl</text:p></table:table-cell>"
                       "<table:table-cell><text:p>4</text:p></table:table-cell>"
                       "</table:table-row></table:table></office:spreadsheet>"))},
       "axolotl"},
      {"odp",
       {"file", "talk.odp", odf + "presentation",
        Zip(dir, "a.odp",
            files::Odf(odf + "presentation",
                       "<office:presentation><draw:page draw:name=\"p1\"><draw:frame>"
                       "<draw:text-box><text:p>The platypus lays eggs</text:p></draw:text-box>"
                       "</draw:frame></draw:page></office:presentation>"))},
       "platypus"},
      {"rtf",
       {"file", "letter.txt", "text/plain",
        "{\\rtf1\\ansi{\\fonttbl\\f0\\fswiss Helvetica;}\\f0\\pard The flamingo stands on one "
        "leg.\\par Another paragraph.\\par}"},
       "flamingo"},
      {"image",
       {"file", "scan.jpg", "image/jpeg", files::TextImage("INVOICE 4711 PAID", IFF_PNG)},
       "invoice"},
  };
}

TEST(Formats, EveryFormatCompletesThroughTheServiceAndIsSearchable) {
  TempDir dir;
  Service svc(Env{{"WORKER_CONCURRENCY", "4"}});
  svc.Start();
  const std::string user = "formats-user";
  auto samples = EveryFormat(dir);
  std::vector<std::string> ids;
  for (const auto& s : samples) {
    ids.push_back(svc.UploadOk(user, kSession, s.file));
    ASSERT_FALSE(ids.back().empty()) << s.kind;
  }
  for (size_t i = 0; i < samples.size(); ++i) {
    const Sample& s = samples[i];
    SCOPED_TRACE(s.kind + " sent as " + s.file.filename + " (" + s.file.content_type + ")");
    auto final = svc.WaitFinal(user, ids[i], 40s);
    ASSERT_TRUE(final) << svc.worker().Log();
    ASSERT_EQ((*final)["status"], "completed") << final->dump();
    const auto& result = (*final)["result"];
    EXPECT_EQ(result["kind"], s.kind) << result.dump();
    EXPECT_FALSE(result["aiResponse"]["text"].get<std::string>().empty()) << result.dump();
    EXPECT_GT(result["words"].get<int64_t>(), 0) << result.dump();
    EXPECT_EQ(result["pages"].get<int64_t>(), s.pages) << result.dump();
    EXPECT_GT(result["chunks"].get<int64_t>(), 0) << result.dump();
    // The distinctive word is found, in this file's memory chunks.
    auto hits = Search(svc, user, s.word);
    ASSERT_FALSE(hits.empty()) << s.word;
    EXPECT_EQ(hits[0]["fileId"], result["fileId"]) << hits.dump();
    EXPECT_EQ(hits[0]["jobId"], ids[i]) << hits.dump();
  }
  // Only visible text is memory: an HTML script's words are not.
  EXPECT_TRUE(Search(svc, user, "scriptword").empty());
  // Another user sees none of it.
  EXPECT_TRUE(Search(svc, "someone-else", "albatross").empty());
}

std::string RandomBytes(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  s[0] = '\x01';  // never mistaken for text
  return s;
}

// A PNG whose header claims 100000 x 100000 pixels, and nothing else.
std::string HugePngHeader() {
  std::string png("\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR", 16);
  auto be32 = [&](uint32_t v) {
    for (int s = 24; s >= 0; s -= 8) png += static_cast<char>((v >> s) & 0xFF);
  };
  be32(100000);
  be32(100000);
  png += std::string("\x08\x02\0\0\0", 5);
  be32(0);  // CRC, not checked before the size is
  png += std::string("\0\0\0\0IDAT\0\0\0\0", 12);
  return png;
}

struct Hostile {
  std::string what;
  FormFile file;
  std::string error;  // the job's error, exactly
};

TEST(Formats, HostileFilesFailCleanlyAndQuicklyAndTheWorkerCarriesOn) {
  TempDir dir;
  // A gigabyte of zeros as the document part (~1 MB compressed; ~4 s to build).
  auto bomb_entries = files::Docx("<w:p><w:r><w:t>x</w:t></w:r></w:p>");
  bomb_entries.erase(bomb_entries.begin() + 2);
  files::WriteZipBomb(dir / "bomb.docx", bomb_entries, "word/document.xml", 1LL << 30);
  std::string deep_xml;
  for (int i = 0; i < 100000; ++i) deep_xml += "<w:sdt>";
  deep_xml += "<w:p><w:r><w:t>x</w:t></w:r></w:p>";
  for (int i = 0; i < 100000; ++i) deep_xml += "</w:sdt>";
  std::string pdf = files::Pdf({"Some text that is cut off."});

  const std::vector<Hostile> hostile = {
      {"zip bomb",
       {"file", "notes.txt", "text/plain", ReadFile(dir / "bomb.docx")},
       "Refused DOCX: zip entry word/document.xml expands more than 200 times (zip bomb defence)"},
      {"deeply nested DOCX XML",
       {"file", "deep.docx", "application/octet-stream", Zip(dir, "deep.docx", files::Docx(deep_xml))},
       "Invalid DOCX: word/document.xml: XML nested deeper than 200 levels"},
      {"truncated PDF",
       {"file", "cut.pdf", "application/pdf", pdf.substr(0, pdf.size() * 2 / 3)},
       "Invalid PDF: truncated (no %%EOF marker)"},
      {"huge image header",
       {"file", "huge.png", "image/png", HugePngHeader()},
       "Image of 100000x100000 pixels is over the 40000000-pixel limit"},
      {"RTF nested a million groups deep",
       {"file", "deep.rtf", "application/rtf",
        "{\\rtf1 " + std::string(1'000'000, '{') + "x" + std::string(1'000'000, '}') + "}"},
       "Invalid RTF: groups nested deeper than 1000 levels"},
      {"encrypted PDF",
       {"file", "secret.pdf", "application/pdf", files::Pdf({"Top secret"}, true)},
       "Encrypted PDF is not supported"},
      {"random bytes",
       {"file", "data.txt", "text/plain", RandomBytes(64 * 1024, 11)},
       "Invalid file format"},
  };

  Service svc;
  svc.Start();
  const std::string user = "hostile-user";
  for (const auto& h : hostile) {
    SCOPED_TRACE(h.what);
    auto start = Clock::now();
    std::string id = svc.UploadOk(user, kSession, h.file);
    ASSERT_FALSE(id.empty());
    auto final = svc.WaitFinal(user, id, 20s);
    auto took = Clock::now() - start;
    ASSERT_TRUE(final) << svc.worker().Log();
    EXPECT_EQ((*final)["status"], "failed") << final->dump();
    EXPECT_EQ((*final)["error"], h.error) << final->dump();
    EXPECT_LT(took, 5s) << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                        << " ms";
    // Permanent: one attempt, never retried.
    EXPECT_EQ(svc.redis().Cli({"HGET", "bull:file-upload:" + id, "ats"}), "1\n");
    EXPECT_TRUE(svc.worker().running());
  }
  // The worker still processes a normal upload.
  std::string id = svc.UploadOk(
      user, kSession,
      {"file", "after.txt", "text/plain", "After the storm the gondola service resumed.\n"});
  ASSERT_FALSE(id.empty());
  auto final = svc.WaitFinal(user, id, 20s);
  ASSERT_TRUE(final) << svc.worker().Log();
  EXPECT_EQ((*final)["status"], "completed") << final->dump();
  auto hits = Search(svc, user, "gondola");
  ASSERT_FALSE(hits.empty());
  EXPECT_EQ(hits[0]["jobId"], id);
}

}  // namespace
}  // namespace conveyor::testing
