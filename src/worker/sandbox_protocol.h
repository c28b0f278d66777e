// File: worker/sandbox_protocol.h
//
// The wire format between RunSandboxed (parent) and `conveyor extract`
// (child). Internal to the sandbox; exposed so both sides and the tests
// share one definition.
//
// argv:   <conveyor> extract --cpu-seconds N --memory-mb M --max-open-files F
//                   [--uid U] [--require LAYERS] [--probe]
// fd 3:   the upload, open read-only (the child is given no path to it)
// stdin:  one JSON object, then EOF:
//           {"nameHint","message",
//            "limits":{"maxInputBytes","maxTextBytes","chunkChars",
//                      "chunkOverlapChars","summarySentences"}}
// stdout: JSON lines (every line one object, UTF-8, '\n'-terminated):
//           {"progress":{"stage":"extract","percent":20}}      zero or more
//           {"result":{"kind","kindId","text","summary","words",
//                      ["pages","sheets","slides","tables","encoding",]
//                      "chunks":[{"o":offset,"n":length} | {"t":"text"}...]},
//            "isolation":"uid+landlock+seccomp+netns"}         or
//           {"error":{"code":"invalid_argument","message":"..."}}
//         A chunk that is a substring of the text travels as its byte offset
//         and length (chunks overlap, so this halves the output); any other
//         chunk travels as its text.
// exit:   0 after a result or error line; kExitOutOfMemory when an allocation
//         failed; a crash is a signal.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/error.h"
#include "processing/processing.h"

namespace conveyor::worker::sandbox {

// Exit status of a child whose allocation failed (it hit RLIMIT_AS).
inline constexpr int kExitOutOfMemory = 86;

// Longest request the child reads from stdin; the message and file name are
// bounded far below this by the upload limits.
inline constexpr size_t kMaxRequestBytes = 4 << 20;

// The descriptor the upload is given to the child on.
inline constexpr int kInputFd = 3;

// Limits the child applies to itself before reading the request (argv).
struct ChildLimits {
  int64_t cpu_seconds = 60;
  int64_t memory_mb = 1024;
  int64_t max_open_files = 64;
  // The unprivileged account the child switches to when started as root
  // (SANDBOX_UID; its group is the same number); -1: stay.
  int64_t uid = 65534;
  // Layers the child must have applied, or it refuses to read anything
  // (SANDBOX_REQUIRE; see confine.h for the names).
  std::string require;
  // Layers not to apply ('+'-joined). Only tests set it (to show what each
  // layer alone refuses); `conveyor extract` has no option for it.
  std::string skip;
};

struct Request {
  processing::Input input;
  processing::Limits limits;
};

std::string EncodeRequest(const Request& request);
// kInvalidArgument for malformed JSON or missing fields.
Result<Request> DecodeRequest(std::string_view json);

// One '\n'-terminated line each. Invalid UTF-8 in strings is replaced.
std::string ProgressLine(const std::string& stage, int percent);
// `isolation`: the confinement layers the child applied, '+'-joined
// ("uid+landlock+seccomp+netns"), or "none".
std::string ResultLine(const processing::Output& output, const std::string& isolation);
std::string ErrorLine(const Status& status);

// A decoded stdout line.
struct Message {
  enum class Type { kProgress, kResult, kError, kProbe };
  Type type = Type::kProgress;
  std::string stage;                 // kProgress
  int percent = 0;                   // kProgress
  processing::Output output;         // kResult
  std::string isolation;             // kResult: as given to ResultLine; kProbe: the layers
  Status error;                      // kError
};

// What DecodeLine will build from one line.
inline constexpr int64_t kDefaultMaxDecodedBytes = 64LL << 20;  // EXTRACT_MAX_OUTPUT_BYTES' default
inline constexpr size_t kMaxStageBytes = 32;        // a progress stage name
inline constexpr size_t kMaxErrorMessageBytes = 64 << 10;
inline constexpr size_t kMaxIsolationBytes = 256;
inline constexpr size_t kMaxChunks = 1 << 20;

// Decodes one stdout line of the child (without its '\n'). A pure function
// of its arguments: no I/O, no global state; safe to fuzz.
// The line must be a JSON object with exactly one of "progress", "error",
// "result" (with "isolation") or "probe", and nothing else. Every field is
// checked: stage a short lower-case name, percent 0..100, error code a known
// non-ok name, kindId a real format with its matching kind name, counts
// non-negative, encoding a known name, chunks either {"o","n"} inside the
// text or {"t"}. The text, summary and chunks together decode to at most
// `max_decoded_bytes` bytes (the child's output cap, EXTRACT_MAX_OUTPUT_BYTES:
// chunk references cannot multiply it), checked before anything is copied.
// kInvalidArgument for anything else.
Result<Message> DecodeLine(std::string_view line,
                           int64_t max_decoded_bytes = kDefaultMaxDecodedBytes);

// The --probe answer line.
std::string ProbeLine(const std::string& layers);

// Errc from its ErrcName ("invalid_argument"); kInternal for unknown names.
Errc ErrcFromName(std::string_view name);

}  // namespace conveyor::worker::sandbox
