// Run: sniff -> extract -> analyse -> chunk.
#include "processing/processing.h"

#include <sys/mman.h>
#include <unistd.h>

#include "processing/internal/analysis.h"
#include "processing/internal/sniff.h"
#include "processing/internal/text_util.h"

namespace conveyor::processing {
namespace {

// Overall percent reported at the start of each stage. The worker reports
// its own stages (storing memory, completing) from 90 on.
constexpr int kDetectPercent = 5;
constexpr int kExtractPercent = 20;
constexpr int kAnalysePercent = 50;
constexpr int kChunkPercent = 75;

constexpr char kInvalidFormat[] = "Invalid file format";

struct KindInfo {
  FileKind kind;
  std::string_view name;   // persisted in job results: never changes
  std::string_view label;  // opens the summary line
};
constexpr KindInfo kKinds[] = {
    {FileKind::kText, "text", "Plain text"},
    {FileKind::kMarkdown, "markdown", "Markdown document"},
    {FileKind::kCsv, "csv", "CSV table"},
    {FileKind::kJson, "json", "JSON document"},
    {FileKind::kHtml, "html", "HTML page"},
    {FileKind::kPdf, "pdf", "PDF document"},
    {FileKind::kDocx, "docx", "Word document"},
    {FileKind::kXlsx, "xlsx", "Excel workbook"},
    {FileKind::kPptx, "pptx", "PowerPoint presentation"},
    {FileKind::kOdt, "odt", "OpenDocument text"},
    {FileKind::kOds, "ods", "OpenDocument spreadsheet"},
    {FileKind::kOdp, "odp", "OpenDocument presentation"},
    {FileKind::kRtf, "rtf", "RTF document"},
    {FileKind::kImage, "image", "Image (text by OCR)"},
};

std::string KindLabel(FileKind k) {
  for (const auto& info : kKinds) {
    if (info.kind == k) return std::string(info.label);
  }
  return "File";
}

std::string Count(int64_t n, const char* one) {
  return std::to_string(n) + " " + one + (n == 1 ? "" : "s");
}

// The first `n` non-empty lines of `text`, joined by newlines.
std::string FirstLines(const std::string& text, int n) {
  std::string out;
  size_t pos = 0;
  int taken = 0;
  while (pos < text.size() && taken < n) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    if (end > pos) {
      if (!out.empty()) out += '\n';
      out.append(text, pos, end - pos);
      ++taken;
    }
    pos = end + 1;
  }
  return out;
}

}  // namespace

std::string_view FileKindName(FileKind k) {
  for (const auto& info : kKinds) {
    if (info.kind == k) return info.name;
  }
  return "unknown";
}

Result<Output> Run(const Input& input, const Limits& limits, const ProgressFn& progress) {
  auto report = [&](const char* stage, int percent) {
    if (progress) progress(stage, percent);
  };
  Output out;

  report("detect", kDetectPercent);
  UniqueFd opened;
  int fd = input.fd;
  if (fd < 0) {
    auto f = internal::OpenForReading(input.path);
    if (!f) return f.status();
    opened = std::move(*f);
    fd = opened.get();
  }
  int64_t size = 0;
  auto cls = internal::ClassifyFile(fd, input.name_hint, limits, &size);
  if (!cls) return cls.status();
  if (size > limits.max_input_bytes) {
    return ResourceExhausted("file is " + std::to_string(size) + " bytes, over the " +
                             std::to_string(limits.max_input_bytes) + "-byte processing limit");
  }
  if (cls->kind == FileKind::kUnknown) {
    return InvalidArgument(cls->reason.empty() ? std::string(kInvalidFormat) : cls->reason);
  }
  out.kind = cls->kind;
  if (!Extracts(out.kind)) {
    return Unimplemented(std::string(FileKindName(out.kind)) + " needs the full extractor");
  }

  report("extract", kExtractPercent);
  auto extracted = ExtractFd(fd, out.kind, limits);
  if (!extracted) return extracted.status();
  out.text = std::move(extracted->text);
  out.pages = extracted->pages;
  out.sheets = extracted->sheets;
  out.slides = extracted->slides;
  out.tables = extracted->tables;
  out.encoding = extracted->encoding;

  report("analyse", kAnalysePercent);
  out.words = internal::CountWords(out.text);
  const bool tabular = out.kind == FileKind::kCsv || out.kind == FileKind::kJson ||
                       out.kind == FileKind::kXlsx || out.kind == FileKind::kOds;
  if (out.words == 0) {
    out.summary = out.kind == FileKind::kPdf
                      ? "PDF document, " + Count(out.pages, "page") +
                            ", with no text layer (a scan?)."
                      : "The file contains no text.";
  } else if (tabular) {
    // Rows and key paths make poor "sentences": describe the shape, then
    // show the first records as they are.
    out.summary = extracted->description + "\n" +
                  FirstLines(out.text, std::max(limits.summary_sentences, 1));
  } else {
    std::string counts;
    if (out.pages > 0) counts += Count(out.pages, "page") + ", ";
    if (out.slides > 0) counts += Count(out.slides, "slide") + ", ";
    const std::string& source =
        extracted->summary_text.empty() ? out.text : extracted->summary_text;
    out.summary = KindLabel(out.kind) + ", " + counts + Count(out.words, "word") + ".\n" +
                  internal::SummarizeFocused(source, limits.summary_sentences, input.message);
  }

  report("chunk", kChunkPercent);
  out.chunks = Chunk(out.text, limits.chunk_chars, limits.chunk_overlap_chars);
  return out;
}

void Preload() {
  // Heads of the binary formats: libmagic compiles what a signature lookup
  // needs (Run would fail on them, so Classify alone).
  static constexpr std::string_view kBinaryHeads[] = {
      "%PDF-1.4\n%\xE2\xE3\xCF\xD3\n1 0 obj\n",
      std::string_view("\x89PNG\r\n\x1a\n\0\0\0\rIHDR", 16),
      std::string_view("PK\x03\x04\x14\0\0\0\x08\0", 10),
      "{\\rtf1\\ansi Hello}",
  };
  for (std::string_view head : kBinaryHeads) (void)internal::Classify(head, false, "preload");
  // Whole runs over the text kinds: libmagic's text patterns, the
  // classifiers', the extractors' and the analysis's tables.
  static constexpr std::pair<const char*, std::string_view> kSamples[] = {
      {"preload.txt",
       "Conveyor stores uploaded files and processes them. The worker extracts text, writes a "
       "short summary and keeps chunks as searchable memory.\n\nA broken file costs one job.\n"},
      {"preload.md", "# Title\n\n- one item with a [link](https://example.com)\n- **two**\n\n"
                     "| a | b |\n|---|---|\n| 1 | 2 |\n"},
      {"preload.csv", "name,count,price\napple,3,1.50\npear,5,2.25\nplum,7,0.75\n"},
      {"preload.json", "{\"name\": \"conveyor\", \"items\": [1, 2, 3], \"nested\": {\"ok\": true}}\n"},
      {"preload.html", "<!DOCTYPE html><html><head><title>T</title></head><body><p>Some "
                       "words here.</p><table><tr><td>a</td></tr></table></body></html>\n"},
  };
  for (const auto& [name, text] : kSamples) {
    UniqueFd fd(memfd_create("conveyor-preload", MFD_CLOEXEC));
    if (!fd.valid() || write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
      continue;
    }
    Input input;
    input.fd = fd.get();
    input.name_hint = name;
    input.message = "summary";
    (void)Run(input, Limits{}, nullptr);
  }
}

}  // namespace conveyor::processing
