// File: processing/internal/rtf.h
//
// A small RTF-to-text reader, written by hand: no packaged library does this
// (libreoffice is far too large to run per upload). It understands groups,
// control words and symbols, \'hh bytes in the document's code page
// (\ansicpgN, converted with iconv), \uN with its \ucN fallback, \binN, and
// skips destinations that hold no body text (\fonttbl, \colortbl,
// \stylesheet, \info, \pict, any {\* ...} group, ...).
//
// The reader is incremental: Feed() takes the file in pieces of any size
// (split anywhere, even inside a control word), so memory stays flat.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "processing/internal/encoding.h"

namespace conveyor::processing::internal {

class RtfReader {
 public:
  // Groups nested deeper than this are refused: real documents stay under
  // ~30 levels, and the group stack is memory a hostile file controls.
  static constexpr size_t kMaxGroupDepth = 1000;

  // Text beyond `max_text_bytes` is dropped (the input is still checked).
  explicit RtfReader(size_t max_text_bytes);

  // Consumes the next bytes. kInvalidArgument when the input is not RTF
  // ("Invalid file format") or nests too deep; after an error the reader
  // accepts nothing more.
  Status Feed(std::string_view bytes);

  // Ends the input and returns the text: paragraphs end in "\n", table cells
  // are separated by " | ". kInvalidArgument "Invalid RTF: truncated ..."
  // when the document's group is not closed.
  Result<std::string> Finish();

  // The text produced so far. Grows only by appending: the text of any
  // prefix of a file is a prefix of the file's text.
  const std::string& text() const { return out_; }

 private:
  enum class State { kText, kEscape, kWord, kHex1, kHex2, kBinary, kDone, kFailed };
  struct Group {
    bool skip = false;       // inside a destination that holds no body text
    int unicode_skip = 1;    // \ucN: fallback characters after each \uN
  };

  Status Byte(char c);
  Status OpenGroup();
  void CloseGroup();
  void ControlWord();
  void ControlSymbol(char c);
  void Plain(char c);            // a literal character of the body
  void CodepageByte(unsigned char b);
  void FlushBytes();             // converts pending code-page bytes
  void Emit(std::string_view s);
  void EmitCodePoint(uint32_t cp);
  bool Skipping() const { return groups_.empty() || groups_.back().skip; }

  size_t max_text_bytes_;
  State state_ = State::kText;
  std::vector<Group> groups_;
  std::string out_;
  std::string header_;           // the first bytes, to check for "{\rtf"
  std::string word_;             // control word being read
  std::string param_;            // its numeric parameter, with sign
  int hex_high_ = 0;             // first digit of \'hh
  int64_t binary_left_ = 0;      // bytes of \binN still to skip
  int pending_skip_ = 0;         // \uN fallback characters still to drop
  uint32_t high_surrogate_ = 0;  // \uN high half waiting for its low half
  bool destination_next_ = false;  // just saw \* : the group is a destination
  std::string bytes_;            // code-page bytes waiting for conversion
  int codepage_ = 1252;          // \ansicpgN
  CharsetConverter converter_;   // from codepage_, kept open across runs
  bool closed_ = false;          // the document's outermost group ended
  bool cell_pending_ = false;    // a \cell ended; " | " goes before more text
};

}  // namespace conveyor::processing::internal
