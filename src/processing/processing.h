// File: processing/processing.h
//
// Pure processing steps: a stored file in, text, an analysis and memory
// chunks out. Nothing here knows Redis, HTTP or SQL.
//
// Errors: kInvalidArgument with message "Invalid file format" for a file in
// no supported format (or a more specific, true message such as "Invalid
// JSON: ..."); these are permanent. kResourceExhausted when a limit was hit
// (also permanent). kFailedPrecondition when the input file is missing
// (permanent too). kUnavailable / kDeadlineExceeded for transient trouble (an
// I/O error, an analysis provider down), which the queue retries.
//
// Threads: every function is blocking and thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/error.h"

namespace conveyor::processing {

// Formats told apart by content, never by name or the client's MIME type.
enum class FileKind { kUnknown, kText, kMarkdown, kCsv, kJson };

std::string_view FileKindName(FileKind k);  // "text", "markdown", "csv", "json", "unknown"

struct Limits {
  int64_t max_input_bytes = 64LL << 20;   // larger inputs are refused
  int64_t max_text_bytes = 16LL << 20;    // extracted text is cut here
  int chunk_chars = 1000;                 // max memory chunk size, in UTF-8 bytes
  int chunk_overlap_chars = 100;          // overlap between consecutive chunks (bytes, <= half a chunk)
  int summary_sentences = 3;              // sentences in the extractive summary
};

// Looks at the first bytes of the file at `path` (and libmagic) to decide its
// kind. `name_hint` (the client's file name) only breaks ties among text kinds,
// e.g. markdown vs plain text. kUnknown is not an error.
Result<FileKind> Sniff(const std::string& path, const std::string& name_hint);

struct Input {
  std::string path;        // the stored upload
  std::string name_hint;   // client file name (display/tie-break only)
  std::string message;     // user's accompanying message, may be empty
};

struct Output {
  FileKind kind = FileKind::kUnknown;
  std::string text;                 // extracted text (UTF-8)
  std::string summary;              // aiResponse.text: a line describing the file
                                    // ("Plain text, 532 words." / "CSV table with 10
                                    // rows and 3 columns: ...") then the key sentences
                                    // (or the first records, for CSV and JSON)
  std::vector<std::string> chunks;  // memory chunks, in order
  int64_t words = 0;
};

// Stage callback: (stage name, percent 0..100). Called from the calling thread.
using ProgressFn = std::function<void(const std::string& stage, int percent)>;

// Sniff -> extract -> analyse -> chunk. Progress is reported at the start of
// each stage: detect 5, extract 20, analyse 50, chunk 75 (callers own 76..100).
// Text: as is, BOM stripped, newlines normalised. Markdown: markup stripped.
// CSV: one "column: value, column: value." line per row. JSON (and JSON Lines):
// one "path.to.key: value" line per leaf. The user's message, when given,
// steers which sentences the summary keeps.
Result<Output> Run(const Input& input, const Limits& limits, const ProgressFn& progress);

// Building blocks, exposed for tests.
// Sentences with whitespace collapsed; a blank line or a line not continuing
// in lower case also ends one.
std::vector<std::string> SplitSentences(const std::string& text);
// The `max_sentences` sentences closest to the text's TF-IDF centroid, in
// their original order, joined by spaces.
std::string Summarize(const std::string& text, int max_sentences);
// Pieces of at most `chunk_chars` bytes, cut preferably at paragraph, line,
// sentence, then word boundaries and never inside a UTF-8 code point; each
// starts up to `overlap_chars` bytes before the previous one ended.
std::vector<std::string> Chunk(const std::string& text, int chunk_chars, int overlap_chars);

}  // namespace conveyor::processing
