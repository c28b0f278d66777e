// File: processing/internal/html.h
//
// HTML to text with libxml2's forgiving HTML parser.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/error.h"

namespace conveyor::processing::internal {

// True when UTF-8 `text` opens like an HTML document (a doctype, <html>,
// <head> or <body>, after whitespace and comments).
bool LooksLikeHtml(std::string_view text);

// The visible text of the UTF-8 HTML `html`: script, style, head, template,
// noscript and svg are skipped; block elements (p, div, li, h1..h6, tr, br...)
// start new lines; table cells are separated by " | "; whitespace is
// collapsed outside <pre>. `tables` receives the number of <table>s.
// Never fails on malformed markup (the parser recovers); kInvalidArgument
// "Invalid file format" only when nothing can be parsed at all.
Result<std::string> ExtractHtml(std::string_view html, int64_t* tables);

}  // namespace conveyor::processing::internal
