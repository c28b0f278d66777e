// File: uploads/priority.h
//
// The queue priority of an upload's job: from the user's tier (the JWT claim
// `tier`), the file's size and how many of the user's uploads are already in
// flight. BullMQ priorities: 1 is served first; every job in `wait`
// (priority 0, e.g. added by the reconciler or by Node without a priority)
// goes before any prioritized job.
//
//   priority = tier base + size step + in_flight / in_flight_step
//
//   tier       base      size              step
//   premium    1         < 1 MiB           +0
//   standard   4         < 16 MiB          +1
//   free       8         >= 16 MiB         +2
//
// The bases are spaced so that tiers never overlap by size alone: a premium
// upload of any size goes before any standard one, a standard one before any
// free one, when neither user has uploads in flight.
//
// Fairness. (1) One user's burst does not hold another user's upload behind
// all of it: each `in_flight_step` uploads a user already has in flight push
// the next one a priority step back, so a single upload from another user
// of the same tier waits behind at most `in_flight_step` of the burst. (2)
// No tier starves: jobs carry an aging time (queue::JobOptions::aging_ms);
// once a prioritized job has waited that long, move_to_active.lua serves the
// longest overdue job on every second fetch from `prioritized`, whatever
// its priority. So under any stream of premium jobs a free job starts at
// most aging_ms plus two fetches per overdue job older than it after it was
// added.
#pragma once

#include <cstdint>
#include <string_view>

namespace conveyor::uploads {

enum class Tier { kPremium, kStandard, kFree };

// The `tier` claim: "premium", "standard" or "free"; anything else
// (missing, another word) is standard.
Tier ParseTier(std::string_view claim);
std::string_view TierName(Tier tier);

struct PrioritySettings {
  int64_t aging_ms = 60000;  // PRIORITY_AGING_MS; 0: no aging
  int in_flight_step = 10;   // PRIORITY_IN_FLIGHT_STEP; 0: in-flight uploads do not count
};

inline constexpr int64_t kSmallUploadBytes = 1 << 20;   // below: size step +0
inline constexpr int64_t kLargeUploadBytes = 16 << 20;  // from here: size step +2

// The job priority (1..queue::kMaxPriority) of an upload of `size_bytes`
// from a user of `tier` who has `in_flight` uploads in flight before it.
int JobPriority(Tier tier, int64_t size_bytes, int64_t in_flight, const PrioritySettings& settings);

}  // namespace conveyor::uploads
