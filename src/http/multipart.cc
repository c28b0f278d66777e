// Design: the parser is a small state machine over the byte stream. The only
// state that spans chunks is (a) how many bytes of the delimiter
// "\r\n--boundary" matched at the end of the previous chunk and (b) the
// current part's header block, which is bounded by max_header_bytes. Because
// boundary characters never include CR, the delimiter holds exactly one CR (its
// first byte): a failed partial match can never hide the start of another one,
// so held-back bytes are always a prefix of delimiter_ and are re-emitted from
// it instead of being copied. The delimiter is found with
// memchr (Horspool where CR is dense), and the body bytes before it go to
// on_part_data as one slice per chunk, which keeps a 1 GiB upload near
// memory-bandwidth speed.
//
// The stream is parsed as if it began with "\r\n", so a body that opens with
// "--boundary" (no preamble, the usual case) matches the same delimiter as any
// later boundary.
#include "http/multipart.h"
#include "http/internal/ascii.h"

#include <algorithm>
#include <cstring>
#include <utility>
#include <vector>

namespace conveyor::http {

enum class MultipartParser::State {
  kPreamble,        // before the first delimiter; bytes are ignored
  kAfterDelimiter,  // a delimiter just matched: "--", padding or CRLF follows
  kCloseDash,       // saw the first '-' of the closing "--"
  kPadding,         // transport padding (SP / HT) before the CRLF
  kBoundaryLf,      // saw the CR ending a boundary line
  kHeaders,         // inside a part's header block
  kBody,            // inside a part's body
  kEpilogue,        // closing delimiter seen; everything else is ignored
};

namespace {

using internal::EqualsIgnoreCase;

constexpr size_t kMaxBoundaryLength = 70;  // RFC 2046 §5.1.1

bool IsBChar(char c) {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
  return std::strchr("'()+_,-./:=? ", c) != nullptr && c != '\0';
}

bool IsValidBoundary(std::string_view b) {
  if (b.empty() || b.size() > kMaxBoundaryLength || b.back() == ' ') return false;
  return std::all_of(b.begin(), b.end(), IsBChar);
}

bool IsTChar(char c) {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
  return std::strchr("!#$%&'*+-.^_`|~", c) != nullptr && c != '\0';
}

bool IsOws(char c) { return c == ' ' || c == '\t'; }

char ToLowerAscii(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string LowerAscii(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = ToLowerAscii(c);
  return out;
}

std::string_view TrimOws(std::string_view s) {
  while (!s.empty() && IsOws(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsOws(s.back())) s.remove_suffix(1);
  return s;
}

struct Param {
  std::string name;  // lower-cased
  std::string value;
  bool quoted = false;
};

// Parses `; name=value` pairs (RFC 9110 §5.6.6, values token or
// quoted-string). Inside a quoted string a backslash escapes only '"' and '\':
// browsers send Windows paths with literal backslashes in filename=.
Result<std::vector<Param>> ParseParams(std::string_view s) {
  std::vector<Param> params;
  size_t i = 0;
  auto skip_ows = [&] {
    while (i < s.size() && IsOws(s[i])) ++i;
  };
  while (true) {
    skip_ows();
    if (i == s.size()) break;
    if (s[i] != ';') return InvalidArgument("expected ';' between parameters");
    ++i;
    skip_ows();
    if (i == s.size()) break;  // a trailing ';' is harmless
    size_t name_start = i;
    while (i < s.size() && IsTChar(s[i])) ++i;
    if (i == name_start) return InvalidArgument("empty parameter name");
    Param p;
    p.name = LowerAscii(s.substr(name_start, i - name_start));
    skip_ows();
    if (i == s.size() || s[i] != '=') return InvalidArgument("parameter without '='");
    ++i;
    skip_ows();
    if (i < s.size() && s[i] == '"') {
      p.quoted = true;
      ++i;
      bool closed = false;
      while (i < s.size()) {
        char c = s[i++];
        if (c == '"') {
          closed = true;
          break;
        }
        if (c == '\\' && i < s.size() && (s[i] == '"' || s[i] == '\\')) c = s[i++];
        p.value.push_back(c);
      }
      if (!closed) return InvalidArgument("unterminated quoted string");
    } else {
      size_t value_start = i;
      while (i < s.size() && s[i] != ';') ++i;
      p.value = std::string(TrimOws(s.substr(value_start, i - value_start)));
      if (p.value.find('"') != std::string::npos) {
        return InvalidArgument("stray quote in parameter value");
      }
    }
    params.push_back(std::move(p));
  }
  return params;
}

// A header line may hold HT and any byte >= 0x20 except DEL; bytes >= 0x80 are
// allowed because browsers send raw UTF-8 file names.
bool IsValidHeaderLine(std::string_view line) {
  for (char ch : line) {
    auto c = static_cast<unsigned char>(ch);
    if ((c < 0x20 && c != '\t') || c == 0x7f) return false;
  }
  return true;
}

struct HeaderField {
  std::string name;  // lower-cased
  std::string value;
};

// `block` is a header block without its final blank line: lines separated by
// CRLF, or empty.
Result<PartHeaders> ParsePartHeaders(std::string_view block) {
  std::vector<HeaderField> fields;
  while (!block.empty()) {
    size_t eol = block.find("\r\n");
    std::string_view line = block.substr(0, eol);
    block = eol == std::string_view::npos ? std::string_view() : block.substr(eol + 2);
    if (!IsValidHeaderLine(line)) return InvalidArgument("control character in part header");
    if (line.empty()) return InvalidArgument("empty part header line");  // unreachable
    if (IsOws(line.front())) {
      // Obsolete line folding (RFC 5322 §2.2.3): continues the previous field.
      if (fields.empty()) return InvalidArgument("part header starts with whitespace");
      fields.back().value += ' ';
      fields.back().value += TrimOws(line);
      continue;
    }
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) return InvalidArgument("part header line without ':'");
    std::string_view name = line.substr(0, colon);
    if (name.empty() || !std::all_of(name.begin(), name.end(), IsTChar)) {
      return InvalidArgument("invalid part header name");
    }
    fields.push_back({LowerAscii(name), std::string(TrimOws(line.substr(colon + 1)))});
  }

  PartHeaders headers;
  bool have_disposition = false;
  bool have_type = false;
  for (HeaderField& f : fields) {
    if (f.name == "content-type") {
      if (have_type) return InvalidArgument("duplicate Content-Type in part");
      have_type = true;
      headers.content_type = std::string(TrimOws(f.value));
    } else if (f.name == "content-disposition") {
      if (have_disposition) return InvalidArgument("duplicate Content-Disposition in part");
      have_disposition = true;
      std::string_view v = f.value;
      size_t semi = v.find(';');
      std::string_view type = TrimOws(v.substr(0, semi));
      if (!EqualsIgnoreCase(type, "form-data")) {
        return InvalidArgument("part disposition is not form-data");
      }
      auto params = ParseParams(semi == std::string_view::npos ? "" : v.substr(semi));
      if (!params) return params.status();
      bool have_name = false;
      for (Param& p : *params) {
        // filename* (RFC 5987) is ignored: RFC 7578 §4.2 forbids it in
        // form-data, and the plain filename is what browsers send.
        if (p.name == "name") {
          if (have_name) return InvalidArgument("duplicate name parameter");
          have_name = true;
          headers.name = std::move(p.value);
        } else if (p.name == "filename") {
          if (headers.filename) return InvalidArgument("duplicate filename parameter");
          headers.filename = std::move(p.value);
        }
      }
      if (headers.name.empty()) return InvalidArgument("part without a field name");
    }
  }
  if (!have_disposition) return InvalidArgument("part without Content-Disposition");
  return headers;
}

}  // namespace

MultipartParser::MultipartParser(std::string boundary, MultipartLimits limits,
                                 MultipartCallbacks callbacks)
    : delimiter_("\r\n--" + boundary),
      limits_(limits),
      cb_(std::move(callbacks)),
      state_(State::kPreamble),
      match_(2) {  // the virtual "\r\n" before the first byte; see the top
  if (!IsValidBoundary(boundary)) {
    Fail(InvalidArgument("invalid multipart boundary"));
    delimiter_ = "\r\n--x";  // keeps FindDelimiter's invariants; never used
  }
  const size_t dlen = delimiter_.size();
  skip_.fill(static_cast<uint8_t>(dlen));
  for (size_t i = 0; i + 1 < dlen; ++i) {
    skip_[static_cast<unsigned char>(delimiter_[i])] = static_cast<uint8_t>(dlen - 1 - i);
  }
}

bool MultipartParser::done() const { return state_ == State::kEpilogue; }

void MultipartParser::Fail(Status s) {
  if (status_.ok()) status_ = std::move(s);
}

bool MultipartParser::EmitData(std::string_view data) {
  if (data.empty() || !cb_.on_part_data) return true;
  Status s = cb_.on_part_data(data);
  if (!s.ok()) {
    Fail(std::move(s));
    return false;
  }
  return true;
}

bool MultipartParser::ScanForDelimiter(std::string_view bytes, size_t* pos, bool emit) {
  const size_t n = bytes.size();
  const size_t dlen = delimiter_.size();
  const char* base = bytes.data();
  size_t p = *pos;

  if (match_ > 0) {
    while (p < n && match_ < dlen && base[p] == delimiter_[match_]) {
      ++p;
      ++match_;
    }
    *pos = p;
    if (match_ == dlen) {
      match_ = 0;
      return true;
    }
    if (p == n) return false;
    // Not a delimiter after all: what was held back is data. It holds no
    // other CR, so no delimiter can start inside it.
    size_t held = match_;
    match_ = 0;
    if (emit && !EmitData(std::string_view(delimiter_).substr(0, held))) return false;
  }

  size_t q = FindDelimiter(bytes, p);
  if (emit && !EmitData(bytes.substr(p, q - p))) return false;
  if (q == n) {
    *pos = n;
    return false;
  }
  if (n - q >= dlen) {
    *pos = q + dlen;
    return true;
  }
  match_ = n - q;  // a delimiter may continue in the next chunk
  *pos = n;
  return false;
}

size_t MultipartParser::FindDelimiter(std::string_view bytes, size_t from) const {
  // Fast path: memchr for the delimiter's CR, then compare. On ordinary data
  // (binary: one CR in 256 bytes; text: one a line) that runs at memchr's
  // vector speed. Data dense in CR would cost a call per CR, so once false
  // candidates average under one per kDenseGap bytes the rest of the chunk
  // is searched with Horspool, whose speed does not depend on the data.
  constexpr size_t kDenseGap = 32;
  constexpr size_t kMinFalseHits = 16;
  const char* base = bytes.data();
  const size_t n = bytes.size();
  const size_t dlen = delimiter_.size();
  size_t p = from;
  size_t false_hits = 0;
  while (p < n) {
    const void* hit = std::memchr(base + p, '\r', n - p);
    if (hit == nullptr) return n;
    size_t q = static_cast<size_t>(static_cast<const char*>(hit) - base);
    // A full match, or a prefix cut by the end of the chunk.
    if (std::memcmp(base + q, delimiter_.data(), std::min(dlen, n - q)) == 0) return q;
    p = q + 1;
    if (++false_hits >= kMinFalseHits && p - from < false_hits * kDenseGap) {
      return FindDelimiterHorspool(bytes, p);
    }
  }
  return n;
}

size_t MultipartParser::FindDelimiterHorspool(std::string_view bytes, size_t from) const {
  const auto* base = reinterpret_cast<const unsigned char*>(bytes.data());
  const auto* delim = reinterpret_cast<const unsigned char*>(delimiter_.data());
  const size_t n = bytes.size();
  const size_t dlen = delimiter_.size();
  const unsigned char last = delim[dlen - 1];
  size_t s = from;
  while (s + dlen <= n) {
    unsigned char c = base[s + dlen - 1];
    if (c == last && std::memcmp(base + s, delim, dlen - 1) == 0) return s;
    s += skip_[c];
  }
  // A delimiter cut by the chunk's end starts at the last CR of the final
  // dlen - 1 bytes: CR occurs only at the delimiter's start.
  const size_t tail = std::max(from, n >= dlen ? n - dlen + 1 : 0);
  for (size_t q = n; q > tail; --q) {
    if (base[q - 1] == '\r') {
      return std::memcmp(base + q - 1, delim, n - (q - 1)) == 0 ? q - 1 : n;
    }
  }
  return n;
}

Status MultipartParser::BeginPart() {
  if (parts_ >= limits_.max_parts) return ResourceExhausted("too many parts in multipart body");
  ++parts_;
  header_buf_.clear();
  return OkStatus();
}

bool MultipartParser::ConsumeHeaders(std::string_view bytes, size_t* pos) {
  const size_t old = header_buf_.size();
  const size_t room = limits_.max_header_bytes - old;  // old never exceeds the limit
  const size_t take = std::min(room, bytes.size() - *pos);
  header_buf_.append(bytes.substr(*pos, take));

  size_t end = std::string::npos;  // one past the blank line ending the block
  std::string_view block;
  if (header_buf_.size() >= 2 && header_buf_[0] == '\r' && header_buf_[1] == '\n') {
    end = 2;  // no header lines at all
  } else {
    size_t found = header_buf_.find("\r\n\r\n", old >= 3 ? old - 3 : 0);
    if (found != std::string::npos) {
      end = found + 4;
      block = std::string_view(header_buf_).substr(0, found);
    }
  }
  if (end == std::string::npos) {
    if (header_buf_.size() >= limits_.max_header_bytes) {
      Fail(ResourceExhausted("part header block too large"));
      return false;
    }
    *pos += take;
    return false;
  }
  *pos += end - old;

  auto headers = ParsePartHeaders(block);
  header_buf_.clear();
  header_buf_.shrink_to_fit();
  if (!headers) {
    Fail(headers.status());
    return false;
  }
  if (cb_.on_part_begin) {
    Status s = cb_.on_part_begin(*headers);
    if (!s.ok()) {
      Fail(std::move(s));
      return false;
    }
  }
  state_ = State::kBody;
  return true;
}

bool MultipartParser::Feed(std::string_view bytes) {
  if (!status_.ok()) return false;
  size_t pos = 0;
  while (pos < bytes.size() && status_.ok()) {
    switch (state_) {
      case State::kPreamble:
        if (ScanForDelimiter(bytes, &pos, /*emit=*/false)) state_ = State::kAfterDelimiter;
        break;
      case State::kBody:
        if (ScanForDelimiter(bytes, &pos, /*emit=*/true)) {
          if (cb_.on_part_end) {
            Status s = cb_.on_part_end();
            if (!s.ok()) {
              Fail(std::move(s));
              break;
            }
          }
          state_ = State::kAfterDelimiter;
        }
        break;
      case State::kAfterDelimiter: {
        char c = bytes[pos++];
        if (c == '-') {
          state_ = State::kCloseDash;
        } else if (IsOws(c)) {
          state_ = State::kPadding;
        } else if (c == '\r') {
          state_ = State::kBoundaryLf;
        } else {
          Fail(InvalidArgument("garbage after multipart boundary"));
        }
        break;
      }
      case State::kCloseDash:
        if (bytes[pos++] == '-') {
          state_ = State::kEpilogue;
        } else {
          Fail(InvalidArgument("garbage after multipart boundary"));
        }
        break;
      case State::kPadding: {
        char c = bytes[pos++];
        if (c == '\r') {
          state_ = State::kBoundaryLf;
        } else if (!IsOws(c)) {
          Fail(InvalidArgument("garbage after multipart boundary"));
        }
        break;
      }
      case State::kBoundaryLf:
        if (bytes[pos++] != '\n') {
          Fail(InvalidArgument("boundary line not ended by CRLF"));
          break;
        }
        if (Status s = BeginPart(); !s.ok()) {
          Fail(std::move(s));
          break;
        }
        state_ = State::kHeaders;
        break;
      case State::kHeaders:
        ConsumeHeaders(bytes, &pos);
        break;
      case State::kEpilogue:
        return true;  // the epilogue is ignored
    }
  }
  return status_.ok();
}

Status MultipartParser::Finish() {
  if (!status_.ok()) return status_;
  if (state_ == State::kEpilogue) return OkStatus();
  Fail(InvalidArgument(state_ == State::kPreamble
                           ? "multipart body has no boundary delimiter"
                           : "multipart body truncated before the closing delimiter"));
  return status_;
}

Result<std::string> BoundaryFromContentType(std::string_view content_type) {
  size_t semi = content_type.find(';');
  std::string_view media_type = TrimOws(content_type.substr(0, semi));
  if (!EqualsIgnoreCase(media_type, "multipart/form-data")) {
    return InvalidArgument("Content-Type is not multipart/form-data");
  }
  if (semi == std::string_view::npos)
    return InvalidArgument("multipart Content-Type without boundary");
  auto params = ParseParams(content_type.substr(semi));
  if (!params) return params.status();
  std::optional<std::string> boundary;
  for (Param& p : *params) {
    if (p.name != "boundary") continue;
    if (boundary) return InvalidArgument("duplicate boundary parameter");
    // An unquoted value is a token: no spaces (a space is legal only quoted).
    if (!p.quoted && p.value.find_first_of(" \t") != std::string::npos) {
      return InvalidArgument("invalid multipart boundary");
    }
    boundary = std::move(p.value);
  }
  if (!boundary) return InvalidArgument("multipart Content-Type without boundary");
  if (!IsValidBoundary(*boundary)) return InvalidArgument("invalid multipart boundary");
  return std::move(*boundary);
}

}  // namespace conveyor::http
