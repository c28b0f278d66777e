// Confinement of the extract child; see confine.h for what each layer does.
// Order matters: the uid drop needs root, so it comes before no_new_privs
// and the filters; Landlock comes before seccomp, whose allowlist has no
// landlock_* calls; PR_SET_PDEATHSIG and the dumpable flag are set after the
// credentials change, which resets both.
#include "worker/confine.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/landlock.h>
#include <linux/seccomp.h>
#include <malloc.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <string>
#include <string_view>
#include <utility>

namespace conveyor::worker::sandbox {
namespace {

// Landlock rights, by ABI version (the kernel refuses rights it does not
// know, so the handled set is built from the version it reports).
// <linux/landlock.h> of older distributions lacks the newer constants.
constexpr uint64_t kFsV1 = (1ULL << 13) - 1;  // EXECUTE .. MAKE_SYM
constexpr uint64_t kFsRefer = 1ULL << 13;     // v2
constexpr uint64_t kFsTruncate = 1ULL << 14;  // v3
constexpr uint64_t kFsIoctlDev = 1ULL << 15;  // v5
constexpr uint64_t kNetBindTcp = 1ULL << 0;   // v4
constexpr uint64_t kNetConnectTcp = 1ULL << 1;
constexpr uint64_t kScopeAbstractUnix = 1ULL << 0;  // v6
constexpr uint64_t kScopeSignal = 1ULL << 1;
constexpr uint64_t kFsReadFile = 1ULL << 2;
constexpr uint64_t kFsReadDir = 1ULL << 3;

// struct landlock_ruleset_attr as of ABI v6 (a prefix of it is passed to
// kernels that know less).
struct RulesetAttr {
  uint64_t handled_access_fs;
  uint64_t handled_access_net;
  uint64_t scoped;
};
struct PathBeneathAttr {
  uint64_t allowed_access;
  int32_t parent_fd;
} __attribute__((packed));

#ifndef __NR_landlock_create_ruleset
#define __NR_landlock_create_ruleset 444
#define __NR_landlock_add_rule 445
#define __NR_landlock_restrict_self 446
#endif
constexpr int kRulePathBeneath = 1;  // LANDLOCK_RULE_PATH_BENEATH

int LandlockAbi() {
  long v = syscall(__NR_landlock_create_ruleset, nullptr, 0, LANDLOCK_CREATE_RULESET_VERSION);
  return v > 0 ? static_cast<int>(v) : 0;
}

// A ruleset of the read-only view (a descriptor), or -1 when the kernel has
// no Landlock; `*abi` gets the ABI it was built for.
int BuildLandlockRuleset(int* abi_out) {
  const int abi = LandlockAbi();
  *abi_out = abi;
  if (abi <= 0) return -1;
  RulesetAttr attr{};
  attr.handled_access_fs = kFsV1;
  if (abi >= 2) attr.handled_access_fs |= kFsRefer;
  if (abi >= 3) attr.handled_access_fs |= kFsTruncate;
  if (abi >= 5) attr.handled_access_fs |= kFsIoctlDev;
  size_t size = sizeof(uint64_t);
  if (abi >= 4) {
    attr.handled_access_net = kNetBindTcp | kNetConnectTcp;
    size = 2 * sizeof(uint64_t);
  }
  if (abi >= 6) {
    attr.scoped = kScopeAbstractUnix | kScopeSignal;
    size = sizeof(RulesetAttr);
  }
  int ruleset = static_cast<int>(syscall(__NR_landlock_create_ruleset, &attr, size, 0));
  if (ruleset < 0) return -1;
  for (const std::string& path : kReadOnlyPaths) {
    int fd = ::open(path.c_str(), O_PATH | O_CLOEXEC);
    if (fd < 0) continue;  // not on this system
    struct stat st {};
    PathBeneathAttr rule{};
    rule.allowed_access = kFsReadFile;
    if (::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) rule.allowed_access |= kFsReadDir;
    rule.parent_fd = fd;
    (void)syscall(__NR_landlock_add_rule, ruleset, kRulePathBeneath, &rule, 0);
    ::close(fd);
  }
  return ruleset;
}

// Applies the read-only view: the prepared ruleset if there is one, else one
// built now. Returns the ABI used, 0 when not applied.
int ApplyLandlock(int prepared, int prepared_abi) {
  int abi = prepared_abi;
  int ruleset = prepared >= 0 ? prepared : BuildLandlockRuleset(&abi);
  if (ruleset < 0) return 0;
  bool ok = syscall(__NR_landlock_restrict_self, ruleset, 0) == 0;
  ::close(ruleset);
  return ok ? abi : 0;
}

// The seccomp allowlist. Calls named here that this architecture lacks are
// skipped (seccomp_syscall_resolve_name answers __NR_SCMP_ERROR).
constexpr const char* kAllowed[] = {
    // I/O on descriptors already open (the input, the pipes, library data)
    "read", "readv", "pread64", "preadv", "preadv2", "write", "writev", "lseek", "close",
    "fstat", "newfstatat", "stat", "lstat", "statx", "fstatfs", "statfs", "access", "faccessat",
    "faccessat2", "readlink", "readlinkat", "getdents", "getdents64", "fcntl", "dup", "dup3",
    "fadvise64", "poll", "ppoll",
    // memory
    "brk", "mmap", "munmap", "mprotect", "mremap", "madvise", "mincore", "membarrier",
    // threads and their synchronisation
    "futex", "futex_waitv", "set_robust_list", "get_robust_list", "rseq", "set_tid_address",
    "sched_yield", "sched_getaffinity", "sched_getparam", "sched_getscheduler",
    "sched_get_priority_max", "sched_get_priority_min", "arch_prctl",
    // signals (delivery to itself; tgkill/kill are limited below)
    "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "sigaltstack", "restart_syscall",
    // identity, time, randomness, limits
    "getpid", "gettid", "getppid", "getuid", "geteuid", "getgid", "getegid", "getresuid",
    "getresgid", "getgroups", "getrandom", "clock_gettime", "clock_getres", "clock_nanosleep",
    "nanosleep", "gettimeofday", "time", "getrusage", "getrlimit", "sysinfo", "uname", "getcwd",
    "getpriority", "umask",
    // leaving
    "exit", "exit_group",
};

// Builds the allowlist for the process `self` (the only pid it may signal);
// nullptr on failure. The caller releases the context.
scmp_filter_ctx BuildSeccompFilter(pid_t self_pid) {
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));
  if (ctx == nullptr) return nullptr;
  bool ok = true;
  auto add = [&](uint32_t action, const char* name, std::initializer_list<scmp_arg_cmp> args = {}) {
    int nr = seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR) return;  // not on this architecture
    int rc = seccomp_rule_add_array(ctx, action, nr, static_cast<unsigned>(args.size()),
                                    args.size() ? args.begin() : nullptr);
    if (rc != 0) ok = false;
  };
  for (const char* name : kAllowed) add(SCMP_ACT_ALLOW, name);
  // Threads only: a clone that does not share the thread group is a process.
  add(SCMP_ACT_ALLOW, "clone", {SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD)});
  // clone3 passes its flags in memory, out of a filter's reach: ENOSYS makes
  // glibc fall back to clone.
  add(SCMP_ACT_ERRNO(ENOSYS), "clone3");
  // Opening read-only only; Landlock (or the uid) decides what.
  const scmp_datum_t kWriteFlags = O_WRONLY | O_RDWR | O_CREAT | O_TRUNC | O_APPEND;
  add(SCMP_ACT_ALLOW, "openat", {SCMP_A2(SCMP_CMP_MASKED_EQ, kWriteFlags, 0)});
  add(SCMP_ACT_ALLOW, "open", {SCMP_A1(SCMP_CMP_MASKED_EQ, kWriteFlags, 0)});
  add(SCMP_ACT_ERRNO(ENOSYS), "openat2");
  // Signals to itself only (abort() is tgkill(getpid(), ...)).
  const auto self = static_cast<scmp_datum_t>(self_pid);
  add(SCMP_ACT_ALLOW, "tgkill", {SCMP_A0(SCMP_CMP_EQ, self)});
  add(SCMP_ACT_ALLOW, "kill", {SCMP_A0(SCMP_CMP_EQ, self)});
  // Its own limits, read only.
  add(SCMP_ACT_ALLOW, "prlimit64", {SCMP_A0(SCMP_CMP_EQ, 0), SCMP_A2(SCMP_CMP_EQ, 0)});
  // Thread names (some runtimes set them).
  add(SCMP_ACT_ALLOW, "prctl", {SCMP_A0(SCMP_CMP_EQ, PR_SET_NAME)});
  add(SCMP_ACT_ALLOW, "prctl", {SCMP_A0(SCMP_CMP_EQ, PR_GET_NAME)});
  // isatty() and friends: "not a terminal" rather than EPERM.
  add(SCMP_ACT_ERRNO(ENOTTY), "ioctl");
  // Kept as before: a parser probing for a network gets EACCES.
  add(SCMP_ACT_ERRNO(EACCES), "socket");
  add(SCMP_ACT_ERRNO(EACCES), "socketpair");
  if (!ok) {
    seccomp_release(ctx);
    return nullptr;
  }
  return ctx;
}

// A value no pid takes (pid_max is at most 2^22) and no other comparison of
// the allowlist uses: where it stands in the template, the child's pid goes.
constexpr uint32_t kPidPlaceholder = 0x3ffffff1;

// What PrepareConfinement compiled: the allowlist with kPidPlaceholder, and
// where it stands. Empty when it could not be made as expected.
struct SeccompTemplate {
  std::vector<sock_filter> code;
  std::vector<size_t> pid_at;
};
SeccompTemplate g_seccomp_template;

bool ApplySeccomp() {
  std::vector<sock_filter> code = SeccompProgramFromTemplate(getpid());
  if (!code.empty()) {
    sock_fprog prog{static_cast<unsigned short>(code.size()), code.data()};
    return syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) == 0;
  }
  scmp_filter_ctx ctx = BuildSeccompFilter(getpid());
  if (ctx == nullptr) return false;
  bool ok = seccomp_load(ctx) == 0;
  seccomp_release(ctx);
  return ok;
}

// Lowers a limit to `value` (never raises the hard limit: that would fail).
void SetLimit(int resource, rlim_t soft, rlim_t hard) {
  struct rlimit cur {};
  if (getrlimit(resource, &cur) == 0 && cur.rlim_max != RLIM_INFINITY) {
    hard = std::min(hard, cur.rlim_max);
    soft = std::min(soft, hard);
  }
  struct rlimit lim {soft, hard};
  (void)setrlimit(resource, &lim);
}

// What PrepareConfinement built, inherited by forked children; -1: none.
struct Prepared {
  int landlock_ruleset = -1;
  int landlock_abi = 0;
  int netns = -1;
};
Prepared g_prepared;

// Takes a prepared descriptor out of g_prepared: the caller closes it.
int Take(int& fd) { return std::exchange(fd, -1); }

bool DropToUid(int64_t uid) {
  if (uid < 0 || geteuid() != 0) return false;
  const auto id = static_cast<uid_t>(uid);
  if (setgroups(0, nullptr) != 0) return false;
  if (setresgid(id, id, id) != 0) return false;
  if (setresuid(id, id, id) != 0) return false;
  // Root must be gone for good: not even a saved id to return to.
  uid_t r, e, s;
  return getresuid(&r, &e, &s) == 0 && r == id && e == id && s == id && setuid(0) != 0;
}

}  // namespace

const std::vector<std::string> kReadOnlyPaths = {
    "/usr", "/lib", "/lib64", "/lib32", "/libx32",  // libraries and their data (/usr/share)
    "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d",
    "/etc/magic", "/etc/magic.mime",                 // libmagic's local additions
    "/etc/fonts", "/var/cache/fontconfig",           // poppler's font configuration
    "/etc/localtime",
    "/sys/devices/system/cpu",                       // CPU count for OpenMP
    "/dev/null", "/dev/urandom",
};

bool Layers::Has(std::string_view name) const {
  if (name == "uid") return uid;
  if (name == "landlock") return landlock;
  if (name == "seccomp") return seccomp;
  if (name == "netns") return netns;
  return false;
}

std::string Layers::ToString() const {
  std::string out;
  for (const char* name : kLayerNames) {
    if (!Has(name)) continue;
    if (!out.empty()) out += '+';
    out += name;
  }
  return out.empty() ? "none" : out;
}

Layers ParseLayers(std::string_view text) {
  Layers l;
  while (!text.empty()) {
    size_t cut = text.find_first_of("+,");
    std::string_view word = text.substr(0, cut);
    if (word == "uid") l.uid = true;
    if (word == "landlock") l.landlock = true;
    if (word == "seccomp") l.seccomp = true;
    if (word == "netns") l.netns = true;
    if (cut == std::string_view::npos) break;
    text.remove_prefix(cut + 1);
  }
  return l;
}

Result<std::string> ParseRequirement(std::string_view text) {
  if (text == "none" || text.empty()) return std::string();
  if (text == "all") return std::string("uid+landlock+seccomp+netns");
  Layers want;
  std::string_view rest = text;
  while (true) {
    size_t cut = rest.find(',');
    std::string_view word = rest.substr(0, cut);
    while (!word.empty() && word.front() == ' ') word.remove_prefix(1);
    while (!word.empty() && word.back() == ' ') word.remove_suffix(1);
    bool known = std::any_of(std::begin(kLayerNames), std::end(kLayerNames),
                             [&](const char* n) { return word == n; });
    if (!known) {
      return InvalidArgument("SANDBOX_REQUIRE=\"" + std::string(text) + "\": unknown layer \"" +
                             std::string(word) + "\" (none, all, or a list of uid, landlock, " +
                             "seccomp, netns)");
    }
    want = ParseLayers(std::string(word) + "+" + want.ToString());
    if (cut == std::string_view::npos) break;
    rest.remove_prefix(cut + 1);
  }
  return want.ToString();
}

std::string MissingLayers(const Layers& have, std::string_view required) {
  Layers want = ParseLayers(required);
  std::string out;
  for (const char* name : kLayerNames) {
    if (!want.Has(name) || have.Has(name)) continue;
    if (!out.empty()) out += '+';
    out += name;
  }
  return out;
}

bool SameProgram(const std::vector<sock_filter>& a, const std::vector<sock_filter>& b) {
  static_assert(sizeof(sock_filter) == 8, "no padding to compare");
  return a.size() == b.size() &&
         std::memcmp(a.data(), b.data(), a.size() * sizeof(sock_filter)) == 0;
}

std::vector<sock_filter> SeccompProgram(pid_t pid) {
  std::vector<sock_filter> code;
  scmp_filter_ctx ctx = BuildSeccompFilter(pid);
  if (ctx == nullptr) return code;
  // Exported through a pipe: a memfd would be a file, and a child's
  // RLIMIT_FSIZE of 0 forbids writing one. A program has at most
  // BPF_MAXINSNS instructions (32 KiB), less than a pipe holds.
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) == 0) {
    if (seccomp_export_bpf(ctx, fds[1]) == 0) {
      ::close(fds[1]);
      fds[1] = -1;
      std::string bytes;
      char buf[4096];
      ssize_t n;
      while ((n = ::read(fds[0], buf, sizeof buf)) > 0) bytes.append(buf, static_cast<size_t>(n));
      if (n == 0 && !bytes.empty() && bytes.size() % sizeof(sock_filter) == 0) {
        code.resize(bytes.size() / sizeof(sock_filter));
        std::memcpy(code.data(), bytes.data(), bytes.size());
      }
    }
    for (int fd : fds) {
      if (fd >= 0) ::close(fd);
    }
  }
  seccomp_release(ctx);
  return code;
}

std::vector<sock_filter> SeccompProgramFromTemplate(pid_t pid) {
  std::vector<sock_filter> code = g_seccomp_template.code;
  for (size_t at : g_seccomp_template.pid_at) code[at].k = static_cast<uint32_t>(pid);
  return code;
}

void PrepareConfinement() {
  if (g_seccomp_template.code.empty()) {
    // The pid is compared in "jeq #k" instructions, where the placeholder
    // must be and nowhere else; the template is kept only if filling in
    // this process's pid gives what libseccomp compiles for it.
    SeccompTemplate t;
    t.code = SeccompProgram(static_cast<pid_t>(kPidPlaceholder));
    bool ok = !t.code.empty();
    for (size_t i = 0; ok && i < t.code.size(); ++i) {
      if (t.code[i].k != kPidPlaceholder) continue;
      if (t.code[i].code != (BPF_JMP | BPF_JEQ | BPF_K)) ok = false;
      t.pid_at.push_back(i);
    }
    if (ok && !t.pid_at.empty()) {
      g_seccomp_template = std::move(t);
      if (!SameProgram(SeccompProgramFromTemplate(getpid()), SeccompProgram(getpid()))) {
        g_seccomp_template = {};
      }
    }
  }
  if (g_prepared.landlock_ruleset < 0) {
    g_prepared.landlock_ruleset = BuildLandlockRuleset(&g_prepared.landlock_abi);
  }
  if (g_prepared.netns < 0 && geteuid() == 0) {
    // Made once and left at once: this process stays in its own namespace,
    // the descriptor keeps the new one alive for the children to join.
    int host = ::open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    if (host < 0) return;
    if (unshare(CLONE_NEWNET) == 0) {
      int made = ::open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
      if (setns(host, CLONE_NEWNET) != 0) std::abort();  // never stay in it
      g_prepared.netns = made;
    }
    ::close(host);
  }
}

void ReleasePreparedConfinement() {
  for (int* fd : {&g_prepared.landlock_ruleset, &g_prepared.netns}) {
    if (*fd >= 0) ::close(Take(*fd));
  }
}

void CloseDescriptorsAbove(int last_kept) {
  int keep[2] = {g_prepared.landlock_ruleset, g_prepared.netns};
  std::sort(std::begin(keep), std::end(keep));
  unsigned from = static_cast<unsigned>(last_kept) + 1;
  for (int fd : keep) {
    if (fd < 0 || static_cast<unsigned>(fd) < from) continue;
    if (static_cast<unsigned>(fd) > from) (void)syscall(SYS_close_range, from, fd - 1U, 0U);
    from = static_cast<unsigned>(fd) + 1;
  }
  (void)syscall(SYS_close_range, from, ~0U, 0U);
}

Layers Confine(const ChildLimits& l) {
  Layers layers;
  // Only stdin, stdout, stderr and the input (and what PrepareConfinement
  // made, used below); posix_spawn closed the rest already, this covers a
  // child started some other way.
  CloseDescriptorsAbove(kInputFd);
  const int prepared_ruleset = Take(g_prepared.landlock_ruleset);
  const int prepared_netns = Take(g_prepared.netns);

  const rlim_t cpu = static_cast<rlim_t>(std::max<int64_t>(l.cpu_seconds, 1));
  SetLimit(RLIMIT_CPU, cpu, cpu + 1);  // SIGXCPU at the soft limit, SIGKILL a second later
  const rlim_t as = static_cast<rlim_t>(std::max<int64_t>(l.memory_mb, 16)) << 20;
  SetLimit(RLIMIT_AS, as, as);
  SetLimit(RLIMIT_FSIZE, 0, 0);  // no files written (pipes are not files)
  SetLimit(RLIMIT_CORE, 0, 0);
  const rlim_t files = static_cast<rlim_t>(std::max<int64_t>(l.max_open_files, 8));
  SetLimit(RLIMIT_NOFILE, files, files);
  // Each malloc arena reserves 64 MiB of address space; a parser library
  // that starts threads would otherwise spend RLIMIT_AS on reservations.
  (void)mallopt(M_ARENA_MAX, 2);

  // The network namespace first while root may still make one without a
  // user namespace; the uid drop after it.
  const Layers skip = ParseLayers(l.skip);
  const bool was_root = geteuid() == 0;
  if (!skip.netns && was_root && prepared_netns >= 0) {
    layers.netns = setns(prepared_netns, CLONE_NEWNET) == 0;
  }
  if (prepared_netns >= 0) ::close(prepared_netns);
  if (!skip.netns && was_root && !layers.netns) layers.netns = unshare(CLONE_NEWNET) == 0;
  if (!skip.uid) layers.uid = DropToUid(l.uid);
  if (!skip.netns && !layers.netns) layers.netns = unshare(CLONE_NEWUSER | CLONE_NEWNET) == 0;

  // Both are reset by a change of credentials: set them now.
  (void)prctl(PR_SET_PDEATHSIG, SIGKILL);  // die with the worker thread that started us
  (void)prctl(PR_SET_DUMPABLE, 0);

  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0) {
    if (!skip.landlock) {
      layers.landlock_abi = ApplyLandlock(prepared_ruleset, g_prepared.landlock_abi);
    } else if (prepared_ruleset >= 0) {
      ::close(prepared_ruleset);
    }
    layers.landlock = layers.landlock_abi > 0;
    if (!skip.seccomp) layers.seccomp = ApplySeccomp();
  }
  return layers;
}

void LimitFromOutside(pid_t pid, const ChildLimits& l) {
  auto set = [&](int resource, rlim_t soft, rlim_t hard) {
    struct rlimit cur {};
    if (prlimit(pid, static_cast<__rlimit_resource>(resource), nullptr, &cur) != 0) return;
    if (cur.rlim_max != RLIM_INFINITY) hard = std::min(hard, cur.rlim_max);
    soft = std::min(soft, hard);
    struct rlimit lim {soft, hard};
    (void)prlimit(pid, static_cast<__rlimit_resource>(resource), &lim, nullptr);
  };
  const rlim_t cpu = static_cast<rlim_t>(std::max<int64_t>(l.cpu_seconds, 1));
  set(RLIMIT_CPU, cpu, cpu + 1);
  const rlim_t as = static_cast<rlim_t>(std::max<int64_t>(l.memory_mb, 16)) << 20;
  set(RLIMIT_AS, as, as);
  set(RLIMIT_FSIZE, 0, 0);
  set(RLIMIT_CORE, 0, 0);
}

bool ProtectWorkerProcess() {
  (void)prctl(PR_SET_DUMPABLE, 0);
  return prctl(PR_GET_DUMPABLE) == 0;
}

}  // namespace conveyor::worker::sandbox
