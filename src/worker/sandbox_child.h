// File: worker/sandbox_child.h
//
// The child side of RunSandboxed (sandbox.h): what `conveyor extract` runs.
// Applies its limits and confinement (confine.h) first, then reads one
// request from stdin, runs processing::Run on the upload open as kInputFd and
// answers on stdout (sandbox_protocol.h).
#pragma once

#include <string>

#include "worker/sandbox_protocol.h"

namespace conveyor::worker::sandbox {

// Fault injection for tests (CONVEYOR_EXTRACT_TEST_FAULT): after reading the
// request the child misbehaves on purpose, so tests can check the parent.
enum class TestFault {
  kNone,
  kCrash,  // "crash": abort()
  kSpin,   // "spin":  busy-loop forever (CPU limit or wall-clock timeout)
  kAlloc,  // "alloc": allocate and touch memory until the limit
  kFlood,  // "flood": print endless output
};

// "crash" | "spin" | "alloc" | "flood" -> the fault; anything else kNone.
TestFault ParseTestFault(const std::string& name);

// The whole child; returns the process exit status. Never returns for a
// fault that crashes or loops. `probe`: confine, report the layers
// (ProbeLine) and exit without reading anything.
int RunExtractChild(const ChildLimits& limits, TestFault fault, bool probe = false);

}  // namespace conveyor::worker::sandbox
