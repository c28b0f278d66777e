// Image text with leptonica (decoding) and Tesseract (recognition).
#include "processing/internal/ocr.h"

#include <leptonica/allheaders.h>
#include <tesseract/baseapi.h>

#include <memory>
#include <mutex>
#include <string_view>

#include "processing/internal/sniff.h"
#include "processing/internal/text_util.h"

namespace conveyor::processing::internal {
namespace {

// Resolution Tesseract assumes; images rarely carry a trustworthy one and
// without it Tesseract guesses (and says so on stderr).
constexpr char kAssumedDpi[] = "300";

// A PNG's last 12 bytes: the empty IEND chunk and its CRC.
constexpr std::string_view kPngSignature("\x89PNG\r\n\x1a\n", 8);

struct PixFree {
  void operator()(Pix* p) const { pixDestroy(&p); }
};

// leptonica reports decoding trouble on stderr; its severity threshold is a
// process-wide library setting, lowered once.
void SilenceLeptonica() {
  static std::once_flag once;
  std::call_once(once, [] { setMsgSeverity(L_SEVERITY_NONE); });
}

// One engine per thread: a TessBaseAPI is not thread-safe, and loading the
// English model (~4 MB) per image would dominate the cost of small images.
class Engine {
 public:
  tesseract::TessBaseAPI* Get() {
    if (!tried_) {
      tried_ = true;
      auto api = std::make_unique<tesseract::TessBaseAPI>();
      // Config variables that must be set before Init: keep debug output
      // off stderr.
      api->SetVariable("debug_file", "/dev/null");
      if (api->Init(nullptr, "eng", tesseract::OEM_LSTM_ONLY) == 0) {
        api->SetVariable("user_defined_dpi", kAssumedDpi);
        api_ = std::move(api);
      }
    }
    return api_.get();
  }

 private:
  bool tried_ = false;
  std::unique_ptr<tesseract::TessBaseAPI> api_;
};

}  // namespace

bool PngReachesIend(std::string_view png) {
  if (!png.starts_with(kPngSignature)) return false;
  // Chunk by chunk (length, type, data, CRC) until IEND; whatever follows
  // IEND is ignored, as libpng and every viewer ignore it. One step per
  // chunk of at least 12 bytes: bounded by the file's size.
  size_t pos = kPngSignature.size();
  while (png.size() - pos >= 12) {
    auto b = [&](size_t k) { return static_cast<uint32_t>(static_cast<unsigned char>(png[pos + k])); };
    uint64_t length = (b(0) << 24) | (b(1) << 16) | (b(2) << 8) | b(3);
    if (length > 0x7fffffffu) return false;  // the PNG spec's bound
    if (png.substr(pos + 4, 4) == "IEND") return true;
    uint64_t next = pos + 12 + length;
    if (next > png.size()) return false;
    pos = static_cast<size_t>(next);
  }
  return false;
}

Result<Extracted> ExtractImage(int fd, const Limits& limits) {
  SilenceLeptonica();
  int64_t size = 0;
  auto bytes = ReadHead(fd, static_cast<size_t>(limits.max_input_bytes) + 1, &size);
  if (!bytes) return bytes.status();
  const auto* data = reinterpret_cast<const l_uint8*>(bytes->data());
  l_int32 format = 0, w = 0, h = 0, bps = 0, spp = 0, iscmap = 0;
  if (pixReadHeaderMem(data, bytes->size(), &format, &w, &h, &bps, &spp, &iscmap) != 0 || w <= 0 ||
      h <= 0) {
    return InvalidArgument("Invalid file format");
  }
  int64_t pixels = static_cast<int64_t>(w) * h;
  if (pixels > limits.max_image_pixels) {
    return ResourceExhausted("Image of " + std::to_string(w) + "x" + std::to_string(h) +
                             " pixels is over the " + std::to_string(limits.max_image_pixels) +
                             "-pixel limit");
  }
  // libpng reports a cut file on stderr with no way to turn that off: a PNG
  // must end in its IEND chunk before we hand it over.
  if (format == IFF_PNG && !PngReachesIend(*bytes)) {
    return InvalidArgument("Invalid PNG: truncated (no IEND chunk)");
  }
  std::unique_ptr<Pix, PixFree> pix(pixReadMem(data, bytes->size()));
  if (!pix) return InvalidArgument("Invalid file format");
  // The decoded image must be the one the header described (a header is
  // cheap to forge; a decoder that disagrees is reading something else).
  if (static_cast<int64_t>(pixGetWidth(pix.get())) * pixGetHeight(pix.get()) > limits.max_image_pixels) {
    return ResourceExhausted("Image is over the " + std::to_string(limits.max_image_pixels) +
                             "-pixel limit");
  }
  thread_local Engine engine;
  tesseract::TessBaseAPI* api = engine.Get();
  if (api == nullptr) {
    return Unavailable("OCR is unavailable: Tesseract could not load its English data (eng.traineddata)");
  }
  Extracted out;
  try {
    api->SetImage(pix.get());
    std::unique_ptr<char[]> text(api->GetUTF8Text());
    api->Clear();
    if (text) out.text = text.get();
  } catch (...) {
    api->Clear();
    return InvalidArgument("Invalid file format");
  }
  if (!IsValidUtf8(out.text, false)) return InvalidArgument("Invalid file format");
  return out;
}

}  // namespace conveyor::processing::internal
