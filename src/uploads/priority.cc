// Job priorities from tier, size and uploads in flight (see uploads/priority.h).
#include "uploads/priority.h"

#include <algorithm>

#include "queue/job.h"

namespace conveyor::uploads {

Tier ParseTier(std::string_view claim) {
  if (claim == "premium") return Tier::kPremium;
  if (claim == "free") return Tier::kFree;
  return Tier::kStandard;
}

std::string_view TierName(Tier tier) {
  switch (tier) {
    case Tier::kPremium:
      return "premium";
    case Tier::kFree:
      return "free";
    case Tier::kStandard:
      break;
  }
  return "standard";
}

int JobPriority(Tier tier, int64_t size_bytes, int64_t in_flight, const PrioritySettings& settings) {
  int64_t p = tier == Tier::kPremium ? 1 : tier == Tier::kStandard ? 4 : 8;
  if (size_bytes >= kLargeUploadBytes) {
    p += 2;
  } else if (size_bytes >= kSmallUploadBytes) {
    p += 1;
  }
  if (settings.in_flight_step > 0 && in_flight > 0) p += in_flight / settings.in_flight_step;
  return static_cast<int>(std::clamp<int64_t>(p, 1, queue::kMaxPriority));
}

}  // namespace conveyor::uploads
