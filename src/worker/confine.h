// File: worker/confine.h
//
// The confinement of a `conveyor extract` child (sandbox.h), applied by the
// child to itself before it reads a byte of its request or of the upload.
// Each layer is independent; together they leave parser code (poppler,
// libarchive, libxml2, Tesseract, libmagic) able to read its one input
// descriptor, read-only libraries and data, and write to its stdout/stderr
// pipes, and nothing else:
//
//   uid       when started as root: setgroups([]), then group and user
//             ChildLimits::uid (65534, "nobody", by default). The child cannot
//             open the database or uploads (0600, the service's account),
//             signal or ptrace the worker, or read its /proc files.
//   landlock  a Landlock ruleset (every file-system right the kernel's ABI
//             knows, v1..v7) allowing only reading files and listing
//             directories beneath kReadOnlyPaths; no writes, truncation,
//             creation, removal, device ioctls anywhere; with ABI v4+ no TCP
//             bind/connect; with ABI v6+ no signals to, nor abstract UNIX
//             sockets of, processes outside the sandbox.
//   seccomp   an allowlist (libseccomp): what the parsers call, nothing else.
//             Threads yes (clone with CLONE_THREAD; clone3 answers ENOSYS so
//             libc falls back to clone), processes no (fork, vfork, clone
//             without CLONE_THREAD, execve, execveat); open/openat only
//             without write, create, truncate or append flags; no socket,
//             ptrace, process_vm_*, io_uring, bpf, perf, keyctl, mount,
//             unshare/setns, memfd; signals only to itself; prlimit64 only to
//             read its own limits. Refused calls fail with EPERM (socket with
//             EACCES), so a parser sees an error, not a crash.
//   netns     a new network namespace (as root: unshare(CLONE_NEWNET); else
//             with a user namespace): no interface but a down loopback.
//
// Plus, always: rlimits (CPU, address space, no file writes, open files, no
// core), no_new_privs, non-dumpable, PR_SET_PDEATHSIG, descriptors other than
// 0..3 closed.
//
// The worker itself is made non-dumpable (ProtectWorkerProcess): its /proc
// files (environ with JWT_SECRET, REDIS_PASSWORD, AI_API_KEY; mem; fds) are
// then closed to any process without CAP_SYS_PTRACE, even one of its own uid
// where no separate uid is available.
#pragma once

#include <linux/filter.h>
#include <sys/types.h>

#include <string>
#include <vector>

#include "core/error.h"
#include "worker/sandbox_protocol.h"

namespace conveyor::worker::sandbox {

// The confinement layers, by name: "uid", "landlock", "seccomp", "netns".
inline constexpr const char* kLayerNames[] = {"uid", "landlock", "seccomp", "netns"};

struct Layers {
  bool uid = false;
  bool landlock = false;
  int landlock_abi = 0;  // 0 when the kernel has no Landlock
  bool seccomp = false;
  bool netns = false;

  bool Has(std::string_view name) const;
  // '+'-joined names of the layers in place ("uid+landlock+seccomp+netns"),
  // "none" when none is.
  std::string ToString() const;
};

// Parses a '+'- or ','-joined layer list ("uid+landlock+seccomp+netns").
Layers ParseLayers(std::string_view text);

// SANDBOX_REQUIRE: "none", "all", or a comma-separated list of layer names.
// Returns the canonical '+'-joined list ("" for none); kInvalidArgument
// naming the unknown word.
Result<std::string> ParseRequirement(std::string_view text);

// The names in `required` ('+'-joined) that `have` lacks, '+'-joined; "" when
// every one is there.
std::string MissingLayers(const Layers& have, std::string_view required);

// Directories and files the child may read (when present): shared
// libraries, libmagic's database, Tesseract's data, iconv modules, fonts.
// Nothing under them is writable, and /home, /root, /tmp, /var/lib, /proc,
// /run, the service's data and every other path are invisible.
extern const std::vector<std::string> kReadOnlyPaths;

// Confines the calling process (which must be single-threaded) with every
// layer the kernel grants, plus the always-on limits above. Keeps
// descriptors 0..kInputFd. Returns the layers that were applied.
Layers Confine(const ChildLimits& limits);

// Builds once, in the calling process, what every child's Confine would
// otherwise build for itself: the Landlock ruleset (a descriptor) and, as
// root, an empty network namespace (created, left at once, kept open by a
// descriptor), and the seccomp program's template (SeccompProgramFromTemplate).
// The caller itself is not confined by any. Children forked afterwards
// inherit them, and their Confine applies them (landlock_restrict_self on the
// ruleset, setns into the namespace, the template with its own pid) instead
// of building their own; all
// such children share that one namespace, in which nothing is configured and
// which seccomp keeps them from using anyway. The extract server calls it
// once at start: a network namespace costs about a millisecond to make and more
// to tear down. Not thread-safe; call before forking.
void PrepareConfinement();

// The seccomp allowlist as libseccomp compiles it for the process `pid`
// (the only one it may signal): a classic BPF program, empty on failure.
std::vector<sock_filter> SeccompProgram(pid_t pid);

// Instruction for instruction the same.
bool SameProgram(const std::vector<sock_filter>& a, const std::vector<sock_filter>& b);

// The same program made without libseccomp, from the one PrepareConfinement
// compiled once with a placeholder pid: the placeholder's instructions take
// `pid`. Empty when this process has no template. Confine uses it when it
// can: libseccomp's compilation was about a fifth of a forked child's cost.
std::vector<sock_filter> SeccompProgramFromTemplate(pid_t pid);

// Closes what PrepareConfinement made, in a child that will not Confine.
void ReleasePreparedConfinement();

// Closes every descriptor above `last_kept` except those PrepareConfinement
// made (a forked child calls it before Confine, which uses and closes them).
void CloseDescriptorsAbove(int last_kept);

// Sets Confine's limits on CPU time, address space, file size and core dumps
// on the process `pid` from outside (prlimit), never raising a hard limit:
// the starter of a child binds it even if the child skipped them.
void LimitFromOutside(pid_t pid, const ChildLimits& limits);

// Makes the calling process non-dumpable (PR_SET_DUMPABLE 0). Idempotent.
// True when it holds.
bool ProtectWorkerProcess();

}  // namespace conveyor::worker::sandbox
