// libFuzzer target for the extractor child's stdout protocol as the worker
// decodes it: worker::sandbox::DecodeLine (worker/sandbox_protocol.h), one
// line in, a Message or an error out. The child runs hostile files, so a
// compromised child may write anything. Also decodes the input as the
// child's request (DecodeRequest), the other direction.
//
// Invariants: a decoded message re-encodes (ProgressLine / ResultLine /
// ErrorLine) to a line that decodes to the same message; a decoded error is
// never OK; a decoded request survives EncodeRequest -> DecodeRequest.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "worker/sandbox_protocol.h"

namespace {

using namespace conveyor::worker::sandbox;
using conveyor::processing::Output;

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "sandbox_protocol_fuzz: invariant broken: %s\n", what);
    std::abort();
  }
}

bool SameOutput(const Output& a, const Output& b) {
  return a.kind == b.kind && a.text == b.text && a.summary == b.summary && a.chunks == b.chunks &&
         a.words == b.words && a.pages == b.pages && a.sheets == b.sheets &&
         a.slides == b.slides && a.tables == b.tables && a.encoding == b.encoding;
}

std::string Encode(const Message& m) {
  switch (m.type) {
    case Message::Type::kProgress: return ProgressLine(m.stage, m.percent);
    case Message::Type::kResult: return ResultLine(m.output, m.isolation);
    case Message::Type::kError: return ErrorLine(m.error);
    case Message::Type::kProbe: return ProbeLine(m.isolation);
  }
  return {};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view line(reinterpret_cast<const char*>(data), size);

  auto m = DecodeLine(line, kDefaultMaxDecodedBytes);
  if (m.ok()) {
    if (m->type == Message::Type::kError) Check(!m->error.ok(), "decoded error is OK");
    std::string again_line = Encode(*m);
    Check(!again_line.empty() && again_line.back() == '\n' &&
              again_line.find('\n') == again_line.size() - 1,
          "encoded message is not one line");
    auto again = DecodeLine(again_line);
    Check(again.ok(), "re-encoded message does not decode");
    Check(again->type == m->type, "message type changed");
    switch (m->type) {
      case Message::Type::kProgress:
        Check(again->stage == m->stage && again->percent == m->percent, "progress changed");
        break;
      case Message::Type::kResult:
        Check(SameOutput(again->output, m->output) && again->isolation == m->isolation,
              "result changed");
        break;
      case Message::Type::kError:
        Check(again->error.code() == m->error.code() &&
                  again->error.message() == m->error.message(),
              "error changed");
        break;
      case Message::Type::kProbe:
        Check(again->isolation == m->isolation, "probe layers changed");
        break;
    }
  } else {
    Check(m.code() == conveyor::Errc::kInvalidArgument, "bad line is not kInvalidArgument");
  }

  auto request = DecodeRequest(line);
  if (request.ok()) {
    auto again = DecodeRequest(EncodeRequest(*request));
    Check(again.ok(), "re-encoded request does not decode");
    Check(again->input.path == request->input.path &&
              again->input.name_hint == request->input.name_hint &&
              again->input.message == request->input.message &&
              again->limits.max_input_bytes == request->limits.max_input_bytes &&
              again->limits.max_text_bytes == request->limits.max_text_bytes &&
              again->limits.chunk_chars == request->limits.chunk_chars &&
              again->limits.chunk_overlap_chars == request->limits.chunk_overlap_chars &&
              again->limits.summary_sentences == request->limits.summary_sentences,
          "request changed");
  }
  return 0;
}
