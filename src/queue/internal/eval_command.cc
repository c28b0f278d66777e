#include "queue/internal/eval_command.h"

#include <charconv>
#include <cstdio>
#include <cstdlib>

namespace conveyor::queue::internal {
namespace {

// A few bytes on the stack, for the EVALSHA head.
struct FixedBuffer {
  char data[128];
  size_t size = 0;
  void push_back(char c) { append(std::string_view(&c, 1)); }
  void append(std::string_view s) {
    if (s.size() > sizeof data - size) std::abort();  // the head's size is bounded
    s.copy(data + size, s.size());
    size += s.size();
  }
};

// An integer's decimal digits, on the stack.
class Decimal {
 public:
  template <typename T>
  explicit Decimal(T v) : end_(std::to_chars(digits_, digits_ + sizeof digits_, v).ptr) {}
  std::string_view view() const { return {digits_, static_cast<size_t>(end_ - digits_)}; }

 private:
  char digits_[24];
  char* end_;
};

// "$<len>\r\n<word>\r\n"
template <typename Out>
void AppendBulk(Out* out, std::string_view a, std::string_view b = {}) {
  out->push_back('$');
  out->append(Decimal(a.size() + b.size()).view());
  out->append("\r\n");
  out->append(a);
  out->append(b);
  out->append("\r\n");
}

}  // namespace

EvalCommand::EvalCommand(const Script& script) : script_(&script) {
  buf_.reserve(kHeadRoom + 512);
  buf_.resize(kHeadRoom);
}

EvalCommand::EvalCommand(const Script& script, const std::vector<std::string>& keys,
                         const std::vector<std::string>& args)
    : EvalCommand(script) {
  for (const std::string& k : keys) Key(k);
  for (const std::string& a : args) Arg(a);
}

void EvalCommand::Word(std::string_view a, std::string_view b) { AppendBulk(&buf_, a, b); }

EvalCommand& EvalCommand::Key(std::string_view a, std::string_view b) {
  if (args_ != 0) {
    std::fprintf(stderr, "conveyor: a key after an argument in a call of %s\n",
                 script_->name.c_str());
    std::abort();
  }
  Word(a, b);
  ++keys_;
  return *this;
}

EvalCommand& EvalCommand::Arg(std::string_view a, std::string_view b) {
  Word(a, b);
  ++args_;
  return *this;
}

EvalCommand& EvalCommand::Arg(int64_t value) { return Arg(Decimal(value).view()); }

template <typename Out>
void EvalCommand::Head(Out* out, std::string_view verb, std::string_view body) const {
  out->push_back('*');
  out->append(Decimal(3 + keys_ + args_).view());
  out->append("\r\n");
  AppendBulk(out, verb);
  AppendBulk(out, body);
  AppendBulk(out, Decimal(keys_).view());
}

std::string_view EvalCommand::Evalsha() {
  FixedBuffer head;
  Head(&head, "EVALSHA", script_->sha1);
  if (head.size > kHeadRoom) std::abort();  // a SHA-1 is 40 characters
  const size_t start = kHeadRoom - head.size;
  buf_.replace(start, head.size, head.data, head.size);
  return std::string_view(buf_).substr(start);
}

std::string EvalCommand::Eval() const {
  std::string out;
  Head(&out, "EVAL", script_->text);
  out.append(buf_, kHeadRoom, std::string::npos);
  return out;
}

}  // namespace conveyor::queue::internal
