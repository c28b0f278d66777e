// File: queue/internal/eval_command.h
//
// One EVALSHA call already in Redis's wire format (RESP), private to the
// queue module. The calling thread writes the keys and arguments straight
// into one buffer, so a call costs one allocation instead of a string per
// word, and the connection's I/O thread only copies the bytes out
// (AsyncRedis, async_redis.h).
//
// The buffer starts with kHeadRoom spare bytes; Evalsha() writes the array
// header, EVALSHA, the script's SHA-1 and the key count right before the
// words, once their number is known (at most 110 bytes). The rare EVAL of
// the script's text (the server lost the script) is built anew by Eval().
//
// Keys come before arguments (Redis's order); a key added after an argument
// is a programming error and aborts.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "queue/internal/scripts.h"

namespace conveyor::queue::internal {

class EvalCommand {
 public:
  explicit EvalCommand(const Script& script);
  // A call from word lists (the callers off the hot path).
  EvalCommand(const Script& script, const std::vector<std::string>& keys,
              const std::vector<std::string>& args);

  // One key: the concatenation of `a` and `b` (a queue's base and a suffix).
  EvalCommand& Key(std::string_view a, std::string_view b = {});
  // One argument: the concatenation of `a` and `b`.
  EvalCommand& Arg(std::string_view a, std::string_view b = {});
  EvalCommand& Arg(int64_t value);

  const Script& script() const { return *script_; }
  size_t key_count() const { return keys_; }
  size_t arg_count() const { return args_; }

  // The whole EVALSHA command. Valid until the command changes again.
  std::string_view Evalsha();
  // The same call as EVAL with the script's text (which also loads it).
  std::string Eval() const;

 private:
  static constexpr size_t kHeadRoom = 128;
  void Word(std::string_view a, std::string_view b);
  // The array header, the verb, the script (SHA-1 or text) and the key count.
  template <typename Out>
  void Head(Out* out, std::string_view verb, std::string_view body) const;

  const Script* script_;
  std::string buf_;  // kHeadRoom bytes, then the words in RESP
  size_t keys_ = 0;
  size_t args_ = 0;
};

}  // namespace conveyor::queue::internal
