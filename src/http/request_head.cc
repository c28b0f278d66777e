// Request head checks; see request_head.h for the rules and their reasons.
#include "http/request_head.h"
#include "http/internal/ascii.h"

namespace conveyor::http {
namespace {

using internal::EqualsIgnoreCase;

constexpr size_t kMaxContentLengthDigits = 18;  // < 2^63: no overflow anywhere

std::string_view TrimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

Status RequestHeadChecker::Target(std::string_view target) {
  if (target.empty()) return InvalidArgument("empty request target");
  for (char ch : target) {
    auto c = static_cast<unsigned char>(ch);
    if (c <= 0x20 || c >= 0x7f) return InvalidArgument("request target holds a byte outside visible ASCII");
  }
  return OkStatus();
}

Status RequestHeadChecker::Field(std::string_view name, std::string_view value) {
  if (name.empty()) return InvalidArgument("empty header field name");
  for (char ch : name) {
    auto c = static_cast<unsigned char>(ch);
    if (c <= 0x20 || c >= 0x7f || c == ':') return InvalidArgument("bad byte in a header field name");
  }
  for (char ch : value) {
    auto c = static_cast<unsigned char>(ch);
    if ((c < 0x20 && c != '\t') || c == 0x7f) {
      return InvalidArgument("control byte in a header field value");
    }
  }
  if (EqualsIgnoreCase(name, "content-length")) {
    if (++content_length_fields_ > 1) return InvalidArgument("more than one Content-Length");
    std::string_view v = TrimOws(value);
    if (v.empty() || v.size() > kMaxContentLengthDigits) {
      return InvalidArgument("Content-Length is not a decimal number");
    }
    uint64_t n = 0;
    for (char c : v) {
      if (c < '0' || c > '9') return InvalidArgument("Content-Length is not a decimal number");
      n = n * 10 + static_cast<uint64_t>(c - '0');
    }
    content_length_ = n;
  } else if (EqualsIgnoreCase(name, "transfer-encoding")) {
    ++transfer_encoding_fields_;
    transfer_encoding_chunked_only_ = EqualsIgnoreCase(TrimOws(value), "chunked");
  } else if (EqualsIgnoreCase(name, "host")) {
    if (++host_fields_ > 1) return InvalidArgument("more than one Host");
  }
  return OkStatus();
}

Result<RequestFraming> RequestHeadChecker::Finish(unsigned version) const {
  RequestFraming f;
  if (transfer_encoding_fields_ > 0) {
    if (content_length_fields_ > 0) {
      return InvalidArgument("both Content-Length and Transfer-Encoding");
    }
    if (version < 11) return InvalidArgument("Transfer-Encoding in an HTTP/1.0 request");
    if (transfer_encoding_fields_ > 1 || !transfer_encoding_chunked_only_) {
      return InvalidArgument("Transfer-Encoding other than chunked");
    }
    f.kind = BodyFraming::kChunked;
    return f;
  }
  if (content_length_fields_ > 0) {
    f.kind = BodyFraming::kContentLength;
    f.content_length = content_length_;
  }
  return f;
}

}  // namespace conveyor::http
