// Run: sniff -> extract -> analyse -> chunk.
#include "processing/processing.h"

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

std::string KindLabel(FileKind k) {
  switch (k) {
    case FileKind::kText: return "Plain text";
    case FileKind::kMarkdown: return "Markdown document";
    case FileKind::kCsv: return "CSV table";
    case FileKind::kJson: return "JSON document";
    case FileKind::kUnknown: break;
  }
  return "File";
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
  switch (k) {
    case FileKind::kText: return "text";
    case FileKind::kMarkdown: return "markdown";
    case FileKind::kCsv: return "csv";
    case FileKind::kJson: return "json";
    case FileKind::kUnknown: break;
  }
  return "unknown";
}

Result<Output> Run(const Input& input, const Limits& limits, const ProgressFn& progress) {
  auto report = [&](const char* stage, int percent) {
    if (progress) progress(stage, percent);
  };
  Output out;

  report("detect", kDetectPercent);
  int64_t size = 0;
  auto head = internal::ReadHead(input.path, internal::kSniffBytes, &size);
  if (!head) return head.status();
  if (size > limits.max_input_bytes) {
    return ResourceExhausted("file is " + std::to_string(size) + " bytes, over the " +
                             std::to_string(limits.max_input_bytes) + "-byte processing limit");
  }
  bool truncated = size > static_cast<int64_t>(head->size());
  internal::Classification cls = internal::Classify(*head, truncated, input.name_hint);
  if (cls.kind == FileKind::kUnknown) return InvalidArgument(kInvalidFormat);
  out.kind = cls.kind;

  report("extract", kExtractPercent);
  std::string raw;
  if (truncated) {
    auto whole = internal::ReadHead(input.path, static_cast<size_t>(size), nullptr);
    if (!whole) return whole.status();
    raw = std::move(*whole);
    // The head was text; the rest must be too (a text preamble glued to a
    // binary body is not a text file).
    if (!internal::LooksLikeText(raw, false)) return InvalidArgument(kInvalidFormat);
  } else {
    raw = std::move(*head);
  }
  std::string_view body = internal::StripBom(raw);
  std::string stats;  // a describing sentence for structured kinds
  switch (out.kind) {
    case FileKind::kText: out.text = internal::ExtractPlainText(body); break;
    case FileKind::kMarkdown: out.text = internal::ExtractMarkdown(body); break;
    case FileKind::kCsv: out.text = internal::ExtractCsv(body, cls.csv_delimiter, &stats); break;
    case FileKind::kJson: {
      auto text = internal::ExtractJson(body, &stats);
      if (!text) return text.status();
      out.text = std::move(*text);
      break;
    }
    case FileKind::kUnknown: return InvalidArgument(kInvalidFormat);
  }
  if (static_cast<int64_t>(out.text.size()) > limits.max_text_bytes) {
    out.text.resize(internal::Utf8Prefix(out.text, static_cast<size_t>(limits.max_text_bytes)));
  }

  report("analyse", kAnalysePercent);
  out.words = internal::CountWords(out.text);
  if (out.words == 0) {
    out.summary = "The file contains no text.";
  } else if (out.kind == FileKind::kCsv || out.kind == FileKind::kJson) {
    // Rows and key paths make poor "sentences": describe the shape, then
    // show the first records as they are.
    out.summary = stats + "\n" + FirstLines(out.text, std::max(limits.summary_sentences, 1));
  } else {
    // Markdown's summary is drawn from its prose, not its code blocks.
    std::string prose;
    if (out.kind == FileKind::kMarkdown) {
      prose = internal::ExtractMarkdown(body, false);
      if (static_cast<int64_t>(prose.size()) > limits.max_text_bytes) {
        prose.resize(internal::Utf8Prefix(prose, static_cast<size_t>(limits.max_text_bytes)));
      }
    }
    const std::string& source = prose.empty() ? out.text : prose;
    out.summary = KindLabel(out.kind) + ", " + std::to_string(out.words) +
                  (out.words == 1 ? " word" : " words") + ".\n" +
                  internal::SummarizeFocused(source, limits.summary_sentences, input.message);
  }

  report("chunk", kChunkPercent);
  out.chunks = Chunk(out.text, limits.chunk_chars, limits.chunk_overlap_chars);
  return out;
}

}  // namespace conveyor::processing
