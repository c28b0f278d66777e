// Extract: a file's text by kind, dispatching to the per-format readers.
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "processing/internal/encoding.h"
#include "processing/internal/html.h"
#include "processing/internal/ocr.h"
#include "processing/internal/office.h"
#include "processing/internal/pdf.h"
#include "processing/internal/rtf.h"
#include "processing/internal/sniff.h"
#include "processing/internal/text_util.h"
#include "processing/processing.h"

namespace conveyor::processing {
namespace {

constexpr char kInvalidFormat[] = "Invalid file format";
// RTF is read in pieces of this size (the reader is incremental).
constexpr size_t kRtfReadBytes = 64 << 10;

// Text kinds: the whole file, decoded to UTF-8.
Result<Extracted> ExtractTextKind(int fd, FileKind kind, const Limits& limits) {
  auto raw = internal::ReadHead(fd, static_cast<size_t>(limits.max_input_bytes), nullptr);
  if (!raw) return raw.status();
  auto encoding = internal::DetectEncoding(*raw, false);
  if (!encoding) return InvalidArgument(kInvalidFormat);
  Extracted out;
  out.encoding = internal::EncodingName(*encoding);
  std::string text = internal::ToUtf8(*raw, *encoding);
  // A text head glued to a binary body is not a text file.
  if (!internal::LooksLikeText(text, false)) return InvalidArgument(kInvalidFormat);
  switch (kind) {
    case FileKind::kText:
      out.text = internal::ExtractPlainText(text);
      break;
    case FileKind::kMarkdown:
      out.text = internal::ExtractMarkdown(text);
      // The summary is drawn from the prose, not the code blocks.
      out.summary_text = internal::ExtractMarkdown(text, false);
      break;
    case FileKind::kCsv: {
      std::string_view sample(text);
      bool truncated = sample.size() > internal::kSniffBytes;
      sample = sample.substr(0, internal::Utf8Prefix(sample, internal::kSniffBytes));
      char delimiter = internal::DetectCsvDelimiter(sample, truncated, true);
      out.text = internal::ExtractCsv(text, delimiter != '\0' ? delimiter : ',', &out.description);
      break;
    }
    case FileKind::kJson: {
      auto json = internal::ExtractJson(text, &out.description);
      if (!json) return json.status();
      out.text = std::move(*json);
      break;
    }
    case FileKind::kHtml: {
      auto html = internal::ExtractHtml(text, &out.tables);
      if (!html) return html.status();
      out.text = std::move(*html);
      break;
    }
    default:
      return InvalidArgument(kInvalidFormat);
  }
  return out;
}

Result<Extracted> ExtractRtf(int fd, const Limits& limits) {
  internal::RtfReader reader(static_cast<size_t>(limits.max_text_bytes));
  std::string block(kRtfReadBytes, '\0');
  Status status;
  off_t offset = 0;
  while (status.ok()) {
    ssize_t n = ::pread(fd, block.data(), block.size(), offset);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Unavailable(std::string("read input: ") + std::strerror(errno));
    if (n == 0) break;
    offset += n;
    status = reader.Feed(std::string_view(block.data(), static_cast<size_t>(n)));
  }
  if (!status.ok()) return status;
  auto text = reader.Finish();
  if (!text) return text.status();
  Extracted out;
  out.text = std::move(*text);
  return out;
}

}  // namespace

Result<Extracted> Extract(const std::string& path, FileKind kind, const Limits& limits) {
  auto fd = internal::OpenForReading(path);
  if (!fd) return fd.status();
  return ExtractFd(fd->get(), kind, limits);
}

Result<Extracted> ExtractFd(int fd, FileKind kind, const Limits& limits) {
  int64_t size = 0;
  auto probe = internal::ReadHead(fd, 0, &size);
  if (!probe) return probe.status();
  if (size > limits.max_input_bytes) {
    return ResourceExhausted("file is " + std::to_string(size) + " bytes, over the " +
                             std::to_string(limits.max_input_bytes) + "-byte processing limit");
  }
  Result<Extracted> out = InvalidArgument(kInvalidFormat);
  switch (kind) {
    case FileKind::kText:
    case FileKind::kMarkdown:
    case FileKind::kCsv:
    case FileKind::kJson:
    case FileKind::kHtml:
      out = ExtractTextKind(fd, kind, limits);
      break;
    case FileKind::kRtf:
      out = ExtractRtf(fd, limits);
      break;
    case FileKind::kPdf:
      out = internal::ExtractPdf(fd, limits);
      break;
    case FileKind::kDocx:
    case FileKind::kXlsx:
    case FileKind::kPptx:
    case FileKind::kOdt:
    case FileKind::kOds:
    case FileKind::kOdp:
      out = internal::ExtractOffice(fd, kind, limits);
      break;
    case FileKind::kImage:
      out = internal::ExtractImage(fd, limits);
      break;
    case FileKind::kUnknown:
      break;
  }
  if (!out) return out;
  const auto max_text = static_cast<size_t>(std::max<int64_t>(limits.max_text_bytes, 0));
  for (std::string* s : {&out->text, &out->summary_text}) {
    if (s->size() > max_text) s->resize(internal::Utf8Prefix(*s, max_text));
  }
  return out;
}

}  // namespace conveyor::processing
