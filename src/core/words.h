// File: core/words.h
//
// The one word rule of the memory index. A word is a run of ASCII letters
// and digits and of bytes >= 0x80 (so a UTF-8 code point such as "ï" or "日"
// stays inside its word); an apostrophe between such a run and an ASCII
// letter or digit joins the two ("don't" is the word "dont"); ASCII letters
// are lower-cased, nothing else is folded.
//
// Processing cuts a file's index terms by this rule (processing's Words),
// and storage finds those terms again in a chunk's text to mark them in a
// snippet (storage/snippet.h). Both call ForEachWord, so the two cannot
// drift apart.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace conveyor {

inline bool IsAsciiAlnum(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

inline bool IsWordByte(unsigned char c) { return IsAsciiAlnum(c) || c >= 0x80; }

// Calls `f(begin, end, folded)` for each word of `text` in order: the word's
// bytes are text[begin, end) (joining apostrophes included), `folded` is the
// word as the rule spells it (valid until `f` returns).
template <typename F>
void ForEachWord(std::string_view text, F&& f) {
  std::string folded;
  size_t i = 0;
  while (i < text.size()) {
    if (!IsWordByte(static_cast<unsigned char>(text[i]))) {
      ++i;
      continue;
    }
    const size_t begin = i;
    folded.clear();
    while (i < text.size()) {
      const unsigned char c = static_cast<unsigned char>(text[i]);
      if (IsWordByte(c)) {
        folded += (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : static_cast<char>(c);
      } else if (c != '\'' || i + 1 >= text.size() ||
                 !IsAsciiAlnum(static_cast<unsigned char>(text[i + 1]))) {
        break;
      }
      ++i;
    }
    f(begin, i, static_cast<const std::string&>(folded));
  }
}

}  // namespace conveyor
