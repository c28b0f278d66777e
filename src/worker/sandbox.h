// File: worker/sandbox.h
//
// Runs processing::Run on an untrusted upload in a child process, so that a
// malicious or broken file costs one job, never the worker (DESIGN.md §2).
//
// The child runs `conveyor extract`'s code (sandbox_child.h,
// RunExtractChild). It is started one of two ways (EXTRACT_FORK_SERVER):
//   on   forked by an extract server (fork_server.h): `<binary> extract-server`,
//        started once per binary in this process on first use (and again if
//        it dies), preloads libmagic and then forks a child per job; a job
//        pays for a fork instead of an exec, the loading of a binary linked
//        with poppler and Tesseract and libmagic's start-up (about five times
//        less CPU for a small file, bench/sandbox_cost.cc);
//   off  spawned: posix_spawn of `<binary_path> extract` for each job.
// With the fork server on and `lean_binary_path` set (EXTRACT_LEAN_SERVER),
// there are two servers. Every file goes first to a child of the lean one,
// `conveyor-extract` (src/app/extract_main.cc): the same child code linked
// with every format but PDF and images, and without the service's own
// libraries, some 20 libraries against about 80. A fork and an exit cost in
// proportion to the mappings a process has, so its children cost less. A
// lean child that classifies its file as a PDF or an image answers
// kUnimplemented right after classifying it (before its "extract" progress),
// and the file runs again in a child of the full server (`<binary_path>
// extract-server`), within what is left of the same timeout. Both children
// are confined alike; a file that claims kUnimplemented itself gains only a
// second confined child.
// `binary_path` is /proc/self/exe: the running conveyor binary. The upload
// reaches the child as an open read-only descriptor (sandbox::kInputFd),
// never as a path. Before it reads anything the child applies its limits,
// the same way on both paths:
//   RLIMIT_CPU     cpu_seconds (soft; hard one second later)
//   RLIMIT_AS      memory_mb
//   RLIMIT_FSIZE   0 (it writes no files; stdout/stderr are pipes)
//   RLIMIT_NOFILE  max_open_files
//   RLIMIT_CORE    0, and the process is made non-dumpable
// (No RLIMIT_NPROC: it counts threads too, and OCR starts threads.)
// and confines itself (confine.h): a separate uid when started as root,
// Landlock (read-only libraries and data, nothing else), a seccomp allowlist,
// a network namespace. A layer the kernel refuses is skipped, and the parent
// logs that once per process, unless `require` names it: then the child
// refuses the job (kUnavailable). ProbeSandbox tells at start which layers
// this host grants. The child gets a scrubbed environment (no secrets) and no
// descriptors but 0, 1, 2 and the input; so does the extract server.
//
// The parent enforces a wall-clock timeout and an output cap: past either it
// SIGKILLs the child's process group (through the server on the fork path).
// Every child that failed is reaped before RunSandboxed returns (no zombies;
// the server reaps its own children and reports their wait status). A child
// that gave its result is left to end meanwhile, and its end is awaited by
// SettleSandboxChild, which the thread's next RunSandboxed calls first: a
// thread has at most one child ending behind it.
//
// Wire format (sandbox_protocol.h): the request is one JSON object on the
// child's stdin; the child writes JSON lines on stdout: any number of
// {"progress":{...}} lines, then exactly one {"result":{...}} or
// {"error":{"code","message"}} line.
//
// Outcomes:
//   ok                                  the child's processing::Output
//   the child's own error               passed through with its code and message
//                                       (e.g. kInvalidArgument "Invalid file format")
//   child killed by a signal (crash)    kInvalidArgument "File could not be parsed (the parser
//   crashed)" CPU limit or wall-clock timeout     kDeadlineExceeded "File took too long to parse"
//   memory limit                        kResourceExhausted "File needs too much memory to parse"
//   output over max_output_bytes        kResourceExhausted "Extracted text too large"
//   the child cannot be started, or     kInternal (a deployment problem, not the file's);
//   breaks the protocol                 kUnavailable when fork/pipe fail for lack of resources
//   the extract server died or broke    kUnavailable (retried; the next job starts a new server)
//   with this job
//   (opening input.path) no such file   kFailedPrecondition kInputMissingMessage
// Every file-caused failure is permanent (not retried by the queue). A
// timeout has its own code so that the caller can tell it from the other
// limits without reading the message: kDeadlineExceeded is transient in
// general (core/error.h), so the worker decides what a timeout means (the
// file's fault, or the job's JOB_TIMEOUT_MS that cut `timeout_ms` short).
//
// Threads: RunSandboxed is blocking and thread-safe; any number may run at
// once (one child each, all from one extract server on the fork path).
// `progress` is called on the calling thread.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/error.h"
#include "processing/processing.h"
#include "worker/confine.h"

namespace conveyor::worker {

struct SandboxSettings {
  // The conveyor binary to run as `<binary_path> extract` or
  // `<binary_path> extract-server`.
  std::string binary_path = "/proc/self/exe";
  // EXTRACT_FORK_SERVER: children forked by the extract server (true) or
  // spawned one by one (false). See the file comment.
  bool fork_server = true;
  // EXTRACT_LEAN_SERVER: the lean extract server's binary (LeanExtractorBeside),
  // tried first for every file when fork_server is on; "" for none.
  std::string lean_binary_path;
  int64_t timeout_ms = 60000;                  // EXTRACT_TIMEOUT_MS: wall clock per file
  int64_t memory_mb = 1024;                    // EXTRACT_MEMORY_MB: child's address space
  int64_t cpu_seconds = 60;                    // EXTRACT_CPU_SECONDS: child's CPU time
  int64_t max_output_bytes = 64LL << 20;       // EXTRACT_MAX_OUTPUT_BYTES: stdout + stderr
  int64_t max_open_files = 64;                 // child's RLIMIT_NOFILE
  int64_t uid = 65534;                         // SANDBOX_UID: account (and group) of a child
                                               // started by root; -1: keep root's (not advised)
  std::string require;                         // SANDBOX_REQUIRE: '+'-joined layers the child
                                               // must have (confine.h), "" for none
  // Environment of the child, "NAME=value" each, on top of a few harmless
  // variables passed through (PATH, LANG, LC_ALL, TZ, TMPDIR, MAGIC) and
  // OMP_THREAD_LIMIT=1 (one OCR thread per child: workers run many). Nothing
  // else of the worker's environment (JWT_SECRET, AI_API_KEY...) reaches it.
  // Tests put CONVEYOR_EXTRACT_TEST_FAULT=... here. On the fork path the
  // child's environment is replaced by this one before its code runs, but
  // libraries that read a variable while loading (OMP_*, MAGIC) saw the
  // server's: the passed-through ones and OMP_THREAD_LIMIT=1 only.
  std::vector<std::string> extra_env;
};

// Runs `processing::Run(input, limits, progress)` in a sandboxed child; see
// the file comment for the outcomes. The child reads `input.fd` (which stays
// open and owned by the caller); without one, `input.path` is opened here
// (no symlink followed). The child's progress lines are passed to `progress`
// (which may be empty) as they arrive.
Result<processing::Output> RunSandboxed(const SandboxSettings& settings,
                                        const processing::Input& input,
                                        const processing::Limits& limits,
                                        const processing::ProgressFn& progress);

// Waits for the end of the calling thread's last child, when RunSandboxed
// returned its result without waiting for it (its job's deadline still
// bounds it: past that it is killed), and records the child's CPU time and
// peak memory in the metrics. Nothing to do otherwise. The worker calls it
// once a job's outcome is recorded, so that the child's exit overlaps the
// job's analysis and completion.
void SettleSandboxChild();

// Starts a child that confines itself and reports the layers it got, without
// reading anything: what this host grants. With a lean server, one child of
// each server, and the layers both have. Errors as for RunSandboxed (a child
// that cannot start is kInternal).
Result<sandbox::Layers> ProbeSandbox(const SandboxSettings& settings);

// The pid of the extract server of `binary` (settings.binary_path or
// settings.lean_binary_path), -1 when none is running (tests).
pid_t ExtractServerPid(const std::string& binary);

// `conveyor-extract` in the directory of `binary` (symbolic links resolved,
// so "/proc/self/exe" names the running binary's directory) when it is an
// executable file there, else "".
std::string LeanExtractorBeside(const std::string& binary);

// The messages of the sandbox's own failures (exposed for tests and callers
// that want to tell them apart).
inline constexpr char kParserCrashedMessage[] = "File could not be parsed (the parser crashed)";
inline constexpr char kParseTooLongMessage[] = "File took too long to parse";
inline constexpr char kParseTooMuchMemoryMessage[] = "File needs too much memory to parse";
inline constexpr char kExtractedTooLargeMessage[] = "Extracted text too large";
// What a client sees for a job whose upload is gone (the path stays in the log).
inline constexpr char kInputMissingMessage[] = "Uploaded file is missing";

}  // namespace conveyor::worker
