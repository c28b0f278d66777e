// The formats of conveyor_processing: every one (pdf.cc and ocr.cc are linked).
#include "processing/processing.h"

namespace conveyor::processing {

bool Extracts(FileKind /*k*/) { return true; }

}  // namespace conveyor::processing
