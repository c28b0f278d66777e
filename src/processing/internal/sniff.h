// File: processing/internal/sniff.h
//
// The pieces of Sniff, shared with Run (which reads the file once and
// classifies the bytes it already holds).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/error.h"
#include "core/fd.h"
#include "processing/internal/encoding.h"
#include "processing/processing.h"

namespace conveyor::processing::internal {

// Bytes of a file's head the classifiers look at: enough for a markdown or
// CSV verdict and to parse most JSON documents whole.
constexpr size_t kSniffBytes = 1 << 20;

struct Classification {
  FileKind kind = FileKind::kUnknown;
  std::string mime;         // libmagic's MIME type of the head ("" if unavailable)
  char csv_delimiter = 0;   // for kCsv
  TextEncoding encoding = TextEncoding::kUtf8;  // for text kinds
  // A zip: which office format (if any) its entries hold is for OfficeKind.
  bool zip = false;
  // Why a kUnknown file is refused when there is something truer to say than
  // "Invalid file format" (e.g. "Encrypted documents are not supported").
  std::string reason;
};

// Classifies `head`, the first bytes of a file; `truncated` when the file
// goes on past them. Text kinds are decided on the head converted to UTF-8.
Classification Classify(std::string_view head, bool truncated, const std::string& name_hint);

// libmagic's MIME type for `bytes` (MAGIC_MIME_TYPE), "" when libmagic cannot
// be loaded. Thread-safe (one handle per thread).
std::string MagicMime(std::string_view bytes);

// Classify, plus OfficeKind for a zip: the kind Run and Sniff act on.
// Reads the open descriptor `fd` from offset 0.
Result<Classification> ClassifyFile(int fd, const std::string& name_hint, const Limits& limits,
                                    int64_t* file_size);

// Up to `max_bytes` from the start of the file open as `fd` (pread: the
// descriptor's offset is not used); `file_size` gets the whole size.
// kFailedPrecondition for a directory, kUnavailable for I/O errors.
Result<std::string> ReadHead(int fd, size_t max_bytes, int64_t* file_size);

// Opens `path` read-only for the path-taking entry points (Sniff, Extract,
// Run without a descriptor). kFailedPrecondition for a missing file.
Result<UniqueFd> OpenForReading(const std::string& path);

}  // namespace conveyor::processing::internal
