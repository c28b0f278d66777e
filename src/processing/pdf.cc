// PDF text with poppler-cpp.
#include "processing/internal/pdf.h"

#include <poppler-document.h>
#include <poppler-global.h>
#include <poppler-page.h>

#include <cstdio>
#include <memory>
#include <mutex>

#include "processing/internal/text_util.h"

namespace conveyor::processing::internal {
namespace {

// Where "%%EOF" must appear, counted from the end: Acrobat's own tolerance
// for trailing junk after the marker.
constexpr size_t kEofWindowBytes = 1024;

void IgnorePopplerMessage(const std::string&, void*) {}

// poppler prints syntax warnings to stderr unless given a sink; the sink is a
// process-wide library setting, installed once.
void SilencePoppler() {
  static std::once_flag once;
  std::call_once(once, [] { poppler::set_debug_error_function(IgnorePopplerMessage, nullptr); });
}

Result<bool> EndsWithEofMarker(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return FailedPrecondition("open " + path);
  std::string tail(kEofWindowBytes, '\0');
  size_t got = 0;
  bool ok = std::fseek(f, 0, SEEK_END) == 0;
  long size = ok ? std::ftell(f) : -1;
  if (ok && size >= 0) {
    long from = size > static_cast<long>(kEofWindowBytes) ? size - static_cast<long>(kEofWindowBytes) : 0;
    ok = std::fseek(f, from, SEEK_SET) == 0;
    if (ok) got = std::fread(tail.data(), 1, tail.size(), f);
  }
  std::fclose(f);
  if (!ok || size < 0) return Unavailable("read " + path);
  tail.resize(got);
  return tail.find("%%EOF") != std::string::npos;
}

}  // namespace

Result<Extracted> ExtractPdf(const std::string& path, const Limits& limits) {
  SilencePoppler();
  auto has_eof = EndsWithEofMarker(path);
  if (!has_eof) return has_eof.status();
  if (!*has_eof) return InvalidArgument("Invalid PDF: truncated (no %%EOF marker)");
  Extracted out;
  try {
    std::unique_ptr<poppler::document> doc(poppler::document::load_from_file(path));
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
