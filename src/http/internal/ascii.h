// File: src/http/internal/ascii.h
//
// ASCII helpers shared by the HTTP parsers (header names, media types and
// auth schemes are case-insensitive ASCII; RFC 9110 §5.1, §8.3.1, §11.1).
#pragma once

#include <string_view>

namespace conveyor::http::internal {

// True when `a` and `b` are equal ignoring ASCII case (bytes >= 0x80 compare
// as they are).
inline bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

}  // namespace conveyor::http::internal
