#include "core/clock.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <thread>

#include "core/ids.h"

namespace conveyor {
namespace {

TEST(Clock, SystemClockIsMonotonicAndTellsTheWallTime) {
  const Clock& clock = SystemClock();
  EXPECT_EQ(&clock, &SystemClock());
  const int64_t before = clock.MonotonicMs();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  const int64_t after = clock.MonotonicMs();
  EXPECT_GE(after - before, 20);
  EXPECT_LT(after - before, 5000);
  // The same epoch milliseconds as the rest of the service uses.
  EXPECT_LE(std::abs(clock.EpochMs() - NowMs()), 1000);
}

}  // namespace
}  // namespace conveyor
