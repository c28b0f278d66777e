// File: processing/internal/encoding.h
//
// Text encodings: which one a file's bytes are in, and conversion to UTF-8
// (iconv from glibc).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace conveyor::processing::internal {

enum class TextEncoding {
  kUtf8,
  kUtf16Le,
  kUtf16Be,
  // ISO-8859-1, read as Windows-1252 (its superset that gives 0x80..0x9F
  // printable meanings: curly quotes, dashes, €) when no byte is undefined there.
  kLatin1,
};

// "utf-8", "utf-16le", "utf-16be", "latin1".
std::string_view EncodingName(TextEncoding e);

// The encoding `head` (a file's first bytes; `truncated` when the file goes
// on) is text in, or nullopt when it is not text in any of them. Order: a
// BOM; valid UTF-8; UTF-16 without BOM (NULs at every other byte of mostly
// ASCII text); Latin-1 (no NUL, few control characters). The decoded text
// must still look like text (LooksLikeText).
std::optional<TextEncoding> DetectEncoding(std::string_view head, bool truncated);

// `bytes` in `from`, as UTF-8 without a BOM. Malformed sequences become
// U+FFFD; an incomplete sequence at the very end is dropped.
std::string ToUtf8(std::string_view bytes, TextEncoding from);

// `bytes` in the iconv charset `charset` (e.g. "CP1252") as UTF-8, with
// U+FFFD for malformed input; nullopt when iconv does not know the charset.
std::optional<std::string> ConvertCharset(std::string_view bytes, const char* charset);

// ConvertCharset for many small pieces in one charset: the iconv descriptor
// is opened on first use and kept, reopened only when the charset changes
// (opening one costs far more than converting a few bytes). Each Convert
// starts from the initial shift state. Not copyable; one per reader.
class CharsetConverter {
 public:
  CharsetConverter() = default;
  ~CharsetConverter();
  CharsetConverter(const CharsetConverter&) = delete;
  CharsetConverter& operator=(const CharsetConverter&) = delete;

  // As ConvertCharset(bytes, charset).
  std::optional<std::string> Convert(std::string_view bytes, const std::string& charset);

 private:
  void* cd_ = nullptr;   // iconv_t, or nullptr when none is open
  std::string charset_;  // what cd_ converts from; with cd_ == nullptr, a charset iconv refused
};

}  // namespace conveyor::processing::internal
