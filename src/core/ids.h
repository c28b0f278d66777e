// File: core/ids.h
//
// Identifiers and time. Job ids are random UUIDv4 strings (also the BullMQ job
// id, so they must never look like an integer: a UUID never does).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace conveyor {

// A random RFC 4122 version-4 UUID in lower-case canonical form
// ("xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx"). Thread-safe; uses the OS CSPRNG.
std::string NewUuid();

// True when `s` is in the canonical form NewUuid() produces (any version).
bool IsUuid(std::string_view s);

// Milliseconds since the Unix epoch, from the wall clock (BullMQ's timestamps
// and scores are wall-clock ms).
int64_t NowMs();

// Lower-case hex of `bytes`.
std::string HexEncode(std::string_view bytes);

}  // namespace conveyor
