// File: http/request_head.h
//
// The checks conveyor makes on a request head after Beast parsed it and
// before anything is routed: the bytes of the target and of each field, and
// how the body is framed (RFC 9112 §6). Pure code (no sockets), so it is unit
// tested and fuzzed together with the chunked decoder (http/chunked.h).
//
//   RequestHeadChecker c;
//   if (Status s = c.Target(target); !s.ok()) -> 400
//   for each field: if (Status s = c.Field(name, value); !s.ok()) -> 400
//   Result<RequestFraming> f = c.Finish(version);   // error -> 400 and close
//
// Rules, each a way requests are smuggled or a parser confused:
// - the target is visible ASCII only (no NUL, control bytes, spaces, bytes
//   of 0x80 and above): a path is compared byte for byte with the routes;
// - a field value holds no NUL, CR, LF or other control byte but HTAB;
// - Transfer-Encoding must be exactly `chunked` (one field, one coding, any
//   case): anything else, `gzip` or `chunked, gzip` or `gzip, chunked`,
//   leaves the body length unknown to us (RFC 9112 §6.3: 400, then close);
//   Transfer-Encoding in an HTTP/1.0 request is refused the same way;
// - Transfer-Encoding together with Content-Length is refused (§6.3 item 3);
// - Content-Length is one field of 1 to 18 decimal digits: no list, no
//   sign, no repeat, even of the same value (§6.3 item 5);
// - at most one Host field.
// Every error is kInvalidArgument with a short reason; the request must be
// answered 400 and the connection closed (the body's extent is unknown).
#pragma once

#include <cstdint>
#include <string_view>

#include "core/error.h"

namespace conveyor::http {

enum class BodyFraming {
  kNone,           // no body
  kContentLength,  // content_length bytes
  kChunked,        // chunked framing (http/chunked.h)
};

struct RequestFraming {
  BodyFraming kind = BodyFraming::kNone;
  uint64_t content_length = 0;  // kContentLength only (may be 0)
};

class RequestHeadChecker {
 public:
  Status Target(std::string_view target);
  // One field as received (repeats are separate calls).
  Status Field(std::string_view name, std::string_view value);
  // After every field. `version` as Beast reports it: 11 for HTTP/1.1.
  Result<RequestFraming> Finish(unsigned version) const;

 private:
  int content_length_fields_ = 0;
  uint64_t content_length_ = 0;
  int transfer_encoding_fields_ = 0;
  bool transfer_encoding_chunked_only_ = false;  // the one field says just "chunked"
  int host_fields_ = 0;
};

}  // namespace conveyor::http
