#include "queue/job.h"

#include <cmath>
#include <limits>

namespace conveyor::queue {

int64_t BackoffDelayMs(BackoffType type, int64_t delay_ms, int attempts_made) {
  if (delay_ms <= 0) return 0;
  if (type == BackoffType::kFixed) return delay_ms;
  int n = attempts_made < 1 ? 1 : attempts_made;
  if (n > 40) n = 40;  // 2^39 * delay is already centuries; keep the double exact
  double wait = std::ldexp(static_cast<double>(delay_ms), n - 1);
  // A delay from a producer's options may be near INT64_MAX: its doubles
  // overflow int64 (llround's result would then be unspecified, in practice
  // negative, i.e. no backoff at all). Such a wait is forever anyway.
  if (wait >= 0x1p63) return std::numeric_limits<int64_t>::max();
  return static_cast<int64_t>(std::llround(wait));
}

bool ShouldRetry(int attempts_made_before, int attempts, bool transient) {
  // In 64 bits: attempts made comes from the job's hash and may be INT_MAX.
  return transient && static_cast<int64_t>(attempts_made_before) + 1 < attempts;
}

}  // namespace conveyor::queue
