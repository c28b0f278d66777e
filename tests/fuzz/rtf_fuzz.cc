// libFuzzer target for the RTF reader (processing/internal/rtf.h).
//
// Each input is read three ways: whole, split in two at a point derived from
// the data, and one byte at a time. All three must give the same status and
// the same text, as the reader promises for a split anywhere. Also checked:
// the text never exceeds the reader's limit, is valid UTF-8, and only grows
// by appending (the text of a prefix is a prefix of the text). The limit is
// small (512 bytes) so the fuzzer reaches the cut within the inputs of
// rtf_fuzz.options (-max_len=2048: every input is fed byte by byte, so the
// length bounds the cost of one execution); seeds are RTF documents
// (tests/fuzz/corpus/rtf_fuzz).
#include <iconv.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "processing/internal/rtf.h"
#include "processing/internal/text_util.h"

namespace {

using conveyor::Errc;
using conveyor::Status;
using conveyor::processing::internal::IsValidUtf8;
using conveyor::processing::internal::RtfReader;

constexpr size_t kMaxText = 512;

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "rtf_fuzz: invariant broken: %s\n", what);
    std::abort();
  }
}

struct Outcome {
  Errc feed_code = Errc::kOk;  // the first failed Feed, or kOk
  Errc code = Errc::kOk;       // Finish
  std::string message;
  std::string text;            // Finish's text when ok, else text()
  bool operator==(const Outcome&) const = default;
};

Outcome Read(std::string_view input, const std::vector<size_t>& cuts) {
  RtfReader reader(kMaxText);
  Outcome out;
  size_t prev = 0;
  // text() after an earlier piece; compared in full every 64 pieces (and at
  // every piece for the size), so byte-at-a-time feeding stays linear.
  std::string seen;
  size_t last_size = 0;
  std::vector<size_t> all = cuts;
  all.push_back(input.size());
  for (size_t i = 0; i < all.size(); ++i) {
    size_t cut = all[i];
    Status s = reader.Feed(input.substr(prev, cut - prev));
    const std::string& now = reader.text();
    Check(now.size() >= last_size, "text shrank");
    last_size = now.size();
    Check(now.size() <= kMaxText, "text over the limit while feeding");
    if (i % 64 == 0 || i + 1 == all.size()) {
      Check(now.compare(0, seen.size(), seen) == 0, "text changed other than by appending");
      seen = now;
    }
    prev = cut;
    if (!s.ok()) {
      out.feed_code = s.code();
      out.message = s.message();
      break;
    }
  }
  auto result = reader.Finish();
  out.code = result.code();
  if (out.feed_code != Errc::kOk) {
    Check(!result.ok(), "Finish succeeded after a failed Feed");
  }
  if (result.ok()) {
    out.text = *result;
    Check(out.text.compare(0, seen.size(), seen) == 0, "Finish dropped text");
  } else {
    if (out.feed_code == Errc::kOk) out.message = result.status().message();
    out.text = reader.text();
  }
  Check(out.text.size() <= kMaxText, "text over the limit");
  Check(IsValidUtf8(out.text, /*allow_truncated_tail=*/false), "text is not valid UTF-8");
  return out;
}

}  // namespace

// Keeps iconv's converter modules of the usual code pages loaded for the
// whole run: each reader opens its own converter, and without this the
// module would be mapped and unmapped again for every input, which cost more
// than the parsing.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  static auto* kept = new std::vector<iconv_t>;  // never closed, on purpose
  for (const char* charset : {"CP1252", "CP1251", "CP1250", "CP932", "CP936", "MACINTOSH"}) {
    kept->push_back(iconv_open("UTF-8", charset));
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);

  uint32_t hash = 2166136261u;  // FNV-1a picks the split point
  for (size_t i = 0; i < size; ++i) hash = (hash ^ data[i]) * 16777619u;
  size_t split = size == 0 ? 0 : hash % (size + 1);

  Outcome whole = Read(input, {});
  Outcome halves = Read(input, {split});
  Check(whole == halves, "split feed differs from whole feed");
  std::vector<size_t> bytewise;
  for (size_t i = 1; i < size; ++i) bytewise.push_back(i);
  Outcome bytes = Read(input, bytewise);
  Check(whole == bytes, "byte-at-a-time feed differs from whole feed");
  return 0;
}
