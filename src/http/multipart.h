// File: http/multipart.h
//
// An incremental multipart/form-data parser (RFC 7578 / RFC 2046). Bytes are
// fed in chunks of any size, split anywhere; the parser calls back with part
// headers and body data as it goes and never buffers a part's body, so memory
// stays flat for any upload size. It never throws.
//
//   MultipartParser p(boundary, limits, callbacks);
//   while (read some bytes) if (!p.Feed(bytes)) -> p.status() says why
//   p.Finish() -> error if the closing delimiter was not seen
//
// Accepted syntax: a preamble before the first delimiter is ignored, and the
// first boundary line may open the body without a leading CRLF; transport
// padding (SP/HT) may follow a boundary before its CRLF; "--" after a boundary
// ends the body and the epilogue after it is ignored. The boundary inside a
// part counts only as "\r\n--boundary"; anything else (a lone LF, CR not
// followed by the whole delimiter) is data. Header names are case-insensitive;
// each part needs `Content-Disposition: form-data` with a non-empty name;
// filename= is reported as sent (quoted or not, \" and \\ unescaped) and
// filename*= is ignored (RFC 7578 §4.2). on_part_data never gets an empty
// slice; splitting the input differently may split data differently, but the
// concatenated data and every other callback are the same.
//
// Errors (Status codes): kInvalidArgument for malformed input (bad header
// line, missing boundary, a delimiter followed by anything but "--", padding
// or CRLF, truncated body at Finish, an invalid `boundary` given to the
// constructor), kResourceExhausted for a limit (header block too long, too
// many parts). A callback that returns a non-OK Status stops the parser with
// that Status. Not thread-safe; one parser per request body.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "core/error.h"

namespace conveyor::http {

struct MultipartLimits {
  size_t max_header_bytes = 8 * 1024;  // one part's header block, blank line included
  size_t max_parts = 16;               // parts per body
};

struct PartHeaders {
  std::string name;                     // form field name (Content-Disposition name=)
  std::optional<std::string> filename;  // filename= as sent; untrusted
  std::string content_type;             // "" when absent
};

struct MultipartCallbacks {
  std::function<Status(const PartHeaders&)> on_part_begin;
  std::function<Status(std::string_view data)> on_part_data;  // any number of calls
  std::function<Status()> on_part_end;
};

class MultipartParser {
 public:
  MultipartParser(std::string boundary, MultipartLimits limits, MultipartCallbacks callbacks);

  // Consumes all of `bytes`. False once the parser failed (see status());
  // after the closing delimiter further bytes (the epilogue) are ignored.
  bool Feed(std::string_view bytes);

  // Call at end of input: an error when the closing delimiter was not seen.
  Status Finish();

  bool done() const;  // closing delimiter seen
  const Status& status() const { return status_; }

 private:
  enum class State;  // defined in multipart.cc

  void Fail(Status s);
  // Scans body (or preamble) bytes from `*pos` for the delimiter. Emits data
  // (unless in the preamble) and returns true when a full delimiter ended the
  // current section; false when `bytes` ran out first (a partial match is
  // remembered in match_).
  bool ScanForDelimiter(std::string_view bytes, size_t* pos, bool emit);
  // Offset in `bytes` of the first full delimiter at or after `from`, else of
  // a delimiter prefix ending the chunk, else bytes.size().
  size_t FindDelimiter(std::string_view bytes, size_t from) const;
  size_t FindDelimiterHorspool(std::string_view bytes, size_t from) const;
  bool EmitData(std::string_view data);
  // Accumulates a header block from `*pos`; true once it was parsed and the
  // part began (state_ moved to the body).
  bool ConsumeHeaders(std::string_view bytes, size_t* pos);
  Status BeginPart();

  std::string delimiter_;  // "\r\n--" + boundary
  // Boyer-Moore-Horspool shift per byte value for delimiter_ (<= 74 bytes).
  std::array<uint8_t, 256> skip_;
  MultipartLimits limits_;
  MultipartCallbacks cb_;
  Status status_;
  State state_;
  // Bytes of delimiter_ matched at the end of the previous chunk. Held-back
  // bytes are always delimiter_[0, match_), so they are never copied.
  size_t match_ = 0;
  std::string header_buf_;  // current part's header block, <= max_header_bytes
  size_t parts_ = 0;
};

// The boundary parameter of a multipart/form-data Content-Type value, or
// kInvalidArgument (wrong type, missing or invalid boundary).
Result<std::string> BoundaryFromContentType(std::string_view content_type);

}  // namespace conveyor::http
