// Encoding detection and conversion to UTF-8 with iconv.
#include "processing/internal/encoding.h"

#include <iconv.h>

#include <cerrno>

#include "processing/internal/text_util.h"

namespace conveyor::processing::internal {
namespace {

// Bytes looked at to decide whether BOM-less UTF-16 is likely.
constexpr size_t kUtf16ProbeBytes = 4096;

constexpr char kReplacement[] = "\xEF\xBF\xBD";  // U+FFFD

// Windows-1252 leaves these undefined; a file holding one is read as ISO-8859-1.
bool UndefinedInCp1252(unsigned char c) {
  return c == 0x81 || c == 0x8D || c == 0x8F || c == 0x90 || c == 0x9D;
}

// Converts with iconv, replacing what it rejects. `unit` is the width in
// bytes skipped past a malformed sequence.
std::string Iconv(iconv_t cd, std::string_view bytes, size_t unit) {
  std::string out;
  out.resize(bytes.size() * 2 + 16);
  char* in = const_cast<char*>(bytes.data());
  size_t in_left = bytes.size();
  size_t used = 0;
  while (in_left > 0) {
    char* dst = out.data() + used;
    size_t dst_left = out.size() - used;
    size_t r = iconv(cd, &in, &in_left, &dst, &dst_left);
    used = out.size() - dst_left;
    if (r != static_cast<size_t>(-1)) break;
    if (errno == E2BIG) {
      out.resize(out.size() * 2);
    } else if (errno == EILSEQ) {
      size_t skip = std::min(unit, in_left);
      in += skip;
      in_left -= skip;
      if (out.size() - used < 3) out.resize(out.size() * 2);
      out.replace(used, 3, kReplacement, 3);
      used += 3;
    } else {
      break;  // EINVAL: incomplete sequence at the end
    }
  }
  out.resize(used);
  return out;
}

}  // namespace

std::string_view EncodingName(TextEncoding e) {
  switch (e) {
    case TextEncoding::kUtf8: return "utf-8";
    case TextEncoding::kUtf16Le: return "utf-16le";
    case TextEncoding::kUtf16Be: return "utf-16be";
    case TextEncoding::kLatin1: return "latin1";
  }
  return "utf-8";
}

std::optional<std::string> ConvertCharset(std::string_view bytes, const char* charset) {
  iconv_t cd = iconv_open("UTF-8", charset);
  if (cd == reinterpret_cast<iconv_t>(-1)) return std::nullopt;
  std::string out = Iconv(cd, bytes, 1);
  iconv_close(cd);
  return out;
}

CharsetConverter::~CharsetConverter() {
  if (cd_ != nullptr) iconv_close(static_cast<iconv_t>(cd_));
}

std::optional<std::string> CharsetConverter::Convert(std::string_view bytes,
                                                     const std::string& charset) {
  if (charset != charset_) {
    if (cd_ != nullptr) iconv_close(static_cast<iconv_t>(cd_));
    iconv_t cd = iconv_open("UTF-8", charset.c_str());
    cd_ = cd == reinterpret_cast<iconv_t>(-1) ? nullptr : cd;
    charset_ = charset;
  }
  if (cd_ == nullptr) return std::nullopt;
  iconv_t cd = static_cast<iconv_t>(cd_);
  iconv(cd, nullptr, nullptr, nullptr, nullptr);  // back to the initial state
  return Iconv(cd, bytes, 1);
}

std::string ToUtf8(std::string_view bytes, TextEncoding from) {
  switch (from) {
    case TextEncoding::kUtf8: {
      std::string_view s = StripBom(bytes);
      if (IsValidUtf8(s, false)) return std::string(s);
      // Repair rather than refuse: a stray byte in a long UTF-8 file.
      auto fixed = ConvertCharset(s, "UTF-8");
      return fixed ? *fixed : std::string(s);
    }
    case TextEncoding::kUtf16Le:
    case TextEncoding::kUtf16Be: {
      iconv_t cd = iconv_open("UTF-8", from == TextEncoding::kUtf16Le ? "UTF-16LE" : "UTF-16BE");
      if (cd == reinterpret_cast<iconv_t>(-1)) return {};
      std::string out = Iconv(cd, bytes, 2);
      iconv_close(cd);
      return std::string(StripBom(out));
    }
    case TextEncoding::kLatin1: {
      bool cp1252 = true;
      for (unsigned char c : bytes) {
        if (UndefinedInCp1252(c)) {
          cp1252 = false;
          break;
        }
      }
      auto out = ConvertCharset(bytes, cp1252 ? "CP1252" : "ISO-8859-1");
      return out ? *out : std::string();
    }
  }
  return {};
}

std::optional<TextEncoding> DetectEncoding(std::string_view head, bool truncated) {
  if (head.empty()) return std::nullopt;
  auto decoded_is_text = [&](TextEncoding e) {
    // A window cut from a longer file may end mid-character; ToUtf8 drops it.
    std::string text = ToUtf8(head, e);
    return LooksLikeText(text, truncated);
  };
  if (head.starts_with("\xEF\xBB\xBF")) {
    if (LooksLikeText(head.substr(3), truncated)) return TextEncoding::kUtf8;
    return std::nullopt;
  }
  if (head.starts_with("\xFF\xFE") || head.starts_with("\xFE\xFF")) {
    TextEncoding e = head[0] == '\xFF' ? TextEncoding::kUtf16Le : TextEncoding::kUtf16Be;
    // UTF-32LE's BOM starts like UTF-16LE's; that is not supported.
    if (head.starts_with(std::string_view("\xFF\xFE\0\0", 4))) return std::nullopt;
    if (decoded_is_text(e)) return e;
    return std::nullopt;
  }
  if (LooksLikeText(head, truncated)) return TextEncoding::kUtf8;
  // BOM-less UTF-16: text that is mostly ASCII has a NUL in every other byte.
  std::string_view probe = head.substr(0, std::min(head.size(), kUtf16ProbeBytes));
  if (probe.size() >= 4) {
    size_t zero_even = 0, zero_odd = 0, pairs = probe.size() / 2;
    for (size_t i = 0; i + 1 < probe.size(); i += 2) {
      zero_even += probe[i] == '\0';
      zero_odd += probe[i + 1] == '\0';
    }
    if (zero_odd * 10 >= pairs * 6 && zero_even * 20 <= pairs) {
      if (decoded_is_text(TextEncoding::kUtf16Le)) return TextEncoding::kUtf16Le;
    } else if (zero_even * 10 >= pairs * 6 && zero_odd * 20 <= pairs) {
      if (decoded_is_text(TextEncoding::kUtf16Be)) return TextEncoding::kUtf16Be;
    }
  }
  // Latin-1: any byte sequence decodes, so ask for no NUL and the text check
  // (rare control characters) on the result. Bytes 0x80..0x9F are C1 controls
  // in ISO-8859-1 but printable in Windows-1252, which is what such files are.
  if (head.find('\0') == std::string_view::npos && decoded_is_text(TextEncoding::kLatin1)) {
    return TextEncoding::kLatin1;
  }
  return std::nullopt;
}

}  // namespace conveyor::processing::internal
