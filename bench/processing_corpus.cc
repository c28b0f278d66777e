// processing_corpus DIR N: writes N small real files of every supported
// format into DIR (text, markdown, CSV, JSON, HTML, PDF, DOCX, XLSX, PPTX,
// ODT, ODS, ODP, RTF, PNG), each a little different, for bench/processing.sh.
// Office, PDF and image files come from the test fixtures (test_files.h).
#include <leptonica/allheaders.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "processing/test_files.h"

namespace files = conveyor::processing::testing;

namespace {

void WriteFile(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary);
  out << data;
}

// A few sentences of prose naming document `i`, so each file differs.
std::string Prose(int i) {
  std::string n = std::to_string(i);
  return "Report number " + n + " covers the warehouse inventory and the delivery schedule. "
         "The conveyor belts moved " + n + " pallets before noon. Maintenance replaced two "
         "rollers and checked the motors. The night shift counted the parcels again and found "
         "no missing items. Next week the team plans to repaint the loading bay.";
}

void WriteSet(const std::string& dir, int i) {
  const std::string n = std::to_string(i);
  const std::string base = dir + "/" + n + ".";
  const std::string prose = Prose(i);
  const std::string odf = "application/vnd.oasis.opendocument.";
  WriteFile(base + "txt", prose + "\n\n" + prose + "\n");
  WriteFile(base + "md", "# Shift report " + n + "\n\n" + prose + "\n\n- rollers\n- **motors**\n");
  std::string csv = "item,count,location\n";
  for (int r = 0; r < 20; ++r) {
    csv += "part" + std::to_string(r) + "," + std::to_string(r * i + 3) + ",bay" +
           std::to_string(r % 4) + "\n";
  }
  WriteFile(base + "csv", csv);
  WriteFile(base + "json", R"({"report": )" + n + R"(, "summary": ")" + prose +
                               R"(", "items": [{"name": "roller", "count": 2}, {"name": "motor", "count": 5}]})");
  WriteFile(base + "html", "<!DOCTYPE html><html><head><title>Report " + n +
                               "</title></head><body><h1>Report " + n + "</h1><p>" + prose +
                               "</p><table><tr><td>a</td><td>b</td></tr></table></body></html>");
  WriteFile(base + "pdf", files::Pdf({"Report " + n + "\nThe conveyor belts moved pallets.",
                                      "Maintenance replaced two rollers.\nNo parcels were missing."}));
  files::WriteZip(base + "docx", files::Docx("<w:p><w:r><w:t>" + prose + "</w:t></w:r></w:p>"
                                             "<w:p><w:r><w:t>" + prose + "</w:t></w:r></w:p>"));
  files::WriteZip(base + "xlsx",
                  files::Xlsx({"Item", "Count", "Roller", "Motor"},
                              {{"Stock", "<row r=\"1\"><c r=\"A1\" t=\"s\"><v>0</v></c><c r=\"B1\" t=\"s\">"
                                         "<v>1</v></c></row><row r=\"2\"><c r=\"A2\" t=\"s\"><v>2</v></c>"
                                         "<c r=\"B2\"><v>" + n + "</v></c></row><row r=\"3\"><c r=\"A3\" "
                                         "t=\"s\"><v>3</v></c><c r=\"B3\"><v>5</v></c></row>"}}));
  files::WriteZip(base + "pptx", files::Pptx({"Report " + n, prose, "Questions"}));
  files::WriteZip(base + "odt", files::Odf(odf + "text", "<office:text><text:p>" + prose +
                                                             "</text:p></office:text>"));
  files::WriteZip(base + "ods",
                  files::Odf(odf + "spreadsheet",
                             "<office:spreadsheet><table:table table:name=\"Stock\"><table:table-row>"
                             "<table:table-cell><text:p>Item</text:p></table:table-cell>"
                             "<table:table-cell><text:p>Count</text:p></table:table-cell>"
                             "</table:table-row><table:table-row>"
                             "<table:table-cell><text:p>Roller</text:p></table:table-cell>"
                             "<table:table-cell><text:p>" + n + "</text:p></table:table-cell>"
                             "</table:table-row></table:table></office:spreadsheet>"));
  files::WriteZip(base + "odp",
                  files::Odf(odf + "presentation",
                             "<office:presentation><draw:page draw:name=\"p1\"><draw:frame>"
                             "<draw:text-box><text:p>Report " + n + "</text:p></draw:text-box>"
                             "</draw:frame></draw:page><draw:page draw:name=\"p2\"><draw:frame>"
                             "<draw:text-box><text:p>" + prose + "</text:p></draw:text-box>"
                             "</draw:frame></draw:page></office:presentation>"));
  WriteFile(base + "rtf", "{\\rtf1\\ansi{\\fonttbl\\f0\\fswiss Helvetica;}\\f0\\pard " + prose +
                              "\\par " + prose + "\\par}");
  WriteFile(base + "png", files::TextImage("INVOICE " + std::to_string(4700 + i) + " PAID", IFF_PNG));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3 || std::atoi(argv[2]) <= 0) {
    std::fprintf(stderr, "usage: %s DIR N  (writes N files of each of 14 formats into DIR)\n", argv[0]);
    return 2;
  }
  std::string dir = argv[1];
  std::filesystem::create_directories(dir);
  int n = std::atoi(argv[2]);
  for (int i = 0; i < n; ++i) WriteSet(dir, i);
  return 0;
}
