// File: processing/internal/pdf.h
#pragma once

#include <string>

#include "core/error.h"
#include "processing/processing.h"

namespace conveyor::processing::internal {

// The text layer of the PDF at `path`, page by page (pages separated by a
// blank line), with `pages` set. Errors (kInvalidArgument): "Encrypted PDF is
// not supported" for any encrypted PDF; "Invalid PDF: truncated (no %%EOF
// marker)" for a file cut short; "Invalid file format" when poppler cannot
// read it; "Invalid PDF: no pages".
Result<Extracted> ExtractPdf(const std::string& path, const Limits& limits);

}  // namespace conveyor::processing::internal
