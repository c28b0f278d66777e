// File: queue/internal/job_json.h
//
// BullMQ `opts` JSON <-> JobOptions. Reading is lenient: opts written by Lua
// cjson (any key order, "\/" escapes, 14-digit numbers, {} for []) or by Node
// parses, and whatever is absent or malformed takes BullMQ's meaning.
#pragma once

#include <string>
#include <string_view>

#include "queue/job.h"

namespace conveyor::queue::internal {

// opts as conveyor writes them: attempts, backoff {type, delay},
// removeOnComplete/removeOnFail (n, true for 0, false for -1), delay when > 0,
// and jobId.
std::string JobOptionsToJson(const std::string& job_id, const JobOptions& opts);

// Reads opts as any BullMQ producer wrote them. Missing keys take BullMQ's
// defaults, not conveyor's: attempts 0, no backoff (delay 0), keep all
// finished jobs (-1). An object retention {count:n} reads as n (age is not
// applied); {} or no count as -1.
JobOptions ParseJobOptions(std::string_view opts_json);

// Reads one field of a job's hash (as move_to_active returns it) into `job`:
// name, data, opts (kept verbatim; parse with ParseJobOptions once all fields
// are read), timestamp, atm (or the older attemptsMade when atm is absent),
// ats, stc, defa. Other fields are ignored; a number that does not parse
// reads as 0.
void ReadJobField(std::string_view key, std::string value, ActiveJob* job);

}  // namespace conveyor::queue::internal
