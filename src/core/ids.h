// File: core/ids.h
//
// Identifiers and time. Job ids are UUIDv7 strings (also the BullMQ job id,
// so they must never look like an integer: a UUID never does).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/error.h"

namespace conveyor {

// A random RFC 4122 version-4 UUID in lower-case canonical form
// ("xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx"). Thread-safe; uses the OS CSPRNG.
std::string NewUuid();

// A job id: an RFC 9562 version-7 UUID, lower-case canonical form. Its
// first 48 bits are the wall clock's milliseconds and the other 74 free bits
// random (CSPRNG), so ids made later sort later (across milliseconds) and a
// new job's rows land at the end of the indexes keyed by job id instead of
// on a random page of each: on a database of 1,000,000 chunks, random keys
// made every completion dirty and read pages all over those indexes. Still
// unguessable (74 random bits), and who may read a job is checked anyway.
std::string NewJobId();

// True when `s` is in the canonical form NewUuid() produces (any version).
bool IsUuid(std::string_view s);

// Milliseconds since the Unix epoch, from the wall clock (BullMQ's timestamps
// and scores are wall-clock ms).
int64_t NowMs();

// True when `s` is well-formed UTF-8 (no overlongs, surrogates or code
// points past U+10FFFF).
bool IsValidUtf8(std::string_view s);

// Longest accepted session id, in bytes.
inline constexpr size_t kMaxSessionIdBytes = 256;

// The one rule for a session id, applied by the upload path and by the worker
// to jobs that arrive without a row (Node.js producers), so that a session
// means the same bytes everywhere: 1..kMaxSessionIdBytes bytes of valid UTF-8,
// no NUL.
// Session ids are never rewritten (a replaced byte would file the memory
// under another session); a bad one is refused with kInvalidArgument.
Status CheckSessionId(std::string_view session_id);

// Lower-case hex of `bytes`.
std::string HexEncode(std::string_view bytes);

// Standard base64 (RFC 4648 §4) with padding.
std::string Base64Encode(std::string_view in);
// Standard base64, padding optional; nullopt when malformed.
std::optional<std::string> Base64Decode(std::string_view in);

}  // namespace conveyor
