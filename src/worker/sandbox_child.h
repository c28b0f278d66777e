// File: worker/sandbox_child.h
//
// The child side of RunSandboxed (sandbox.h): what `conveyor extract` runs,
// and what every child of an extract server (`conveyor extract-server` or the
// lean `conveyor-extract extract-server`) runs after the fork. Applies its
// limits and confinement (confine.h) first, then reads one request from
// stdin, runs processing::Run on the upload open as kInputFd and answers on
// stdout (sandbox_protocol.h).
#pragma once

#include <string>

#include "worker/sandbox_protocol.h"

namespace conveyor::worker::sandbox {

// Fault injection for tests (CONVEYOR_EXTRACT_TEST_FAULT): after reading the
// request (or, for "linger", after its answer) the child misbehaves on
// purpose, so tests can check the parent.
enum class TestFault {
  kNone,
  kCrash,   // "crash": abort()
  kSpin,    // "spin":  busy-loop forever (CPU limit or wall-clock timeout)
  kAlloc,   // "alloc": allocate and touch memory until the limit
  kFlood,   // "flood": print endless output
  kLinger,  // "linger": answer, then busy-loop instead of exiting
};

// "crash" | "spin" | "alloc" | "flood" | "linger" -> the fault; anything
// else kNone.
TestFault ParseTestFault(const std::string& name);

// The whole child; returns the process exit status. Never returns for a
// fault that crashes or loops. `probe`: confine, report the layers
// (ProbeLine) and exit without reading anything.
int RunExtractChild(const ChildLimits& limits, TestFault fault, bool probe = false);

// The descriptor on which an extract server gets its control socket
// (fork_server.h).
inline constexpr int kServerControlFd = 3;

// RunExtractChild with the fault CONVEYOR_EXTRACT_TEST_FAULT names (tests).
int RunExtractChildFromEnvironment(const ChildLimits& limits, bool probe);

// The whole extract server: checks that kServerControlFd is a worker's
// control socket (exit status 2 when it is not: not started by a worker),
// closes every other descriptor above 2, preloads processing and serves the
// socket (RunForkServer), each child running
// RunExtractChildFromEnvironment. Returns the process exit status.
int RunExtractServer();

}  // namespace conveyor::worker::sandbox
