// File: processing/internal/text_util.h
//
// Helpers shared by the processing steps: UTF-8 checks and cuts, word
// tokenising, CSV record parsing, and the per-kind extractors. Not part of the
// module's API; exposed here so the pieces can be tested alone.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"

namespace conveyor::processing::internal {

// Largest n <= max such that s[0, n) ends on a UTF-8 code point boundary.
size_t Utf8Prefix(std::string_view s, size_t max);

// Index of the first code point boundary at or after `pos`.
size_t Utf8Forward(std::string_view s, size_t pos);

// True when `s` is well-formed UTF-8 (no overlongs, surrogates or values past
// U+10FFFF). With `allow_truncated_tail`, an incomplete sequence at the very
// end is accepted (the input is a window cut from a longer file).
bool IsValidUtf8(std::string_view s, bool allow_truncated_tail);

// True when `s` reads as text: valid UTF-8, no NUL byte, and control
// characters other than tab/newline/CR/FF/VT/ESC are rare.
bool LooksLikeText(std::string_view s, bool allow_truncated_tail);

// `s` without a leading UTF-8 byte order mark.
std::string_view StripBom(std::string_view s);

// The words of `text` by the index's word rule (core/words.h): runs of ASCII
// letters/digits and non-ASCII code points (so "naïve" and "日本語" stay
// whole), apostrophes inside words dropped, ASCII lower-cased.
std::vector<std::string> Words(std::string_view text);

// Number of whitespace-separated tokens holding a letter or digit.
int64_t CountWords(std::string_view text);

// CSV (RFC 4180 quoting, any one-byte delimiter) parsed into records. A
// record ends at a newline outside quotes. When `truncated`, the last record
// is dropped (it may be cut). Stops after `max_records` records.
std::vector<std::vector<std::string>> ParseCsv(std::string_view text, char delimiter,
                                               bool truncated, size_t max_records);

// Extractors: the text a person would read, from the raw (BOM-stripped) file.
std::string ExtractPlainText(std::string_view raw);
// Without `keep_code`, fenced code blocks are left out (the prose a summary
// is drawn from); with it they stay (search should find identifiers).
std::string ExtractMarkdown(std::string_view raw, bool keep_code = true);
// kInvalidArgument "Invalid JSON: <reason>" when it does not parse. `stats`
// receives a one-sentence description ("JSON object with 3 keys: a, b, c.").
Result<std::string> ExtractJson(std::string_view raw, std::string* stats);
// `stats` as for ExtractJson ("CSV table with 10 rows and 3 columns: ...").
std::string ExtractCsv(std::string_view raw, char delimiter, std::string* stats);

// Table rows as text: the first record names the columns, each later one
// becomes "column: value, column: value." on its own line (a lone header
// row becomes "a | b | c"). `header` receives the trimmed column names.
std::string RecordsToText(const std::vector<std::vector<std::string>>& records,
                          std::vector<std::string>* header);

// Names joined by ", ", the first ten of them ("a, b, …").
std::string JoinNames(const std::vector<std::string>& names);

// The delimiter of a CSV sample, or '\0' when the sample is not CSV.
char DetectCsvDelimiter(std::string_view sample, bool truncated, bool name_says_csv);

}  // namespace conveyor::processing::internal
