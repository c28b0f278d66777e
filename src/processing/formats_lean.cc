// The formats of conveyor_processing_lean: everything but PDF and images,
// whose libraries (poppler, Tesseract) this build is linked without. The
// sandbox runs such a file again in a child of the full extract server
// (worker/sandbox.h).
#include "processing/internal/ocr.h"
#include "processing/internal/pdf.h"
#include "processing/processing.h"

namespace conveyor::processing {

bool Extracts(FileKind k) { return k != FileKind::kPdf && k != FileKind::kImage; }

namespace internal {

// Not reached (Run stops at Extracts); kept so that ExtractFd links.
Result<Extracted> ExtractPdf(int /*fd*/, const Limits& /*limits*/) {
  return Unimplemented("pdf needs the full extractor");
}

Result<Extracted> ExtractImage(int /*fd*/, const Limits& /*limits*/) {
  return Unimplemented("image needs the full extractor");
}

}  // namespace internal
}  // namespace conveyor::processing
