// File: processing/internal/pdf.h
#pragma once

#include <string>
#include <string_view>

#include "core/error.h"
#include "processing/processing.h"

namespace conveyor::processing::internal {

// The text layer of the PDF open as `fd`, page by page (pages separated by a
// blank line), with `pages` set. Errors (kInvalidArgument): "Encrypted PDF is
// not supported" for any encrypted PDF; "Invalid PDF: truncated (no %%EOF
// marker)" for a file cut short; "Invalid file format" when poppler cannot
// read it; "Invalid PDF: no pages".
Result<Extracted> ExtractPdf(int fd, const Limits& limits);

// True when the PDF `pdf` ends with "%%EOF" within its last KiB, trailing
// whitespace and NULs not counted (what real readers accept); false for a
// file cut short.
bool HasEofMarker(std::string_view pdf);

}  // namespace conveyor::processing::internal
