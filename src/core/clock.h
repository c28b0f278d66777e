// File: core/clock.h
//
// Time as the service reads it, behind an interface so that tests can move it
// (tests/support/fakes.h has a FakeClock). Code that measures deadlines or
// durations takes a `const Clock&` and defaults to SystemClock().
//
// Threads: every method is thread-safe.
#pragma once

#include <cstdint>

namespace conveyor {

class Clock {
 public:
  virtual ~Clock() = default;
  // Monotonic milliseconds (steady_clock; arbitrary origin): for deadlines
  // and durations. Never goes back.
  virtual int64_t MonotonicMs() const = 0;
  // Wall-clock milliseconds since the Unix epoch (system_clock).
  virtual int64_t EpochMs() const = 0;
};

// The process's real clock; lives as long as the process.
const Clock& SystemClock();

}  // namespace conveyor
