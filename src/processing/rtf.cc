// RTF to text: a byte-at-a-time state machine (see internal/rtf.h).
#include "processing/internal/rtf.h"

#include <algorithm>
#include <array>
#include <cctype>

#include "processing/internal/encoding.h"

namespace conveyor::processing::internal {
namespace {

constexpr std::string_view kMagic = "{\\rtf";
// The RTF spec caps control words at 32 letters and parameters at a signed
// 16-bit value; longer ones are read and clamped, never stored whole.
constexpr size_t kMaxWordLetters = 32;
constexpr size_t kMaxParamDigits = 10;

// Destinations whose content is not body text.
constexpr std::array<std::string_view, 44> kSkippedDestinations = {
    "fonttbl",   "colortbl",   "stylesheet", "info",      "pict",       "header",   "headerl",
    "headerr",   "headerf",    "footer",     "footerl",   "footerr",    "footerf",  "listtable",
    "listoverridetable", "revtbl", "rsidtbl", "generator", "themedata", "colorschememapping",
    "datastore", "latentstyles", "xmlnstbl", "fldinst",  "object",     "objdata",  "filetbl",
    "pgdsctbl",  "private",    "userprops",  "docvar",    "template",   "nonshppict", "xe",
    "tc",        "bkmkstart",  "bkmkend",    "atnid",     "atnauthor",  "mmathPr",  "blipuid",
    "passwordhash", "wgrffmtfilter", "listtext"};

struct Replacement {
  std::string_view word;
  std::string_view text;
};
// Control words that stand for text.
constexpr std::array<Replacement, 14> kReplacements = {{
    {"par", "\n"},        {"line", "\n"},          {"sect", "\n"},      {"page", "\n"},
    {"tab", "\t"},           {"emdash", "\u2014"},
    {"endash", "\u2013"}, {"bullet", "\u2022"},    {"lquote", "\u2018"}, {"rquote", "\u2019"},
    {"ldblquote", "\u201C"}, {"rdblquote", "\u201D"}, {"emspace", " "}, {"enspace", " "},
}};

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool IsLetter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

}  // namespace

RtfReader::RtfReader(size_t max_text_bytes) : max_text_bytes_(max_text_bytes) {}

Status RtfReader::Feed(std::string_view bytes) {
  for (char c : bytes) {
    if (state_ == State::kDone) return OkStatus();  // after the document: ignored
    if (state_ == State::kFailed) return InvalidArgument("Invalid file format");
    if (header_.size() < kMagic.size()) {
      header_ += c;
      if (!kMagic.starts_with(header_)) {
        state_ = State::kFailed;
        return InvalidArgument("Invalid file format");
      }
    }
    Status s = Byte(c);
    if (!s.ok()) {
      state_ = State::kFailed;
      return s;
    }
  }
  return OkStatus();
}

Status RtfReader::Byte(char c) {
  switch (state_) {
    case State::kBinary:
      --binary_left_;
      if (binary_left_ <= 0) state_ = State::kText;
      return OkStatus();
    case State::kHex1:
      hex_high_ = HexValue(c);
      state_ = State::kHex2;
      if (hex_high_ < 0) {
        // A broken escape: drop it and read the byte as text.
        state_ = State::kText;
        return Byte(c);
      }
      return OkStatus();
    case State::kHex2: {
      state_ = State::kText;
      int low = HexValue(c);
      if (low < 0) return Byte(c);
      if (pending_skip_ > 0) {
        --pending_skip_;
        return OkStatus();
      }
      if (!Skipping()) CodepageByte(static_cast<unsigned char>(hex_high_ * 16 + low));
      return OkStatus();
    }
    case State::kEscape:
      if (IsLetter(c)) {
        word_.assign(1, c);
        param_.clear();
        state_ = State::kWord;
        return OkStatus();
      }
      state_ = State::kText;
      if (c == '\'') {
        state_ = State::kHex1;
        return OkStatus();
      }
      ControlSymbol(c);
      return OkStatus();
    case State::kWord:
      if (IsLetter(c) && param_.empty()) {
        if (word_.size() < kMaxWordLetters) word_ += c;
        return OkStatus();
      }
      if ((c == '-' && param_.empty()) || IsDigit(c)) {
        if (param_.size() < kMaxParamDigits) param_ += c;
        return OkStatus();
      }
      state_ = State::kText;
      ControlWord();
      // A space ends the word and belongs to it; anything else is read anew.
      if (c == ' ') return OkStatus();
      return Byte(c);
    case State::kText:
      break;
    case State::kDone:
    case State::kFailed:
      return OkStatus();
  }
  switch (c) {
    case '{':
      return OpenGroup();
    case '}':
      CloseGroup();
      return OkStatus();
    case '\\':
      state_ = State::kEscape;
      return OkStatus();
    case '\r':
    case '\n':
    case '\0':
      return OkStatus();  // line breaks in the file are not text
    default:
      Plain(c);
      return OkStatus();
  }
}

Status RtfReader::OpenGroup() {
  FlushBytes();
  pending_skip_ = 0;
  if (groups_.size() >= kMaxGroupDepth) {
    return InvalidArgument("Invalid RTF: groups nested deeper than " +
                           std::to_string(kMaxGroupDepth) + " levels");
  }
  Group g = groups_.empty() ? Group() : groups_.back();
  groups_.push_back(g);
  destination_next_ = false;
  return OkStatus();
}

void RtfReader::CloseGroup() {
  FlushBytes();
  pending_skip_ = 0;
  destination_next_ = false;
  if (groups_.empty()) return;
  groups_.pop_back();
  if (groups_.empty()) {
    closed_ = true;
    state_ = State::kDone;
  }
}

void RtfReader::ControlSymbol(char c) {
  switch (c) {
    case '\\':
    case '{':
    case '}':
      Plain(c);
      return;
    case '~':
      FlushBytes();
      if (!Skipping()) Emit("\u00A0");
      return;
    case '_':
      FlushBytes();
      if (!Skipping()) Emit("\u2011");
      return;
    case '*':
      // {\* \dest ...}: a destination a reader may ignore; we ignore them all.
      if (!groups_.empty()) groups_.back().skip = true;
      return;
    case '\r':
    case '\n':
      FlushBytes();
      if (!Skipping()) Emit("\n");
      return;
    default:
      return;  // \- (optional hyphen), \| and the like: nothing to show
  }
}

void RtfReader::ControlWord() {
  const std::string& w = word_;
  bool has_param = !param_.empty() && param_ != "-";
  long long param = 0;
  if (has_param) param = std::stoll(param_);
  if (w == "bin") {
    FlushBytes();
    if (param > 0) {
      binary_left_ = param;
      state_ = State::kBinary;
    }
    return;
  }
  if (w == "u") {
    FlushBytes();
    // \uN is a signed 16-bit value: negative numbers stand for N + 65536.
    long long v = param < 0 ? param + 65536 : param;
    uint32_t cp = v >= 0 && v <= 0x10FFFF ? static_cast<uint32_t>(v) : 0xFFFD;
    if (!Skipping()) {
      if (cp >= 0xD800 && cp <= 0xDBFF) {
        if (high_surrogate_ != 0) {
          high_surrogate_ = 0;
          EmitCodePoint(0xFFFD);  // a high half not followed by its low half
        }
        high_surrogate_ = cp;
      } else if (cp >= 0xDC00 && cp <= 0xDFFF && high_surrogate_ != 0) {
        uint32_t high = high_surrogate_;
        high_surrogate_ = 0;
        EmitCodePoint(0x10000 + ((high - 0xD800) << 10) + (cp - 0xDC00));
      } else {
        EmitCodePoint(cp);
      }
    }
    pending_skip_ = groups_.empty() ? 1 : groups_.back().unicode_skip;
    return;
  }
  pending_skip_ = 0;
  if (w == "uc") {
    if (!groups_.empty()) groups_.back().unicode_skip = static_cast<int>(std::clamp(param, 0LL, 8LL));
    return;
  }
  if (w == "ansicpg" && has_param) {
    FlushBytes();
    codepage_ = static_cast<int>(std::clamp(param, 0LL, 99999LL));
    return;
  }
  if (w == "mac" || w == "pc" || w == "pca" || w == "ansi") {
    FlushBytes();
    codepage_ = w == "mac" ? 10000 : w == "pc" ? 437 : w == "pca" ? 850 : 1252;
    return;
  }
  if (std::find(kSkippedDestinations.begin(), kSkippedDestinations.end(), w) !=
      kSkippedDestinations.end()) {
    if (!groups_.empty()) groups_.back().skip = true;
    return;
  }
  if (w == "cell") {
    // The separator is written before the next cell's text, so a row does
    // not end in one (and text already produced is never taken back).
    FlushBytes();
    if (!Skipping()) cell_pending_ = true;
    return;
  }
  if (w == "row") {
    FlushBytes();
    if (!Skipping()) {
      cell_pending_ = false;
      Emit("\n");
    }
    return;
  }
  for (const auto& r : kReplacements) {
    if (r.word == w) {
      FlushBytes();
      if (!Skipping()) Emit(r.text);
      return;
    }
  }
  // Formatting words (\b, \fs24, \pard, ...) carry no text.
}

void RtfReader::Plain(char c) {
  unsigned char b = static_cast<unsigned char>(c);
  if (pending_skip_ > 0) {
    --pending_skip_;
    return;
  }
  if (Skipping()) return;
  if (b >= 0x80) {
    CodepageByte(b);  // raw 8-bit text is in the document's code page too
    return;
  }
  FlushBytes();
  char s[1] = {c};
  Emit(std::string_view(s, 1));
}

void RtfReader::CodepageByte(unsigned char b) { bytes_ += static_cast<char>(b); }

void RtfReader::FlushBytes() {
  if (bytes_.empty()) return;
  std::string charset = codepage_ == 10000 ? "MACINTOSH" : "CP" + std::to_string(codepage_);
  auto text = converter_.Convert(bytes_, charset);
  if (!text) text = ToUtf8(bytes_, TextEncoding::kLatin1);
  bytes_.clear();
  Emit(*text);
}

void RtfReader::Emit(std::string_view s) {
  if (high_surrogate_ != 0) {
    // A high half followed by something other than its low half.
    high_surrogate_ = 0;
    EmitCodePoint(0xFFFD);
  }
  if (cell_pending_ && s != "\n") {
    cell_pending_ = false;
    Emit(" | ");
  }
  if (out_.size() + s.size() > max_text_bytes_) {
    max_text_bytes_ = out_.size();  // full: nothing more is appended
    return;
  }
  out_.append(s);
}

void RtfReader::EmitCodePoint(uint32_t cp) {
  if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xFFFD;
  char buf[4];
  size_t n;
  if (cp < 0x80) {
    buf[0] = static_cast<char>(cp);
    n = 1;
  } else if (cp < 0x800) {
    buf[0] = static_cast<char>(0xC0 | (cp >> 6));
    buf[1] = static_cast<char>(0x80 | (cp & 0x3F));
    n = 2;
  } else if (cp < 0x10000) {
    buf[0] = static_cast<char>(0xE0 | (cp >> 12));
    buf[1] = static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    buf[2] = static_cast<char>(0x80 | (cp & 0x3F));
    n = 3;
  } else {
    buf[0] = static_cast<char>(0xF0 | (cp >> 18));
    buf[1] = static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    buf[2] = static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    buf[3] = static_cast<char>(0x80 | (cp & 0x3F));
    n = 4;
  }
  Emit(std::string_view(buf, n));
}

Result<std::string> RtfReader::Finish() {
  if (state_ == State::kFailed) return InvalidArgument("Invalid file format");
  if (header_.size() < kMagic.size()) return InvalidArgument("Invalid file format");
  if (state_ == State::kWord) {
    state_ = State::kText;
    ControlWord();
  }
  FlushBytes();
  if (high_surrogate_ != 0) {
    high_surrogate_ = 0;
    EmitCodePoint(0xFFFD);
  }
  if (!closed_) return InvalidArgument("Invalid RTF: truncated (a group is not closed)");
  return out_;
}

}  // namespace conveyor::processing::internal
