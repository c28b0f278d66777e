// File: processing/internal/ocr.h
#pragma once

#include <string>
#include <string_view>

#include "core/error.h"
#include "processing/processing.h"

namespace conveyor::processing::internal {

// Text of the PNG, JPEG or TIFF image open as `fd` by Tesseract OCR (English;
// for a multi-page TIFF, the first page). The dimensions are read from the
// header first: more than Limits::max_image_pixels is kResourceExhausted
// before any decoding. kInvalidArgument "Invalid file format" when the image
// cannot be decoded; kUnavailable when the OCR engine or its English data is
// missing (an installation problem, not the file's).
Result<Extracted> ExtractImage(int fd, const Limits& limits);

// True when the PNG `png` runs chunk by chunk to its IEND chunk (bytes after
// IEND are allowed, as every reader allows them); false for a cut file.
bool PngReachesIend(std::string_view png);

}  // namespace conveyor::processing::internal
