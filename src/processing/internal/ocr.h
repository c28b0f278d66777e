// File: processing/internal/ocr.h
#pragma once

#include <string>

#include "core/error.h"
#include "processing/processing.h"

namespace conveyor::processing::internal {

// Text of the PNG, JPEG or TIFF image at `path` by Tesseract OCR (English;
// for a multi-page TIFF, the first page). The dimensions are read from the
// header first: more than Limits::max_image_pixels is kResourceExhausted
// before any decoding. kInvalidArgument "Invalid file format" when the image
// cannot be decoded; kUnavailable when the OCR engine or its English data is
// missing (an installation problem, not the file's).
Result<Extracted> ExtractImage(const std::string& path, const Limits& limits);

}  // namespace conveyor::processing::internal
