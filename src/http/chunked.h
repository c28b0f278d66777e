// File: http/chunked.h
//
// An incremental decoder of HTTP/1.1 chunked framing (RFC 9112 §7.1): raw
// bytes in, body bytes and an end event out. It holds no buffer: every
// framing byte is consumed as it arrives, so a chunk-size line or trailer
// section that never ends costs a counter, not memory, and fails as soon as
// it passes its limit. Pure code (no sockets), never throws.
//
//   ChunkedDecoder d(limits);
//   while (bytes) {
//     Result<ChunkedEvent> e = d.Next(bytes);   // error: refuse the request
//     use e->data (a view into `bytes`); bytes.remove_prefix(e->consumed);
//     if (e->done) break;                       // rest of `bytes`: next request
//   }
//
// Accepted syntax, strictly: chunk-size is 1..16 hex digits (no sign, no
// "0x", at most 2^63 - 1); optional whitespace and `;` extensions follow and
// are skipped (bytes must be visible ASCII, SP or HTAB); every line ends in
// CRLF (a bare LF or CR is an error: lenient line endings are how framing is
// smuggled past proxies); chunk data is followed by CRLF; after the last
// (zero) chunk come trailer fields, each "name: value" CRLF, then CRLF.
// Trailer fields are checked and skipped, never applied.
//
// Errors: kInvalidArgument for malformed framing (bad size, overflow, bad
// byte in a line, missing CRLF), kResourceExhausted when a chunk-size line
// (with its extensions) or the trailer section passes its limit. After an
// error or `done` the decoder must not be fed again. Not thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/error.h"

namespace conveyor::http {

struct ChunkedLimits {
  size_t max_line_bytes = 4096;     // one chunk-size line, extensions and CRLF included
  size_t max_trailer_bytes = 8192;  // the whole trailer section, final CRLF included
};

struct ChunkedEvent {
  size_t consumed = 0;    // bytes of the input used (framing and data)
  std::string_view data;  // body bytes: a view into the input; may be empty
  bool done = false;      // the last chunk and the trailers are complete
};

class ChunkedDecoder {
 public:
  explicit ChunkedDecoder(ChunkedLimits limits = {}) : limits_(limits) {}

  // Decodes from the start of `in`: consumes framing until data, the end, or
  // the end of `in`, then at most one run of data. Returns consumed > 0
  // unless `in` is empty or the body is already done.
  Result<ChunkedEvent> Next(std::string_view in);

  bool done() const { return state_ == State::kDone; }
  uint64_t body_bytes() const { return body_bytes_; }  // data bytes so far

 private:
  enum class State {
    kSize,          // hex digits of the chunk size
    kExtension,     // after the size: whitespace and extensions up to CR
    kSizeLf,        // CR of the size line seen
    kData,          // chunk data, remaining_ bytes left
    kDataCr,        // after data: expect CR
    kDataLf,        // expect LF
    kTrailerStart,  // start of a trailer line (or the final CRLF)
    kTrailerName,   // inside a field name
    kTrailerValue,  // after the colon
    kTrailerLf,     // CR of a field line seen
    kFinalLf,       // CR of the empty line seen
    kDone,
  };

  Status Fail(Status s);

  ChunkedLimits limits_;
  State state_ = State::kSize;
  uint64_t size_ = 0;        // chunk size being parsed
  int digits_ = 0;           // hex digits of it so far
  uint64_t remaining_ = 0;   // data bytes of the current chunk not yet seen
  size_t line_bytes_ = 0;    // bytes of the current chunk-size line
  size_t trailer_bytes_ = 0;
  uint64_t body_bytes_ = 0;
};

}  // namespace conveyor::http
