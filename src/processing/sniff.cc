// Sniff: a file's kind from its content.
//
// libmagic recognises binary formats by their signatures: PDF, PNG/JPEG/TIFF
// and zip (whose entries then tell DOCX/XLSX/PPTX/ODF apart, see office.h);
// other signatures it knows are formats we do not support. What may be text
// must decode in one of our encodings (UTF-8, UTF-16, Latin-1) and look like
// text once decoded; RTF and HTML are told by how they open. Among the rest,
// JSON is decided by parsing,
// markdown by its markers, CSV by consistent field counts; the client's file
// name only breaks the tie between plain text and markdown (and lets a short
// table count as CSV).
#include <fcntl.h>
#include <sys/stat.h>
#include <magic.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <regex>

#include "processing/internal/html.h"
#include "processing/internal/office.h"
#include "processing/internal/sniff.h"
#include "processing/internal/text_util.h"
#include "processing/processing.h"

namespace conveyor::processing {
namespace internal {
namespace {

// libmagic only needs the head of a file; its own default is 1 MiB but the
// signatures we care about sit in the first bytes.
constexpr size_t kMagicBytes = 64 << 10;

// Mime types libmagic gives to text and to things it cannot name; anything
// else is a format it recognised and we do not support.
bool MimeMayBeText(std::string_view mime) {
  return mime.starts_with("text/") || mime == "application/json" || mime == "application/csv" ||
         mime == "application/x-ndjson" || mime == "application/octet-stream" ||
         mime == "application/javascript" || mime == "application/x-empty" ||
         mime == "inode/x-empty";
}

// One magic_t per thread: libmagic handles are not thread-safe, and loading
// the database once per thread is cheaper than a lock on every sniff.
//
// libmagic's text tests are off: on text they run its language patterns
// (regular expressions over the buffer) and answer text/* or JSON or CSV,
// which Classify decides itself; text then comes back as
// application/octet-stream. Its other tests still name the formats we
// refuse, text-shaped ones included (SVG, PostScript). That takes a 2 KiB
// text file from about 2.6 ms to 0.5 ms.
class MagicHandle {
 public:
  MagicHandle() {
    cookie_ = magic_open(MAGIC_MIME_TYPE | MAGIC_ERROR | MAGIC_NO_CHECK_TEXT |
                         MAGIC_NO_CHECK_ENCODING | MAGIC_NO_CHECK_JSON | MAGIC_NO_CHECK_CSV);
    if (cookie_ != nullptr && magic_load(cookie_, nullptr) != 0) {
      magic_close(cookie_);
      cookie_ = nullptr;
    }
  }
  ~MagicHandle() {
    if (cookie_ != nullptr) magic_close(cookie_);
  }
  MagicHandle(const MagicHandle&) = delete;
  MagicHandle& operator=(const MagicHandle&) = delete;

  // The MIME type, or empty when libmagic is unavailable.
  std::string MimeType(std::string_view bytes) {
    if (cookie_ == nullptr) return {};
    const char* m = magic_buffer(cookie_, bytes.data(), bytes.size());
    return m != nullptr ? std::string(m) : std::string();
  }

 private:
  magic_t cookie_ = nullptr;
};

// Binary formats told by libmagic's MIME type or, failing that, their first
// bytes.
struct Signature {
  std::string_view mime;
  std::string_view magic;
  FileKind kind;
};
constexpr Signature kSignatures[] = {
    {"application/pdf", "%PDF-", FileKind::kPdf},
    {"image/png", "\x89PNG\r\n\x1a\n", FileKind::kImage},
    {"image/jpeg", "\xFF\xD8\xFF", FileKind::kImage},
    {"image/tiff", std::string_view("II*\0", 4), FileKind::kImage},
    {"image/tiff", std::string_view("MM\0*", 4), FileKind::kImage},
};

std::string LowerExtension(const std::string& name) {
  size_t dot = name.find_last_of('.');
  if (dot == std::string::npos || name.find('/', dot) != std::string::npos) return {};
  std::string ext = name.substr(dot + 1);
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return ext;
}

// True when `s` (after leading whitespace) is JSON, or is evidently meant to
// be JSON and broken. The second case makes Run report "Invalid JSON: ..."
// rather than summarising a broken document as text.
bool LooksLikeJson(std::string_view s, bool truncated, bool name_says_json) {
  size_t start = s.find_first_not_of(" \t\r\n");
  if (start == std::string_view::npos) return false;
  s.remove_prefix(start);
  char first = s[0];
  if (first != '{' && first != '[') return false;
  try {
    auto doc = nlohmann::json::parse(s.begin(), s.end());
    (void)doc;
    return true;
  } catch (const nlohmann::json::parse_error& e) {
    // A window cut from a longer file fails only at its end when what came
    // before was well-formed.
    if (truncated && e.byte >= s.size()) return true;
  } catch (const nlohmann::json::exception&) {
    return false;
  }
  if (name_says_json || first == '{') return true;
  // '[' also opens markdown links and "[1] footnotes"; call it JSON only when
  // what follows is a JSON value's start.
  size_t next = s.find_first_not_of(" \t\r\n", 1);
  if (next == std::string_view::npos) return true;
  char c = s[next];
  return c == '{' || c == '[' || c == '"' || c == ']';
}

struct MarkdownSignals {
  int headings = 0;
  int list_items = 0;
  int links = 0;
  int fences = 0;
  int emphasis = 0;
  int quotes = 0;
  int table_rules = 0;

  int Kinds() const {
    return (headings > 0) + (list_items > 0) + (links > 0) + (fences > 0) + (emphasis > 0) +
           (quotes > 0) + (table_rules > 0);
  }
  // Enough to call it markdown whatever the name says.
  bool Strong() const {
    return table_rules > 0 || fences >= 2 || headings >= 2 || Kinds() >= 2 ||
           (headings >= 1 && list_items >= 1);
  }
};

MarkdownSignals ScanMarkdown(std::string_view s) {
  static const std::regex kHeading(R"(^#{1,6} \S)");
  static const std::regex kListItem(R"(^\s{0,3}([-*+]|\d{1,3}[.)]) \S)");
  static const std::regex kLink(R"(\[[^\]\n]+\]\([^)\s]+\))");
  static const std::regex kEmphasis(R"((\*\*|__)[^*_\n]+(\*\*|__))");
  static const std::regex kTableRule(R"(^\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)+\|?\s*$)");
  MarkdownSignals m;
  size_t pos = 0;
  int lines = 0;
  // Enough lines to judge; regexes over a whole megabyte would be slow.
  constexpr int kMaxLines = 400;
  while (pos < s.size() && lines < kMaxLines) {
    size_t end = s.find('\n', pos);
    if (end == std::string_view::npos) end = s.size();
    std::string line(s.substr(pos, end - pos));
    if (!line.empty() && line.back() == '\r') line.pop_back();
    pos = end + 1;
    ++lines;
    if (line.size() > 2000) continue;
    if (line.starts_with("```") || line.starts_with("~~~")) ++m.fences;
    if (line.starts_with("> ")) ++m.quotes;
    // Each pattern runs only on a line holding what it cannot match
    // without: most lines of most files hold none of it.
    const size_t lead = line.find_first_not_of(" \t\n\v\f\r");
    const bool list_lead =
        lead != std::string::npos && lead <= 3 &&
        std::string_view("-*+0123456789").find(line[lead]) != std::string_view::npos;
    if (line.starts_with('#') && std::regex_search(line, kHeading)) ++m.headings;
    if (list_lead && std::regex_search(line, kListItem)) ++m.list_items;
    if (line.find("](") != std::string::npos && std::regex_search(line, kLink)) ++m.links;
    if ((line.find("**") != std::string::npos || line.find("__") != std::string::npos) &&
        std::regex_search(line, kEmphasis)) {
      ++m.emphasis;
    }
    if (line.find("---") != std::string::npos && std::regex_search(line, kTableRule)) {
      ++m.table_rules;
    }
  }
  return m;
}

}  // namespace

Classification Classify(std::string_view head, bool truncated, const std::string& name_hint) {
  Classification c;
  if (head.empty()) return c;
  c.mime = MagicMime(head.substr(0, std::min(head.size(), kMagicBytes)));
  for (const auto& sig : kSignatures) {
    if (c.mime == sig.mime || (!sig.magic.empty() && head.starts_with(sig.magic))) {
      c.kind = sig.kind;
      return c;
    }
  }
  if (c.mime == "application/zip" || c.mime.starts_with("application/vnd.openxmlformats") ||
      c.mime.starts_with("application/vnd.oasis.opendocument") ||
      head.starts_with(std::string_view("PK\x03\x04", 4))) {
    c.zip = true;
    return c;
  }
  if (c.mime == "application/encrypted") {
    // Office's password protection wraps the document in an encrypted
    // compound file.
    c.reason = "Encrypted documents are not supported";
    return c;
  }
  if (head.starts_with("{\\rtf")) {
    c.kind = FileKind::kRtf;
    return c;
  }
  if (!c.mime.empty() && !MimeMayBeText(c.mime)) return c;
  auto encoding = DetectEncoding(head, truncated);
  if (!encoding) return c;
  c.encoding = *encoding;
  std::string decoded;
  std::string_view text = StripBom(head);
  if (*encoding != TextEncoding::kUtf8) {
    decoded = ToUtf8(head, *encoding);
    text = decoded;
  }
  if (LooksLikeHtml(text)) {
    c.kind = FileKind::kHtml;
    return c;
  }
  if (text.find_first_not_of(" \t\r\n\f\v") == std::string_view::npos) {
    c.kind = FileKind::kText;  // whitespace only: text, with nothing to say
    return c;
  }
  std::string ext = LowerExtension(name_hint);
  if (LooksLikeJson(text, truncated, ext == "json" || ext == "jsonl" || ext == "ndjson")) {
    c.kind = FileKind::kJson;
    return c;
  }
  MarkdownSignals md = ScanMarkdown(text);
  bool name_says_markdown = ext == "md" || ext == "markdown" || ext == "mdown";
  if (md.Strong()) {
    c.kind = FileKind::kMarkdown;
    return c;
  }
  char delimiter = DetectCsvDelimiter(text, truncated, ext == "csv" || ext == "tsv");
  if (delimiter != '\0') {
    c.kind = FileKind::kCsv;
    c.csv_delimiter = delimiter;
    return c;
  }
  // Plain text is valid markdown: the name decides between the two.
  c.kind = name_says_markdown ? FileKind::kMarkdown : FileKind::kText;
  return c;
}

std::string MagicMime(std::string_view bytes) {
  thread_local MagicHandle handle;
  return handle.MimeType(bytes);
}

Result<Classification> ClassifyFile(int fd, const std::string& name_hint, const Limits& limits,
                                    int64_t* file_size) {
  int64_t size = 0;
  auto head = ReadHead(fd, kSniffBytes, &size);
  if (!head) return head.status();
  if (file_size != nullptr) *file_size = size;
  bool truncated = size > static_cast<int64_t>(head->size());
  Classification c = Classify(*head, truncated, name_hint);
  if (c.zip) c.kind = OfficeKind(fd, limits);
  return c;
}

Result<UniqueFd> OpenForReading(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    std::string msg = "open " + path + ": " + std::strerror(err);
    // A missing upload will not appear by retrying.
    if (err == ENOENT || err == ENOTDIR || err == EISDIR) return FailedPrecondition(msg);
    return Unavailable(msg);
  }
  return UniqueFd(fd);
}

Result<std::string> ReadHead(int fd, size_t max_bytes, int64_t* file_size) {
  // Size the buffer by the file, not by the cap: callers pass generous caps
  // (the whole processing limit) for small files.
  struct stat st;
  if (::fstat(fd, &st) != 0) return Unavailable(std::string("stat input: ") + std::strerror(errno));
  if (S_ISDIR(st.st_mode)) return FailedPrecondition("the input is a directory");
  if (S_ISREG(st.st_mode) && static_cast<uint64_t>(st.st_size) < max_bytes) {
    max_bytes = static_cast<size_t>(st.st_size);
  }
  std::string out;
  out.resize(max_bytes);
  size_t got = 0;
  while (got < max_bytes) {
    ssize_t n = ::pread(fd, out.data() + got, max_bytes - got, static_cast<off_t>(got));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Unavailable(std::string("read input: ") + std::strerror(errno));
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  out.resize(got);
  if (file_size != nullptr) {
    *file_size = S_ISREG(st.st_mode) ? static_cast<int64_t>(st.st_size) : static_cast<int64_t>(got);
  }
  return out;
}

}  // namespace internal

Result<FileKind> Sniff(const std::string& path, const std::string& name_hint) {
  auto fd = internal::OpenForReading(path);
  if (!fd) return fd.status();
  auto c = internal::ClassifyFile(fd->get(), name_hint, Limits(), nullptr);
  if (!c) return c.status();
  return c->kind;
}

}  // namespace conveyor::processing
