// libFuzzer target for the tus routes' structured request fields
// (http/internal/tus_fields.h): Upload-Metadata and Upload-Checksum come from
// any client with a token, so both are untrusted, and base64 both ways.
//
// Invariants: base64 round-trips (Decode(Encode(x)) == x); a decoded value
// re-encodes to a string that decodes to it again; accepted metadata has a
// valid session id and a UTF-8 message within its limit, and re-encoding its
// fields gives metadata that parses to the same fields; an accepted checksum
// is 32 bytes.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "core/ids.h"
#include "http/internal/tus_fields.h"
#include "uploads/uploads.h"

using namespace conveyor;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);

  if (Base64Decode(Base64Encode(in)) != std::string(in)) std::abort();
  if (auto d = Base64Decode(in)) {
    if (Base64Decode(Base64Encode(*d)) != *d) std::abort();
  }

  std::string_view code;
  auto m = http::ParseUploadMetadata(in, &code);
  if (m) {
    if (!CheckSessionId(m->session_id).ok()) std::abort();
    if (m->message.size() > uploads::kMaxMessageBytes || !IsValidUtf8(m->message)) std::abort();
    std::string again = "session_id " + Base64Encode(m->session_id) + ",filename " +
                        Base64Encode(m->filename) + ",filetype " +
                        Base64Encode(m->filetype) + ",message " +
                        Base64Encode(m->message);
    auto m2 = http::ParseUploadMetadata(again, &code);
    if (!m2 || m2->session_id != m->session_id || m2->filename != m->filename ||
        m2->filetype != m->filetype || m2->message != m->message) {
      std::abort();
    }
  } else if (code.empty()) {
    std::abort();  // every refusal names its code
  }

  auto c = http::ParseUploadChecksum(in);
  if (c && c->has_value() && (*c)->size() != 32) std::abort();
  return 0;
}
