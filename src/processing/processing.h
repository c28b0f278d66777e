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
// Threads: every function is blocking and thread-safe. Library handles are
// per thread (a libmagic cookie; for images a Tesseract engine holding the
// English model, ~tens of MB, loaded on a thread's first image). The only
// process-wide state is the silencing of poppler's and leptonica's stderr
// messages, set once. (libpng may still print one line for a corrupt PNG.)
//
// Formats and limits: see FileKind and Limits. Any encrypted PDF is refused,
// including those that open without a password; zip-bomb defences apply to
// office files; images over Limits::max_image_pixels are refused from their
// header; only the first page of a multi-page TIFF is read.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/error.h"

namespace conveyor::processing {

// Formats told apart by content, never by name or the client's MIME type.
// Values are only ever added; FileKindName's strings are persisted in job
// results and never change.
enum class FileKind {
  kUnknown,
  kText,      // UTF-8, UTF-16 (LE/BE, BOM or not) or Latin-1/Windows-1252 text
  kMarkdown,
  kCsv,       // CSV and TSV (any of , TAB ; | as delimiter)
  kJson,      // JSON and JSON Lines
  kHtml,      // HTML (and XHTML) pages: the visible text
  kPdf,       // PDF: text layer, page by page (scans without text yield none)
  kDocx,      // Word 2007+ (also .docm/.dotx): told by [Content_Types].xml
  kXlsx,      // Excel 2007+ (also .xlsm)
  kPptx,      // PowerPoint 2007+ (also .pptm/.ppsx)
  kOdt,       // OpenDocument text: told by the zip's "mimetype" entry
  kOds,       // OpenDocument spreadsheet
  kOdp,       // OpenDocument presentation
  kRtf,       // Rich Text Format
  kImage,     // PNG, JPEG or TIFF: text by OCR (English)
};

// "text", "markdown", "csv", "json", "html", "pdf", "docx", "xlsx", "pptx",
// "odt", "ods", "odp", "rtf", "image", "unknown".
std::string_view FileKindName(FileKind k);

// True when this build extracts `k`: every kind in the conveyor binary
// (conveyor_processing); all but kPdf and kImage in the lean extractor
// (conveyor_processing_lean, linked without poppler and Tesseract), whose
// Run answers kUnimplemented for them once the file is classified, before
// its "extract" progress.
bool Extracts(FileKind k);

struct Limits {
  int64_t max_input_bytes = 64LL << 20;   // larger inputs are refused
  int64_t max_text_bytes = 16LL << 20;    // extracted text is cut here
  int chunk_chars = 1000;                 // max memory chunk size, in UTF-8 bytes
  int chunk_overlap_chars = 100;          // overlap between consecutive chunks (bytes, <= half a chunk)
  int summary_sentences = 3;              // sentences in the extractive summary

  // Zip containers (DOCX/XLSX/PPTX/ODF), checked while reading so a zip bomb
  // costs at most these before it is refused (kResourceExhausted).
  int64_t max_archive_entries = 10000;         // entries in the zip's directory
  int64_t max_archive_bytes = 256LL << 20;     // uncompressed bytes read, all entries together
  int64_t max_compression_ratio = 200;         // uncompressed/compressed bytes of one entry
                                               // (real office XML stays well under 100)
  // Images are refused on the dimensions in their header, before decoding:
  // 40 megapixels decode to 160 MB of RGBA.
  int64_t max_image_pixels = 40'000'000;
};

// Looks at the first bytes of the file at `path` (and libmagic) to decide its
// kind; for a zip, its entry list tells the office formats apart. `name_hint`
// (the client's file name) only breaks ties among text kinds, e.g. markdown vs
// plain text. kUnknown is not an error.
Result<FileKind> Sniff(const std::string& path, const std::string& name_hint);

// What extraction yields, before any analysis.
struct Extracted {
  std::string text;          // UTF-8, newlines "\n"; cut at Limits::max_text_bytes
  std::string summary_text;  // what a summary is drawn from when it is not `text`
                             // (markdown without its code blocks); usually empty
  std::string description;   // one sentence on the shape for tabular kinds
                             // ("CSV table with 10 rows and 3 columns: a, b, c."); may be empty
  std::string encoding;      // text kinds: "utf-8", "utf-16le", "utf-16be", "latin1"
  int64_t pages = 0;         // PDF pages
  int64_t sheets = 0;        // XLSX/ODS worksheets
  int64_t slides = 0;        // PPTX/ODP slides
  int64_t tables = 0;        // tables in DOCX/ODT/HTML
};

// The text of the file at `path`, read as `kind` (from Sniff). ExtractFd reads
// an open descriptor instead (from offset 0; the descriptor stays open). A pure
// function of (file, kind, limits): no global state besides per-thread
// library handles, so it may run in a sandboxed child process.
// Errors: kInvalidArgument "Invalid file format" when the file is not a valid
// `kind`, or a specific true message ("Encrypted PDF is not supported",
// "Invalid JSON: ...", "Invalid PDF: ...", "Invalid DOCX: ..."); kResourceExhausted
// when a limit is hit (file size, zip bomb defences, image pixels); those are
// permanent. kFailedPrecondition for a missing file; kUnavailable for I/O errors.
Result<Extracted> Extract(const std::string& path, FileKind kind, const Limits& limits);
Result<Extracted> ExtractFd(int fd, FileKind kind, const Limits& limits);

struct Input {
  std::string path;        // the stored upload (read when fd < 0)
  std::string name_hint;   // client file name (display/tie-break only)
  std::string message;     // user's accompanying message, may be empty
  // An open, readable descriptor of the file: when >= 0 it is read instead of
  // `path` (with pread and from offset 0; not closed). The sandboxed parser
  // gets only this, never a path.
  int fd = -1;
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
  // Counts from Extracted (0 where they do not apply).
  int64_t pages = 0;                // PDF pages
  int64_t sheets = 0;               // spreadsheet worksheets
  int64_t slides = 0;               // presentation slides
  int64_t tables = 0;               // tables in a document or page
  std::string encoding;             // source encoding of text kinds ("" otherwise)
};

// Stage callback: (stage name, percent 0..100). Called from the calling thread.
using ProgressFn = std::function<void(const std::string& stage, int percent)>;

// Sniff -> Extract -> analyse -> chunk. Progress is reported at the start of
// each stage: detect 5, extract 20, analyse 50, chunk 75 (callers own 76..100).
// Text: converted to UTF-8, BOM stripped, newlines normalised. Markdown: markup
// stripped. CSV: one "column: value, column: value." line per row. JSON (and
// JSON Lines): one "path.to.key: value" line per leaf. HTML: visible text,
// block elements on their own lines. PDF: each page's text. DOCX/ODT/RTF:
// paragraphs, table rows as "cell | cell". XLSX/ODS: per sheet a "Sheet: name"
// line then rows like CSV's. PPTX/ODP: "Slide N" then its text, in slide order.
// Images: OCR'd text. The user's message, when given,
// steers which sentences the summary keeps.
Result<Output> Run(const Input& input, const Limits& limits, const ProgressFn& progress);

// Does, once, the start-up work that every Run pays on a fresh thread:
// libmagic's database (loaded, and its patterns compiled by a first lookup
// of each sort of input: text, markup, binary signatures), the classifiers'
// patterns and the analysis's word tables. Handles are per thread: this
// warms the calling thread's. A process that forks children to run
// processing (the worker's extract server) calls it once, on the thread
// that forks, so that every child starts warm; nothing of a job's data is
// involved. Runs Run over small built-in samples; never fails (a library
// that cannot load is left for Run to report).
void Preload();

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
