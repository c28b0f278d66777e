// The chunked framing decoder: a byte-at-a-time state machine for framing,
// a bulk copy-free slice for data. See chunked.h for the accepted syntax.
#include "http/chunked.h"

#include <algorithm>

namespace conveyor::http {
namespace {

constexpr int kMaxSizeDigits = 16;
constexpr uint64_t kMaxChunkSize = (uint64_t{1} << 63) - 1;

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Visible ASCII, SP or HTAB: what an extension or a field value may hold.
bool IsLineByte(unsigned char c) { return c == '\t' || (c >= 0x20 && c < 0x7f) || c >= 0x80; }

// RFC 9110 tchar: what a field name may hold.
bool IsTokenByte(unsigned char c) {
  if (c >= '0' && c <= '9') return true;
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return true;
  switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+':
    case '-': case '.': case '^': case '_': case '`': case '|': case '~':
      return true;
    default:
      return false;
  }
}

}  // namespace

Status ChunkedDecoder::Fail(Status s) {
  state_ = State::kDone;  // unusable from now on; callers stop at the error
  return s;
}

Result<ChunkedEvent> ChunkedDecoder::Next(std::string_view in) {
  ChunkedEvent ev;
  size_t i = 0;
  while (i < in.size() && state_ != State::kDone) {
    if (state_ == State::kData) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(remaining_, in.size() - i));
      ev.data = in.substr(i, n);
      remaining_ -= n;
      body_bytes_ += n;
      i += n;
      if (remaining_ == 0) state_ = State::kDataCr;
      break;  // one run of data per event
    }
    const unsigned char c = static_cast<unsigned char>(in[i++]);
    switch (state_) {
      case State::kSize:
      case State::kExtension:
      case State::kSizeLf:
        if (++line_bytes_ > limits_.max_line_bytes) {
          return Fail(ResourceExhausted("chunk size line longer than " +
                                        std::to_string(limits_.max_line_bytes) + " bytes"));
        }
        if (state_ == State::kSize) {
          int v = HexValue(static_cast<char>(c));
          if (v >= 0) {
            if (++digits_ > kMaxSizeDigits || size_ > (kMaxChunkSize >> 4)) {
              return Fail(InvalidArgument("chunk size overflows"));
            }
            size_ = size_ * 16 + static_cast<uint64_t>(v);
            continue;
          }
          if (digits_ == 0) return Fail(InvalidArgument("chunk size is not a hex number"));
          state_ = State::kExtension;
        }
        if (state_ == State::kExtension) {
          if (c == '\r') {
            state_ = State::kSizeLf;
          } else if (!IsLineByte(c)) {
            return Fail(InvalidArgument("bad byte in a chunk size line"));
          }
          continue;
        }
        // kSizeLf
        if (c != '\n') return Fail(InvalidArgument("chunk size line without CRLF"));
        line_bytes_ = 0;
        digits_ = 0;
        if (size_ == 0) {
          state_ = State::kTrailerStart;
        } else {
          remaining_ = size_;
          size_ = 0;
          state_ = State::kData;
        }
        continue;
      case State::kDataCr:
        if (c != '\r') return Fail(InvalidArgument("chunk data longer than its size"));
        state_ = State::kDataLf;
        continue;
      case State::kDataLf:
        if (c != '\n') return Fail(InvalidArgument("chunk data not followed by CRLF"));
        state_ = State::kSize;
        continue;
      case State::kTrailerStart:
      case State::kTrailerName:
      case State::kTrailerValue:
      case State::kTrailerLf:
      case State::kFinalLf:
        if (++trailer_bytes_ > limits_.max_trailer_bytes) {
          return Fail(ResourceExhausted("trailer section longer than " +
                                        std::to_string(limits_.max_trailer_bytes) + " bytes"));
        }
        switch (state_) {
          case State::kTrailerStart:
            if (c == '\r') {
              state_ = State::kFinalLf;
            } else if (IsTokenByte(c)) {
              state_ = State::kTrailerName;
            } else {
              return Fail(InvalidArgument("bad trailer field"));
            }
            break;
          case State::kTrailerName:
            if (c == ':') {
              state_ = State::kTrailerValue;
            } else if (!IsTokenByte(c)) {
              return Fail(InvalidArgument("bad trailer field name"));
            }
            break;
          case State::kTrailerValue:
            if (c == '\r') {
              state_ = State::kTrailerLf;
            } else if (!IsLineByte(c)) {
              return Fail(InvalidArgument("bad byte in a trailer field"));
            }
            break;
          case State::kTrailerLf:
            if (c != '\n') return Fail(InvalidArgument("trailer field without CRLF"));
            state_ = State::kTrailerStart;
            break;
          default:  // kFinalLf
            if (c != '\n') return Fail(InvalidArgument("trailer section without CRLF"));
            state_ = State::kDone;
            ev.done = true;
            break;
        }
        continue;
      case State::kData:
      case State::kDone:
        break;
    }
  }
  ev.consumed = i;
  return ev;
}

}  // namespace conveyor::http
