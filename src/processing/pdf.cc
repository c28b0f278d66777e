// PDF text with poppler-cpp.
#include "processing/internal/pdf.h"

#include <poppler-document.h>
#include <poppler-global.h>
#include <poppler-page.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string_view>

#include "processing/internal/sniff.h"
#include "processing/internal/text_util.h"

namespace conveyor::processing::internal {
namespace {

// Where "%%EOF" must appear, counted back from the end of the file once
// trailing whitespace and NULs are set aside: Acrobat's own tolerance for
// trailing junk after the marker.
constexpr size_t kEofWindowBytes = 1024;

void IgnorePopplerMessage(const std::string&, void*) {}

// poppler prints syntax warnings to stderr unless given a sink; the sink is a
// process-wide library setting, installed once.
void SilencePoppler() {
  static std::once_flag once;
  std::call_once(once, [] { poppler::set_debug_error_function(IgnorePopplerMessage, nullptr); });
}

}  // namespace

bool HasEofMarker(std::string_view pdf) {
  // Writers and transfer tools pad files with whitespace or NULs (a file
  // system block, a mail gateway); poppler, pdf.js and Acrobat skip that
  // padding, however long, before looking for the end of the document. The
  // scan is over bytes already in memory and bounded by the input limit.
  size_t end = pdf.size();
  while (end > 0) {
    char c = pdf[end - 1];
    if (c != ' ' && c != '\t' && c != '\r' && c != '\n' && c != '\f' && c != '\0') break;
    --end;
  }
  size_t from = end > kEofWindowBytes ? end - kEofWindowBytes : 0;
  return pdf.substr(from, end - from).find("%%EOF") != std::string_view::npos;
}

namespace {
}  // namespace

Result<Extracted> ExtractPdf(int fd, const Limits& limits) {
  SilencePoppler();
  // The whole file in memory (at most the input limit): poppler reads it
  // from there, so the parser needs no path to the upload.
  int64_t size = 0;
  auto bytes = ReadHead(fd, static_cast<size_t>(std::max<int64_t>(limits.max_input_bytes, 0)), &size);
  if (!bytes) return bytes.status();
  if (size > static_cast<int64_t>(bytes->size()) || bytes->size() > static_cast<size_t>(INT_MAX)) {
    return ResourceExhausted("PDF is over the processing limit");
  }
  if (!HasEofMarker(*bytes)) return InvalidArgument("Invalid PDF: truncated (no %%EOF marker)");
  Extracted out;
  try {
    std::unique_ptr<poppler::document> doc(poppler::document::load_from_raw_data(
        bytes->data(), static_cast<int>(bytes->size())));
    if (!doc) return InvalidArgument("Invalid file format");
    if (doc->is_locked() || doc->is_encrypted()) {
      return InvalidArgument("Encrypted PDF is not supported");
    }
    int pages = doc->pages();
    if (pages <= 0) return InvalidArgument("Invalid PDF: no pages");
    out.pages = pages;
    const size_t max_text = static_cast<size_t>(limits.max_text_bytes);
    for (int i = 0; i < pages && out.text.size() < max_text; ++i) {
      std::unique_ptr<poppler::page> page(doc->create_page(i));
      if (!page) continue;
      poppler::byte_array utf8 = page->text().to_utf8();
      std::string text(utf8.begin(), utf8.end());
      // Page text comes with form feeds and CRLF from some producers.
      std::string clean;
      clean.reserve(text.size());
      for (size_t k = 0; k < text.size(); ++k) {
        char c = text[k];
        if (c == '\r') {
          if (k + 1 < text.size() && text[k + 1] == '\n') continue;
          c = '\n';
        }
        if (c == '\f') c = '\n';
        clean += c;
      }
      if (!out.text.empty()) out.text += "\n\n";
      out.text += clean;
    }
  } catch (const std::exception& e) {
    return InvalidArgument("Invalid PDF: " + std::string(e.what()));
  } catch (...) {
    return InvalidArgument("Invalid file format");
  }
  if (!IsValidUtf8(out.text, false)) return InvalidArgument("Invalid file format");
  return out;
}

}  // namespace conveyor::processing::internal
