// File: processing/processing.h
//
// Pure processing steps: a stored file in, text, an analysis and memory
// chunks out. Nothing here knows Redis, HTTP or SQL.
//
// Errors: kInvalidArgument with message "Invalid file format" for a file in
// no supported format (or a more specific, true message such as "Invalid
// JSON: ..."); these are permanent. kResourceExhausted when a limit was hit
// (also permanent). kUnavailable / kDeadlineExceeded for transient trouble
// (an analysis provider down), which the queue retries.
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
  int chunk_chars = 1000;                 // target memory chunk size
  int chunk_overlap_chars = 100;          // overlap between consecutive chunks
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
  std::string summary;              // aiResponse.text
  std::vector<std::string> chunks;  // memory chunks, in order
  int64_t words = 0;
};

// Stage callback: (stage name, percent 0..100). Called from the calling thread.
using ProgressFn = std::function<void(const std::string& stage, int percent)>;

// Sniff -> extract -> analyse -> chunk.
Result<Output> Run(const Input& input, const Limits& limits, const ProgressFn& progress);

// Building blocks, exposed for tests.
std::vector<std::string> SplitSentences(const std::string& text);
std::string Summarize(const std::string& text, int max_sentences);
std::vector<std::string> Chunk(const std::string& text, int chunk_chars, int overlap_chars);

}  // namespace conveyor::processing
