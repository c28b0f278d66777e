#include "queue/job.h"

#include <cmath>

namespace conveyor::queue {

int64_t BackoffDelayMs(BackoffType type, int64_t delay_ms, int attempts_made) {
  if (delay_ms <= 0) return 0;
  if (type == BackoffType::kFixed) return delay_ms;
  int n = attempts_made < 1 ? 1 : attempts_made;
  if (n > 40) n = 40;  // 2^39 * delay is already centuries; keep the double exact
  return static_cast<int64_t>(std::llround(std::ldexp(static_cast<double>(delay_ms), n - 1)));
}

bool ShouldRetry(int attempts_made_before, int attempts, bool transient) {
  return transient && attempts_made_before + 1 < attempts;
}

}  // namespace conveyor::queue
