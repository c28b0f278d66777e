// Office documents: zip entries with libarchive, XML with libxml2's streaming
// reader (no tree, so memory follows the text, not the markup).
//
// One pass over the zip reads the parts we need (XML and relationship parts;
// media and fonts are skipped undecompressed) under the zip-bomb limits of
// internal/office.h. Then the format's handler walks its parts:
//   DOCX  the main part (word/document.xml): w:p paragraphs, w:t runs, tables
//         as "cell | cell" rows.
//   XLSX  xl/workbook.xml's sheets in order, through its relationships; cells
//         from the shared strings, inline strings or values.
//   PPTX  ppt/presentation.xml's slide list in order; a:t runs, a:p lines.
//   ODF   content.xml: text:p / text:h, tables, draw:page slides.
#include "processing/internal/office.h"

#include <archive.h>
#include <unistd.h>
#include <archive_entry.h>
#include <libxml/xmlreader.h>

#include <algorithm>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <string_view>
#include <vector>

#include "processing/internal/text_util.h"

namespace conveyor::processing::internal {
namespace {

constexpr char kInvalidFormat[] = "Invalid file format";
// Columns kept per spreadsheet row: Excel's own maximum.
constexpr size_t kMaxColumns = 16384;
// Repeats honoured for a non-empty repeated ODF cell (number-columns-repeated).
constexpr int64_t kMaxCellRepeat = 256;
// Buffer for decompressing an entry.
constexpr size_t kReadBlock = 64 << 10;

struct ArchiveFree {
  void operator()(archive* a) const { archive_read_free(a); }
};

using Parts = std::map<std::string, std::string>;

std::string_view KindLabel(FileKind kind) {
  switch (kind) {
    case FileKind::kDocx: return "DOCX";
    case FileKind::kXlsx: return "XLSX";
    case FileKind::kPptx: return "PPTX";
    case FileKind::kOdt: return "ODT";
    case FileKind::kOds: return "ODS";
    case FileKind::kOdp: return "ODP";
    default: return "office document";
  }
}

// libarchive's message for its last error. It may have none (a zip that ends
// right after an entry, without its central directory, fails that way), and
// a null char* must not reach std::string.
std::string ArchiveError(archive* a) {
  const char* msg = archive_error_string(a);
  return msg != nullptr ? msg : "truncated or unreadable";
}

// Reads the entries `want` selects into memory, enforcing the limits.
Result<Parts> ReadZip(int fd, const Limits& limits,
                      const std::function<bool(std::string_view)>& want, std::string_view label) {
  std::unique_ptr<archive, ArchiveFree> a(archive_read_new());
  if (!a) return Internal("archive_read_new failed");
  archive_read_support_format_zip(a.get());
  // libarchive reads and seeks the descriptor itself: start at the top.
  if (::lseek(fd, 0, SEEK_SET) != 0 || archive_read_open_fd(a.get(), fd, kReadBlock) != ARCHIVE_OK) {
    return InvalidArgument(kInvalidFormat);
  }
  Parts parts;
  int64_t entries = 0, total = 0;
  std::string block(kReadBlock, '\0');
  archive_entry* entry = nullptr;
  while (true) {
    int r = archive_read_next_header(a.get(), &entry);
    if (r == ARCHIVE_EOF) break;
    if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
      return InvalidArgument(entries == 0 ? std::string(kInvalidFormat)
                                          : "Invalid " + std::string(label) + ": damaged zip (" +
                                                ArchiveError(a.get()) + ")");
    }
    if (++entries > limits.max_archive_entries) {
      return ResourceExhausted("Refused " + std::string(label) + ": more than " +
                               std::to_string(limits.max_archive_entries) + " zip entries");
    }
    const char* raw_name = archive_entry_pathname(entry);
    std::string name = raw_name != nullptr ? raw_name : "";
    if (name.empty() || !want(name)) continue;  // skipped without decompressing
    if (archive_entry_is_encrypted(entry)) {
      return InvalidArgument("Encrypted documents are not supported");
    }
    std::string data;
    int64_t raw_start = archive_filter_bytes(a.get(), -1);
    while (true) {
      la_ssize_t n = archive_read_data(a.get(), block.data(), block.size());
      if (n == 0) break;
      if (n < 0) {
        return InvalidArgument("Invalid " + std::string(label) + ": damaged zip entry " + name +
                               " (" + ArchiveError(a.get()) + ")");
      }
      total += n;
      if (total > limits.max_archive_bytes) {
        return ResourceExhausted("Refused " + std::string(label) + ": over " +
                                 std::to_string(limits.max_archive_bytes) +
                                 " bytes uncompressed (zip bomb defence)");
      }
      data.append(block.data(), static_cast<size_t>(n));
      // The raw bytes consumed so far include read-ahead, so the ratio is
      // underestimated a little, never overestimated.
      int64_t raw = std::max<int64_t>(archive_filter_bytes(a.get(), -1) - raw_start, 1);
      if (static_cast<int64_t>(data.size()) > kRatioGraceBytes &&
          static_cast<int64_t>(data.size()) > raw * limits.max_compression_ratio) {
        return ResourceExhausted("Refused " + std::string(label) + ": zip entry " + name +
                                 " expands more than " +
                                 std::to_string(limits.max_compression_ratio) +
                                 " times (zip bomb defence)");
      }
    }
    parts[name] = std::move(data);
  }
  return parts;
}

// --- XML walking -------------------------------------------------------------

struct ReaderFree {
  void operator()(xmlTextReader* r) const { xmlFreeTextReader(r); }
};

void KeepFirstError(void* arg, xmlError* error) {
  auto* msg = static_cast<std::string*>(arg);
  if (msg->empty() && error != nullptr && error->message != nullptr) {
    *msg = error->message;
    while (!msg->empty() && (msg->back() == '\n' || msg->back() == ' ')) msg->pop_back();
  }
}

class XmlHandler {
 public:
  virtual ~XmlHandler() = default;
  virtual void Start(std::string_view name, xmlTextReader* r) {}
  virtual void End(std::string_view name) {}
  virtual void Text(std::string_view text) {}
};

std::string_view Str(const xmlChar* s) {
  return s != nullptr ? std::string_view(reinterpret_cast<const char*>(s)) : std::string_view();
}

// The value of the current element's attribute with local name `local`
// (whatever its prefix), or "". With `namespaced`, only an attribute in a
// namespace matches (r:id, not the plain id beside it on p:sldId).
std::string Attr(xmlTextReader* r, std::string_view local, bool namespaced = false) {
  std::string value;
  if (xmlTextReaderHasAttributes(r) != 1) return value;
  while (xmlTextReaderMoveToNextAttribute(r) == 1) {
    if (Str(xmlTextReaderConstLocalName(r)) == local &&
        (!namespaced || !Str(xmlTextReaderConstNamespaceUri(r)).empty())) {
      value = Str(xmlTextReaderConstValue(r));
      break;
    }
  }
  xmlTextReaderMoveToElement(r);
  return value;
}

Result<void> WalkXml(const std::string& xml, const std::string& part, std::string_view label,
               XmlHandler* h) {
  // No XML_PARSE_NOENT (entities stay unexpanded), no DTD loading or
  // validation, no network, no XML_PARSE_HUGE (libxml2 keeps its depth and
  // size limits).
  constexpr int kOptions = XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING;
  std::unique_ptr<xmlTextReader, ReaderFree> r(xmlReaderForMemory(
      xml.data(), static_cast<int>(xml.size()), part.c_str(), nullptr, kOptions));
  std::string prefix = "Invalid " + std::string(label) + ": " + part + ": ";
  if (!r) return InvalidArgument(prefix + "unreadable XML");
  std::string error;
  xmlTextReaderSetStructuredErrorHandler(r.get(), KeepFirstError, &error);
  const std::string too_deep = prefix + "XML nested deeper than " + std::to_string(kMaxXmlDepth) +
                               " levels";
  while (true) {
    int ret = xmlTextReaderRead(r.get());
    if (ret == 0) break;
    if (ret < 0) {
      // The parser reads ahead of the reader and may meet its own depth
      // limit (256) before we see depth kMaxXmlDepth: same fault, same words.
      if (error.find("Excessive depth") != std::string::npos) return InvalidArgument(too_deep);
      return InvalidArgument(prefix + (error.empty() ? "malformed XML" : error));
    }
    int type = xmlTextReaderNodeType(r.get());
    if (type == XML_READER_TYPE_DOCUMENT_TYPE) {
      return InvalidArgument(prefix + "a document type declaration is not allowed");
    }
    if (xmlTextReaderDepth(r.get()) > kMaxXmlDepth) return InvalidArgument(too_deep);
    switch (type) {
      case XML_READER_TYPE_ELEMENT: {
        std::string_view name = Str(xmlTextReaderConstLocalName(r.get()));
        bool empty = xmlTextReaderIsEmptyElement(r.get()) == 1;
        h->Start(name, r.get());
        if (empty) h->End(name);
        break;
      }
      case XML_READER_TYPE_END_ELEMENT:
        h->End(Str(xmlTextReaderConstLocalName(r.get())));
        break;
      case XML_READER_TYPE_TEXT:
      case XML_READER_TYPE_CDATA:
      case XML_READER_TYPE_SIGNIFICANT_WHITESPACE:
      case XML_READER_TYPE_WHITESPACE:
        h->Text(Str(xmlTextReaderConstValue(r.get())));
        break;
      case XML_READER_TYPE_ENTITY_REFERENCE:
        return InvalidArgument(prefix + "entity references are not allowed");
      default:
        break;
    }
  }
  if (!error.empty()) return InvalidArgument(prefix + error);
  return OkStatus();
}

// Lines of text with table rows as "cell | cell".
class LineSink {
 public:
  void Append(std::string_view s) { line_ += s; }
  void EndParagraph() {
    if (table_depth_ > 0) {
      if (!line_.empty() && line_.back() != ' ') line_ += ' ';
      return;
    }
    Flush();
  }
  void EndCell() {
    while (!line_.empty() && line_.back() == ' ') line_.pop_back();
    if (!line_.empty()) line_ += " | ";
  }
  void EndRow() {
    while (line_.ends_with(" | ") || line_.ends_with(' ')) {
      line_.resize(line_.ends_with(" | ") ? line_.size() - 3 : line_.size() - 1);
    }
    Flush();
  }
  void Blank() {
    Flush();
    if (!out_.empty() && !out_.ends_with("\n\n")) out_ += '\n';
  }
  void Flush() {
    out_ += line_;
    out_ += '\n';
    line_.clear();
  }
  std::string Take() {
    if (!line_.empty()) Flush();
    return std::move(out_);
  }
  int table_depth_ = 0;

 private:
  std::string out_, line_;
};

// --- DOCX --------------------------------------------------------------------

class DocxHandler : public XmlHandler {
 public:
  void Start(std::string_view n, xmlTextReader*) override {
    if (n == "t") in_text_ = true;
    else if (n == "tab") sink_.Append("\t");
    else if (n == "br" || n == "cr") sink_.Append("\n");
    else if (n == "tbl") {
      ++tables_;
      ++sink_.table_depth_;
    }
  }
  void End(std::string_view n) override {
    if (n == "t") in_text_ = false;
    else if (n == "p") sink_.EndParagraph();
    else if (n == "tc") sink_.EndCell();
    else if (n == "tr") sink_.EndRow();
    else if (n == "tbl") --sink_.table_depth_;
  }
  void Text(std::string_view t) override {
    if (in_text_) sink_.Append(t);
  }
  LineSink sink_;
  int64_t tables_ = 0;

 private:
  bool in_text_ = false;
};

// --- relationships and content types ---------------------------------------

// Relationship id -> target part name, resolved against `base_dir`.
class RelsHandler : public XmlHandler {
 public:
  explicit RelsHandler(std::string base_dir) : base_(std::move(base_dir)) {}
  void Start(std::string_view n, xmlTextReader* r) override {
    if (n != "Relationship") return;
    std::string id = Attr(r, "Id"), target = Attr(r, "Target");
    if (id.empty() || target.empty()) return;
    if (target.starts_with('/')) {
      target.erase(0, 1);
    } else {
      std::string dir = base_;
      while (target.starts_with("../")) {
        target.erase(0, 3);
        size_t slash = dir.find_last_of('/', dir.size() >= 2 ? dir.size() - 2 : 0);
        dir = slash == std::string::npos ? "" : dir.substr(0, slash + 1);
      }
      target = dir + target;
    }
    targets[id] = target;
  }
  std::map<std::string, std::string> targets;

 private:
  std::string base_;
};

// PartName -> ContentType from [Content_Types].xml's Override elements.
class ContentTypesHandler : public XmlHandler {
 public:
  void Start(std::string_view n, xmlTextReader* r) override {
    if (n != "Override") return;
    std::string part = Attr(r, "PartName");
    if (part.starts_with('/')) part.erase(0, 1);
    types.emplace_back(part, Attr(r, "ContentType"));
  }
  std::vector<std::pair<std::string, std::string>> types;
};

struct MainType {
  std::string_view content_type_part;  // distinguishes the format's main part
  FileKind kind;
};
constexpr MainType kMainTypes[] = {
    {"wordprocessingml.document.main+xml", FileKind::kDocx},
    {"wordprocessingml.template.main+xml", FileKind::kDocx},
    {"ms-word.document.macroEnabled.main+xml", FileKind::kDocx},
    {"ms-word.template.macroEnabledTemplate.main+xml", FileKind::kDocx},
    {"spreadsheetml.sheet.main+xml", FileKind::kXlsx},
    {"spreadsheetml.template.main+xml", FileKind::kXlsx},
    {"ms-excel.sheet.macroEnabled.main+xml", FileKind::kXlsx},
    {"ms-excel.template.macroEnabled.main+xml", FileKind::kXlsx},
    {"presentationml.presentation.main+xml", FileKind::kPptx},
    {"presentationml.slideshow.main+xml", FileKind::kPptx},
    {"presentationml.template.main+xml", FileKind::kPptx},
    {"ms-powerpoint.presentation.macroEnabled.main+xml", FileKind::kPptx},
    {"ms-powerpoint.slideshow.macroEnabled.main+xml", FileKind::kPptx},
};

struct OdfType {
  std::string_view mimetype;
  FileKind kind;
};
constexpr OdfType kOdfTypes[] = {
    {"application/vnd.oasis.opendocument.text", FileKind::kOdt},
    {"application/vnd.oasis.opendocument.text-template", FileKind::kOdt},
    {"application/vnd.oasis.opendocument.spreadsheet", FileKind::kOds},
    {"application/vnd.oasis.opendocument.spreadsheet-template", FileKind::kOds},
    {"application/vnd.oasis.opendocument.presentation", FileKind::kOdp},
    {"application/vnd.oasis.opendocument.presentation-template", FileKind::kOdp},
};

constexpr char kContentTypes[] = "[Content_Types].xml";

// The kind and main part of an OOXML/ODF package, from its parts.
FileKind KindOfParts(const Parts& parts, std::string* main_part) {
  if (auto it = parts.find("mimetype"); it != parts.end()) {
    std::string_view m = it->second;
    while (!m.empty() && (m.back() == '\n' || m.back() == '\r' || m.back() == ' ')) {
      m.remove_suffix(1);
    }
    for (const auto& t : kOdfTypes) {
      if (m == t.mimetype) {
        *main_part = "content.xml";
        return t.kind;
      }
    }
  }
  auto it = parts.find(kContentTypes);
  if (it == parts.end()) return FileKind::kUnknown;
  ContentTypesHandler h;
  if (!WalkXml(it->second, kContentTypes, "office document", &h)) return FileKind::kUnknown;
  for (const auto& [part, type] : h.types) {
    for (const auto& t : kMainTypes) {
      if (type.ends_with(t.content_type_part)) {
        *main_part = part;
        return t.kind;
      }
    }
  }
  return FileKind::kUnknown;
}

std::string DirOf(const std::string& part) {
  size_t slash = part.find_last_of('/');
  return slash == std::string::npos ? "" : part.substr(0, slash + 1);
}

std::string RelsOf(const std::string& part) {
  size_t slash = part.find_last_of('/');
  std::string dir = slash == std::string::npos ? "" : part.substr(0, slash + 1);
  std::string file = slash == std::string::npos ? part : part.substr(slash + 1);
  return dir + "_rels/" + file + ".rels";
}

Result<std::map<std::string, std::string>> ReadRels(const Parts& parts, const std::string& part,
                                                    std::string_view label) {
  auto it = parts.find(RelsOf(part));
  if (it == parts.end()) return std::map<std::string, std::string>();
  RelsHandler h(DirOf(part));
  CONVEYOR_RETURN_IF_ERROR(WalkXml(it->second, it->first, label, &h));
  return std::move(h.targets);
}

// --- XLSX --------------------------------------------------------------------

class SharedStringsHandler : public XmlHandler {
 public:
  void Start(std::string_view n, xmlTextReader*) override {
    if (n == "si") current_.clear();
    else if (n == "t" && phonetic_ == 0) in_text_ = true;
    else if (n == "rPh") ++phonetic_;
  }
  void End(std::string_view n) override {
    if (n == "si") strings.push_back(std::move(current_));
    else if (n == "t") in_text_ = false;
    else if (n == "rPh") --phonetic_;
  }
  void Text(std::string_view t) override {
    if (in_text_) current_ += t;
  }
  std::vector<std::string> strings;

 private:
  std::string current_;
  bool in_text_ = false;
  int phonetic_ = 0;
};

// Column index (0-based) of a cell reference such as "BC12"; -1 if none.
int64_t ColumnOf(std::string_view ref) {
  int64_t col = 0;
  size_t i = 0;
  for (; i < ref.size() && ref[i] >= 'A' && ref[i] <= 'Z' && i < 4; ++i) {
    col = col * 26 + (ref[i] - 'A' + 1);
  }
  return i == 0 ? -1 : col - 1;
}

class SheetHandler : public XmlHandler {
 public:
  explicit SheetHandler(const std::vector<std::string>& shared) : shared_(shared) {}
  void Start(std::string_view n, xmlTextReader* r) override {
    if (n == "row") {
      row_.clear();
    } else if (n == "c") {
      type_ = Attr(r, "t");
      int64_t col = ColumnOf(Attr(r, "r"));
      col_ = col >= 0 ? col : static_cast<int64_t>(row_.size());
      value_.clear();
    } else if (n == "v" || (n == "t" && type_ == "inlineStr")) {
      in_value_ = true;
    }
  }
  void End(std::string_view n) override {
    if (n == "v" || n == "t") {
      in_value_ = false;
    } else if (n == "c") {
      std::string v = std::move(value_);
      if (type_ == "s") {
        char* end = nullptr;
        unsigned long idx = std::strtoul(v.c_str(), &end, 10);
        v = end != v.c_str() && idx < shared_.size() ? shared_[idx] : "";
      } else if (type_ == "b") {
        v = v == "1" ? "TRUE" : "FALSE";
      }
      if (!v.empty() && col_ < static_cast<int64_t>(kMaxColumns)) {
        if (row_.size() <= static_cast<size_t>(col_)) row_.resize(static_cast<size_t>(col_) + 1);
        row_[static_cast<size_t>(col_)] = std::move(v);
      }
    } else if (n == "row") {
      if (!row_.empty()) records.push_back(std::move(row_));
      row_.clear();
    }
  }
  void Text(std::string_view t) override {
    if (in_value_) value_ += t;
  }
  std::vector<std::vector<std::string>> records;

 private:
  const std::vector<std::string>& shared_;
  std::vector<std::string> row_;
  std::string type_, value_;
  int64_t col_ = 0;
  bool in_value_ = false;
};

// Sheets (name, r:id) or slides (r:id) listed by the main part, in order.
class ListHandler : public XmlHandler {
 public:
  explicit ListHandler(std::string_view element) : element_(element) {}
  void Start(std::string_view n, xmlTextReader* r) override {
    if (n == element_) items.emplace_back(Attr(r, "name"), Attr(r, "id", true));
  }
  std::vector<std::pair<std::string, std::string>> items;  // (name, relationship id)

 private:
  std::string_view element_;
};

// --- PPTX ---------------------------------------------------------------------

class SlideHandler : public XmlHandler {
 public:
  void Start(std::string_view n, xmlTextReader*) override {
    if (n == "t") in_text_ = true;
    else if (n == "br") sink_.Flush();
    else if (n == "tbl") {
      ++tables_;
      ++sink_.table_depth_;
    }
  }
  void End(std::string_view n) override {
    if (n == "t") in_text_ = false;
    else if (n == "p") sink_.EndParagraph();
    else if (n == "tc") sink_.EndCell();
    else if (n == "tr") sink_.EndRow();
    else if (n == "tbl") --sink_.table_depth_;
  }
  void Text(std::string_view t) override {
    if (in_text_) sink_.Append(t);
  }
  LineSink sink_;
  int64_t tables_ = 0;

 private:
  bool in_text_ = false;
};

// --- ODF ----------------------------------------------------------------------

// A count attribute (text:c, number-columns-repeated): its leading decimal
// integer, saturated at int64's range (atoll is undefined beyond it); 0 when
// there is none.
int64_t ParseCount(const std::string& s) { return std::strtoll(s.c_str(), nullptr, 10); }

class OdfHandler : public XmlHandler {
 public:
  explicit OdfHandler(FileKind kind) : kind_(kind) {}
  void Start(std::string_view n, xmlTextReader* r) override {
    if (n == "annotation" || n == "tracked-changes") {
      ++skip_;
      return;
    }
    if (skip_ > 0) return;
    if (n == "p" || n == "h") {
      ++paragraph_;
    } else if (n == "s") {
      std::string c = Attr(r, "c");
      int64_t count = c.empty() ? 1 : std::clamp<int64_t>(ParseCount(c), 1, 100);
      Append(std::string(static_cast<size_t>(count), ' '));
    } else if (n == "tab") {
      Append("\t");
    } else if (n == "line-break") {
      Append("\n");
    } else if (n == "table") {
      ++tables;
      if (kind_ == FileKind::kOds && table_depth_ == 0) {
        sheet_names.push_back(Attr(r, "name"));
        sheet_records.emplace_back();
      }
      ++table_depth_;
      ++sink_.table_depth_;
    } else if (n == "table-row") {
      row_.clear();
      pending_empty_ = 0;
    } else if (n == "table-cell" || n == "covered-table-cell") {
      cell_.clear();
      std::string rep = Attr(r, "number-columns-repeated");
      // Held to the columns a row keeps, so that counting repeated empty
      // cells (pending_empty_) cannot overflow.
      repeat_ = rep.empty() ? 1 : std::clamp<int64_t>(ParseCount(rep), 1, kMaxColumns);
      in_cell_ = true;
    } else if (n == "page" && kind_ == FileKind::kOdp) {
      ++slides;
      sink_.Blank();
      sink_.Append("Slide " + std::to_string(slides));
      sink_.Flush();
    }
  }
  void End(std::string_view n) override {
    if (n == "annotation" || n == "tracked-changes") {
      --skip_;
      return;
    }
    if (skip_ > 0) return;
    if (n == "p" || n == "h") {
      --paragraph_;
      if (in_cell_ && kind_ == FileKind::kOds) {
        cell_ += ' ';
      } else {
        sink_.EndParagraph();
      }
    } else if (n == "table-cell" || n == "covered-table-cell") {
      in_cell_ = false;
      if (kind_ == FileKind::kOds) {
        while (!cell_.empty() && cell_.back() == ' ') cell_.pop_back();
        if (cell_.empty()) {
          // Trailing empty cells repeated to the sheet's edge are common;
          // they are counted, and only materialised before a value.
          pending_empty_ = std::min<int64_t>(pending_empty_ + repeat_, kMaxColumns);
        } else {
          for (int64_t i = 0; i < pending_empty_ && row_.size() < kMaxColumns; ++i) row_.emplace_back();
          pending_empty_ = 0;
          for (int64_t i = 0; i < std::min(repeat_, kMaxCellRepeat) && row_.size() < kMaxColumns; ++i) {
            row_.push_back(cell_);
          }
        }
      } else {
        sink_.EndCell();
      }
    } else if (n == "table-row") {
      if (kind_ == FileKind::kOds) {
        if (!row_.empty() && !sheet_records.empty()) sheet_records.back().push_back(std::move(row_));
        row_.clear();
      } else {
        sink_.EndRow();
      }
    } else if (n == "table") {
      --table_depth_;
      --sink_.table_depth_;
    }
  }
  void Text(std::string_view t) override {
    if (skip_ == 0 && paragraph_ > 0) Append(t);
  }
  std::string Take() { return sink_.Take(); }

  int64_t tables = 0, slides = 0;
  std::vector<std::string> sheet_names;
  std::vector<std::vector<std::vector<std::string>>> sheet_records;

 private:
  void Append(std::string_view t) {
    if (in_cell_ && kind_ == FileKind::kOds) {
      cell_ += t;
    } else {
      sink_.Append(t);
    }
  }
  FileKind kind_;
  LineSink sink_;
  int skip_ = 0, paragraph_ = 0, table_depth_ = 0;
  bool in_cell_ = false;
  std::string cell_;
  std::vector<std::string> row_;
  int64_t repeat_ = 1, pending_empty_ = 0;
};

std::string SheetsText(const std::vector<std::string>& names,
                       const std::vector<std::vector<std::vector<std::string>>>& sheets) {
  std::string out;
  for (size_t i = 0; i < sheets.size(); ++i) {
    if (!out.empty()) out += '\n';
    std::string name = i < names.size() && !names[i].empty() ? names[i] : "Sheet" + std::to_string(i + 1);
    out += "Sheet: " + name + "\n";
    out += RecordsToText(sheets[i], nullptr);
  }
  return out;
}

std::string Plural(int64_t n, std::string_view one) {
  return std::to_string(n) + " " + std::string(one) + (n == 1 ? "" : "s");
}

bool WantedPart(std::string_view name) {
  return name == "mimetype" || name.ends_with(".xml") || name.ends_with(".rels");
}

}  // namespace

FileKind OfficeKind(int fd, const Limits& limits) {
  auto parts = ReadZip(fd, limits,
                       [](std::string_view n) { return n == "mimetype" || n == kContentTypes; },
                       "office document");
  if (!parts) return FileKind::kUnknown;
  std::string main_part;
  return KindOfParts(*parts, &main_part);
}

Result<Extracted> ExtractOffice(int fd, FileKind kind, const Limits& limits) {
  std::string_view label = KindLabel(kind);
  auto parts_or = ReadZip(fd, limits, WantedPart, label);
  if (!parts_or) return parts_or.status();
  const Parts& parts = *parts_or;
  std::string main_part;
  if (KindOfParts(parts, &main_part) != kind) return InvalidArgument(kInvalidFormat);
  auto main = parts.find(main_part);
  if (main == parts.end()) {
    return InvalidArgument("Invalid " + std::string(label) + ": " + main_part + " is missing");
  }
  Extracted out;
  switch (kind) {
    case FileKind::kDocx: {
      DocxHandler h;
      CONVEYOR_RETURN_IF_ERROR(WalkXml(main->second, main_part, label, &h));
      out.text = h.sink_.Take();
      out.tables = h.tables_;
      break;
    }
    case FileKind::kXlsx: {
      auto rels = ReadRels(parts, main_part, label);
      if (!rels) return rels.status();
      SharedStringsHandler strings;
      // The shared strings part is named by the workbook's relationships;
      // xl/sharedStrings.xml is what every producer calls it.
      std::string shared_part = DirOf(main_part) + "sharedStrings.xml";
      for (const auto& [id, target] : *rels) {
        if (target.ends_with("sharedStrings.xml")) shared_part = target;
      }
      if (auto it = parts.find(shared_part); it != parts.end()) {
        CONVEYOR_RETURN_IF_ERROR(WalkXml(it->second, it->first, label, &strings));
      }
      ListHandler sheets("sheet");
      CONVEYOR_RETURN_IF_ERROR(WalkXml(main->second, main_part, label, &sheets));
      std::vector<std::string> names;
      std::vector<std::vector<std::vector<std::string>>> records;
      for (const auto& [name, id] : sheets.items) {
        auto target = rels->find(id);
        if (target == rels->end()) continue;
        auto part = parts.find(target->second);
        if (part == parts.end()) continue;  // a chart sheet or a missing part
        SheetHandler sheet(strings.strings);
        CONVEYOR_RETURN_IF_ERROR(WalkXml(part->second, part->first, label, &sheet));
        names.push_back(name);
        records.push_back(std::move(sheet.records));
      }
      out.sheets = static_cast<int64_t>(records.size());
      out.text = SheetsText(names, records);
      out.description = "Excel workbook with " + Plural(out.sheets, "sheet") +
                        (names.empty() ? std::string(".") : ": " + JoinNames(names) + ".");
      break;
    }
    case FileKind::kPptx: {
      auto rels = ReadRels(parts, main_part, label);
      if (!rels) return rels.status();
      ListHandler slides("sldId");
      CONVEYOR_RETURN_IF_ERROR(WalkXml(main->second, main_part, label, &slides));
      std::string text;
      for (const auto& [unused, id] : slides.items) {
        auto target = rels->find(id);
        if (target == rels->end()) continue;
        auto part = parts.find(target->second);
        if (part == parts.end()) continue;
        SlideHandler slide;
        CONVEYOR_RETURN_IF_ERROR(WalkXml(part->second, part->first, label, &slide));
        ++out.slides;
        out.tables += slide.tables_;
        if (!text.empty()) text += '\n';
        text += "Slide " + std::to_string(out.slides) + "\n" + slide.sink_.Take();
      }
      out.text = std::move(text);
      break;
    }
    case FileKind::kOdt:
    case FileKind::kOds:
    case FileKind::kOdp: {
      OdfHandler h(kind);
      CONVEYOR_RETURN_IF_ERROR(WalkXml(main->second, main_part, label, &h));
      if (kind == FileKind::kOds) {
        out.sheets = static_cast<int64_t>(h.sheet_records.size());
        out.text = SheetsText(h.sheet_names, h.sheet_records);
        out.description = "OpenDocument spreadsheet with " + Plural(out.sheets, "sheet") +
                          (h.sheet_names.empty() ? std::string(".")
                                                 : ": " + JoinNames(h.sheet_names) + ".");
      } else {
        out.text = h.Take();
        out.slides = h.slides;
        if (kind == FileKind::kOdt) out.tables = h.tables;
      }
      break;
    }
    default:
      return InvalidArgument(kInvalidFormat);
  }
  return out;
}

}  // namespace conveyor::processing::internal
