#include "queue/internal/eval_command.h"

#include <gtest/gtest.h>
#include <hiredis/hiredis.h>

#include <string>
#include <vector>

namespace conveyor::queue::internal {
namespace {

// hiredis's own formatting of the same words: the reference.
std::string Formatted(const std::vector<std::string>& words) {
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  for (const std::string& w : words) {
    argv.push_back(w.data());
    lens.push_back(w.size());
  }
  char* out = nullptr;
  int n = redisFormatCommandArgv(&out, static_cast<int>(words.size()), argv.data(), lens.data());
  EXPECT_GT(n, 0);
  std::string s(out, static_cast<size_t>(n));
  redisFreeCommand(out);
  return s;
}

Script TestScript() { return Script{"t", "return 1", std::string(40, 'a')}; }

TEST(EvalCommand, IsWhatHiredisWritesForTheSameWords) {
  const Script script = TestScript();
  // Empty words, binary bytes, CRLF inside a word and long words.
  const std::string binary("a\0b\r\nc", 6);
  const std::string big(70000, 'x');
  EvalCommand call(script);
  call.Key("bull:q:", "wait").Key("").Key(binary).Arg("").Arg(int64_t{-42}).Arg(big, "!");
  call.Arg(int64_t{9223372036854775807});
  const std::vector<std::string> words = {"3", "bull:q:wait", "",        binary,
                                          "",  "-42",         big + "!", "9223372036854775807"};
  std::vector<std::string> sha = {"EVALSHA", script.sha1};
  sha.insert(sha.end(), words.begin(), words.end());
  std::vector<std::string> text = {"EVAL", script.text};
  text.insert(text.end(), words.begin(), words.end());
  EXPECT_EQ(std::string(call.Evalsha()), Formatted(sha));
  EXPECT_EQ(call.Eval(), Formatted(text));
  EXPECT_EQ(call.key_count(), 3u);
  EXPECT_EQ(call.arg_count(), 4u);
  // Asking twice gives the same bytes (the head is written in place).
  EXPECT_EQ(std::string(call.Evalsha()), Formatted(sha));
}

TEST(EvalCommand, NoWordsAndWordListsMatchToo) {
  const Script script = TestScript();
  EvalCommand none(script);
  EXPECT_EQ(std::string(none.Evalsha()), Formatted({"EVALSHA", script.sha1, "0"}));
  EvalCommand lists(script, {"k1", "k2"}, {"a1"});
  EXPECT_EQ(std::string(lists.Evalsha()),
            Formatted({"EVALSHA", script.sha1, "2", "k1", "k2", "a1"}));
  // Many keys: the key count and the array header grow past one digit.
  EvalCommand many(script);
  std::vector<std::string> words = {"EVALSHA", script.sha1, "120"};
  for (int i = 0; i < 120; ++i) {
    many.Key("k", std::to_string(i));
    words.push_back("k" + std::to_string(i));
  }
  EXPECT_EQ(std::string(many.Evalsha()), Formatted(words));
}

TEST(EvalCommandDeathTest, AKeyAfterAnArgumentAborts) {
  const Script script = TestScript();
  EXPECT_DEATH(
      {
        EvalCommand call(script);
        call.Arg("a").Key("k");
      },
      "a key after an argument");
}

}  // namespace
}  // namespace conveyor::queue::internal
