// Fixture generators for the processing tests (see test_files.h).
#include "processing/test_files.h"

#include <archive.h>
#include <archive_entry.h>
#include <leptonica/allheaders.h>

#include <cstdio>
#include <cstring>
#include <stdexcept>

namespace conveyor::processing::testing {
namespace {

void Check(int r, archive* a) {
  if (r != ARCHIVE_OK) throw std::runtime_error(archive_error_string(a));
}

archive* OpenZip(const std::string& path) {
  archive* a = archive_write_new();
  Check(archive_write_set_format_zip(a), a);
  // Fast deflate: the bomb test streams a gigabyte of zeros.
  Check(archive_write_set_options(a, "zip:compression-level=1"), a);
  Check(archive_write_open_filename(a, path.c_str()), a);
  return a;
}

void AddEntry(archive* a, const std::string& name, const std::string& data) {
  archive_entry* e = archive_entry_new();
  archive_entry_set_pathname(e, name.c_str());
  archive_entry_set_filetype(e, AE_IFREG);
  archive_entry_set_perm(e, 0644);
  archive_entry_set_size(e, static_cast<la_int64_t>(data.size()));
  if (name == "mimetype") {
    Check(archive_write_zip_set_compression_store(a), a);
  } else {
    Check(archive_write_zip_set_compression_deflate(a), a);
  }
  Check(archive_write_header(a, e), a);
  if (!data.empty() && archive_write_data(a, data.data(), data.size()) < 0) Check(ARCHIVE_FATAL, a);
  archive_entry_free(e);
}

constexpr char kXmlDecl[] = "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n";
constexpr char kRelNs[] = "http://schemas.openxmlformats.org/officeDocument/2006/relationships";
constexpr char kPkgRelNs[] = "http://schemas.openxmlformats.org/package/2006/relationships";

std::string ContentTypes(const std::vector<std::pair<std::string, std::string>>& overrides) {
  std::string s = std::string(kXmlDecl) +
                  "<Types xmlns=\"http://schemas.openxmlformats.org/package/2006/content-types\">"
                  "<Default Extension=\"rels\" ContentType=\"application/vnd.openxmlformats-package.relationships+xml\"/>"
                  "<Default Extension=\"xml\" ContentType=\"application/xml\"/>";
  for (const auto& [part, type] : overrides) {
    s += "<Override PartName=\"/" + part + "\" ContentType=\"" + type + "\"/>";
  }
  return s + "</Types>";
}

std::string Rels(const std::vector<std::pair<std::string, std::string>>& id_targets) {
  std::string s = std::string(kXmlDecl) + "<Relationships xmlns=\"" + kPkgRelNs + "\">";
  for (const auto& [id, target] : id_targets) {
    s += "<Relationship Id=\"" + id + "\" Type=\"" + kRelNs + "/x\" Target=\"" + target + "\"/>";
  }
  return s + "</Relationships>";
}

std::string PdfEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '(' || c == ')' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

}  // namespace

void WriteZip(const std::string& path, const ZipEntries& entries) {
  archive* a = OpenZip(path);
  for (const auto& [name, data] : entries) AddEntry(a, name, data);
  Check(archive_write_close(a), a);
  archive_write_free(a);
}

void WriteZipBomb(const std::string& path, const ZipEntries& entries, const std::string& bomb_name,
                  int64_t zero_bytes) {
  archive* a = OpenZip(path);
  for (const auto& [name, data] : entries) AddEntry(a, name, data);
  archive_entry* e = archive_entry_new();
  archive_entry_set_pathname(e, bomb_name.c_str());
  archive_entry_set_filetype(e, AE_IFREG);
  archive_entry_set_perm(e, 0644);
  archive_entry_set_size(e, zero_bytes);
  Check(archive_write_zip_set_compression_deflate(a), a);
  Check(archive_write_header(a, e), a);
  std::string zeros(1 << 20, '\0');
  for (int64_t left = zero_bytes; left > 0;) {
    size_t n = static_cast<size_t>(std::min<int64_t>(left, static_cast<int64_t>(zeros.size())));
    if (archive_write_data(a, zeros.data(), n) < 0) Check(ARCHIVE_FATAL, a);
    left -= static_cast<int64_t>(n);
  }
  archive_entry_free(e);
  Check(archive_write_close(a), a);
  archive_write_free(a);
}

ZipEntries Docx(const std::string& body_xml) {
  return {
      {"[Content_Types].xml",
       ContentTypes({{"word/document.xml",
                      "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"}})},
      {"_rels/.rels", Rels({{"rId1", "word/document.xml"}})},
      {"word/document.xml",
       std::string(kXmlDecl) +
           "<w:document xmlns:w=\"http://schemas.openxmlformats.org/wordprocessingml/2006/main\">"
           "<w:body>" + body_xml + "</w:body></w:document>"},
  };
}

ZipEntries Xlsx(const std::vector<std::string>& shared_strings,
                const std::vector<std::pair<std::string, std::string>>& sheets) {
  constexpr char kNs[] = "http://schemas.openxmlformats.org/spreadsheetml/2006/main";
  std::vector<std::pair<std::string, std::string>> overrides = {
      {"xl/workbook.xml", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"}};
  std::string workbook = std::string(kXmlDecl) + "<workbook xmlns=\"" + kNs + "\" xmlns:r=\"" + kRelNs +
                         "\"><sheets>";
  std::vector<std::pair<std::string, std::string>> rels = {{"rIdS", "sharedStrings.xml"}};
  ZipEntries parts;
  for (size_t i = 0; i < sheets.size(); ++i) {
    std::string n = std::to_string(i + 1);
    workbook += "<sheet name=\"" + sheets[i].first + "\" sheetId=\"" + n + "\" r:id=\"rId" + n + "\"/>";
    rels.emplace_back("rId" + n, "worksheets/sheet" + n + ".xml");
    parts.emplace_back("xl/worksheets/sheet" + n + ".xml",
                       std::string(kXmlDecl) + "<worksheet xmlns=\"" + kNs + "\"><sheetData>" +
                           sheets[i].second + "</sheetData></worksheet>");
  }
  workbook += "</sheets></workbook>";
  std::string sst = std::string(kXmlDecl) + "<sst xmlns=\"" + kNs + "\">";
  for (const auto& s : shared_strings) sst += "<si><t>" + s + "</t></si>";
  sst += "</sst>";
  ZipEntries out = {{"[Content_Types].xml", ContentTypes(overrides)},
                    {"_rels/.rels", Rels({{"rId1", "xl/workbook.xml"}})},
                    {"xl/workbook.xml", workbook},
                    {"xl/_rels/workbook.xml.rels", Rels(rels)},
                    {"xl/sharedStrings.xml", sst}};
  out.insert(out.end(), parts.begin(), parts.end());
  return out;
}

ZipEntries Pptx(const std::vector<std::string>& slide_texts) {
  constexpr char kP[] = "http://schemas.openxmlformats.org/presentationml/2006/main";
  constexpr char kA[] = "http://schemas.openxmlformats.org/drawingml/2006/main";
  std::string pres = std::string(kXmlDecl) + "<p:presentation xmlns:p=\"" + kP + "\" xmlns:r=\"" +
                     kRelNs + "\"><p:sldIdLst>";
  std::vector<std::pair<std::string, std::string>> rels;
  ZipEntries slides;
  // Slide files are numbered in reverse so that only the presentation's
  // list, not the file names, gives the right order.
  const size_t n = slide_texts.size();
  for (size_t i = 0; i < n; ++i) {
    std::string id = "rId" + std::to_string(i + 1);
    std::string file = "slide" + std::to_string(n - i) + ".xml";
    pres += "<p:sldId id=\"" + std::to_string(256 + i) + "\" r:id=\"" + id + "\"/>";
    rels.emplace_back(id, "slides/" + file);
    slides.emplace_back("ppt/slides/" + file,
                        std::string(kXmlDecl) + "<p:sld xmlns:p=\"" + kP + "\" xmlns:a=\"" + kA +
                            "\"><p:cSld><p:spTree><p:sp><p:txBody><a:p><a:r><a:t>" + slide_texts[i] +
                            "</a:t></a:r></a:p></p:txBody></p:sp></p:spTree></p:cSld></p:sld>");
  }
  pres += "</p:sldIdLst></p:presentation>";
  ZipEntries out = {
      {"[Content_Types].xml",
       ContentTypes({{"ppt/presentation.xml",
                      "application/vnd.openxmlformats-officedocument.presentationml.presentation.main+xml"}})},
      {"_rels/.rels", Rels({{"rId1", "ppt/presentation.xml"}})},
      {"ppt/presentation.xml", pres},
      {"ppt/_rels/presentation.xml.rels", Rels(rels)}};
  out.insert(out.end(), slides.begin(), slides.end());
  return out;
}

ZipEntries Odf(const std::string& mimetype, const std::string& office_body_xml) {
  return {
      {"mimetype", mimetype},
      {"META-INF/manifest.xml",
       std::string(kXmlDecl) +
           "<manifest:manifest xmlns:manifest=\"urn:oasis:names:tc:opendocument:xmlns:manifest:1.0\">"
           "<manifest:file-entry manifest:full-path=\"/\" manifest:media-type=\"" + mimetype +
           "\"/><manifest:file-entry manifest:full-path=\"content.xml\" manifest:media-type=\"text/xml\"/>"
           "</manifest:manifest>"},
      {"content.xml",
       std::string(kXmlDecl) +
           "<office:document-content"
           " xmlns:office=\"urn:oasis:names:tc:opendocument:xmlns:office:1.0\""
           " xmlns:text=\"urn:oasis:names:tc:opendocument:xmlns:text:1.0\""
           " xmlns:table=\"urn:oasis:names:tc:opendocument:xmlns:table:1.0\""
           " xmlns:draw=\"urn:oasis:names:tc:opendocument:xmlns:drawing:1.0\""
           " office:version=\"1.3\"><office:body>" + office_body_xml +
           "</office:body></office:document-content>"},
  };
}

std::string Pdf(const std::vector<std::string>& pages, bool encrypted) {
  std::vector<std::string> objects;  // objects[i] is object i+1
  objects.push_back("<< /Type /Catalog /Pages 2 0 R >>");
  std::string kids;
  for (size_t i = 0; i < pages.size(); ++i) kids += std::to_string(4 + 2 * i) + " 0 R ";
  objects.push_back("<< /Type /Pages /Kids [" + kids + "] /Count " + std::to_string(pages.size()) + " >>");
  objects.push_back("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>");
  for (size_t i = 0; i < pages.size(); ++i) {
    std::string content = "BT /F1 18 Tf 72 720 Td 24 TL\n";
    size_t pos = 0;
    const std::string& text = pages[i];
    while (pos <= text.size()) {
      size_t nl = text.find('\n', pos);
      if (nl == std::string::npos) nl = text.size();
      content += "(" + PdfEscape(text.substr(pos, nl - pos)) + ") Tj T*\n";
      pos = nl + 1;
    }
    content += "ET";
    objects.push_back("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> /Contents " +
                      std::to_string(5 + 2 * i) + " 0 R >>");
    objects.push_back("<< /Length " + std::to_string(content.size()) + " >>\nstream\n" + content +
                      "\nendstream");
  }
  if (encrypted) {
    // RC4 40-bit standard handler; the /U value matches no password.
    objects.push_back("<< /Filter /Standard /V 1 /R 2 /O <" + std::string(64, 'A') + "> /U <" +
                      std::string(64, 'B') + "> /P -4 >>");
  }
  std::string pdf = "%PDF-1.4\n%\xE2\xE3\xCF\xD3\n";
  std::vector<size_t> offsets;
  for (size_t i = 0; i < objects.size(); ++i) {
    offsets.push_back(pdf.size());
    pdf += std::to_string(i + 1) + " 0 obj\n" + objects[i] + "\nendobj\n";
  }
  size_t xref = pdf.size();
  pdf += "xref\n0 " + std::to_string(objects.size() + 1) + "\n0000000000 65535 f \n";
  for (size_t off : offsets) {
    char line[32];
    std::snprintf(line, sizeof line, "%010zu 00000 n \n", off);
    pdf += line;
  }
  pdf += "trailer\n<< /Size " + std::to_string(objects.size() + 1) + " /Root 1 0 R";
  if (encrypted) {
    pdf += " /Encrypt " + std::to_string(objects.size()) + " 0 R /ID [<" + std::string(32, '1') + "> <" +
           std::string(32, '1') + ">]";
  }
  pdf += " >>\nstartxref\n" + std::to_string(xref) + "\n%%EOF\n";
  return pdf;
}

std::string TextImage(const std::string& text, int format) {
  L_BMF* bmf = bmfCreate(nullptr, 20);
  if (bmf == nullptr) throw std::runtime_error("bmfCreate failed");
  // The 20-point font's glyphs are ~60 px high: large, clean text OCR reads
  // reliably. y0 is the baseline; the canvas leaves room above and below.
  l_int32 text_width = 0;
  bmfGetStringWidth(bmf, text.c_str(), &text_width);
  PIX* canvas = pixCreate(text_width + 40, 120, 1);
  l_int32 width = 0, overflow = 0;
  pixSetTextline(canvas, bmf, text.c_str(), 1, 20, 90, &width, &overflow);
  bmfDestroy(&bmf);
  PIX* scaled = pixClone(canvas);
  PIX* bordered = pixAddBorder(scaled, 30, 0);
  PIX* gray = pixConvertTo8(bordered, 0);
  l_uint8* data = nullptr;
  size_t size = 0;
  PIX* out = format == IFF_JFIF_JPEG ? gray : bordered;
  if (pixWriteMem(&data, &size, out, format) != 0) throw std::runtime_error("pixWriteMem failed");
  std::string bytes(reinterpret_cast<char*>(data), size);
  lept_free(data);
  pixDestroy(&canvas);
  pixDestroy(&scaled);
  pixDestroy(&bordered);
  pixDestroy(&gray);
  return bytes;
}

}  // namespace conveyor::processing::testing
