// File: worker/sandbox_protocol.h
//
// The wire format between RunSandboxed (parent) and `conveyor extract`
// (child). Internal to the sandbox; exposed so both sides and the tests
// share one definition.
//
// argv:   <conveyor> extract --cpu-seconds N --memory-mb M --max-open-files F
// stdin:  one JSON object, then EOF:
//           {"path","nameHint","message",
//            "limits":{"maxInputBytes","maxTextBytes","chunkChars",
//                      "chunkOverlapChars","summarySentences"}}
// stdout: JSON lines (every line one object, UTF-8, '\n'-terminated):
//           {"progress":{"stage":"extract","percent":20}}      zero or more
//           {"result":{"kind","kindId","text","summary","words",
//                      ["pages","sheets","slides","tables","encoding",]
//                      "chunks":[{"o":offset,"n":length} | {"t":"text"}...]},
//            "isolation":"netns+seccomp"}                      or
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

// Limits the child applies to itself before reading the request (argv).
struct ChildLimits {
  int64_t cpu_seconds = 60;
  int64_t memory_mb = 1024;
  int64_t max_open_files = 64;
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
// `isolation`: how the child is cut off from the network ("netns+seccomp",
// "netns", "seccomp"), or "none".
std::string ResultLine(const processing::Output& output, const std::string& isolation);
std::string ErrorLine(const Status& status);

// A decoded stdout line.
struct Message {
  enum class Type { kProgress, kResult, kError };
  Type type = Type::kProgress;
  std::string stage;                 // kProgress
  int percent = 0;                   // kProgress
  processing::Output output;         // kResult
  std::string isolation;             // kResult: as given to ResultLine
  Status error;                      // kError
};
// kInvalidArgument for a line that is not one of the above.
Result<Message> DecodeLine(std::string_view line);

// Errc from its ErrcName ("invalid_argument"); kInternal for unknown names.
Errc ErrcFromName(std::string_view name);

}  // namespace conveyor::worker::sandbox
