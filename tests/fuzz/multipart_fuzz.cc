// libFuzzer target for the multipart parser (http/multipart.h).
//
// Each input is parsed three ways: whole, split in two at a point derived
// from the data, and one byte at a time. All three must report the same
// parts, the same concatenated data per part and the same final status;
// anything else aborts. The boundary is taken from the input's first line when
// it looks like one ("--boundary\r\n"), so plain multipart bodies make good
// seeds (tests/fuzz/corpus/multipart_fuzz); otherwise it is "XyZ".
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "http/multipart.h"

namespace {

using conveyor::Errc;
using conveyor::OkStatus;
using conveyor::Status;
using conveyor::http::MultipartCallbacks;
using conveyor::http::MultipartLimits;
using conveyor::http::MultipartParser;
using conveyor::http::PartHeaders;

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "multipart_fuzz: invariant broken: %s\n", what);
    std::abort();
  }
}

struct Part {
  std::string name;
  std::optional<std::string> filename;
  std::string content_type;
  std::string data;
  bool ended = false;
  bool operator==(const Part&) const = default;
};

struct Outcome {
  std::vector<Part> parts;
  Errc code = Errc::kOk;
  std::string message;
  bool done = false;
  bool operator==(const Outcome&) const = default;
};

Outcome Run(std::string_view input, const std::string& boundary, const std::vector<size_t>& cuts) {
  Outcome out;
  size_t data_bytes = 0;
  MultipartCallbacks cb;
  cb.on_part_begin = [&](const PartHeaders& h) {
    Check(out.parts.empty() || out.parts.back().ended, "part begins inside another part");
    Check(!h.name.empty(), "part without a name was accepted");
    out.parts.push_back({h.name, h.filename, h.content_type, "", false});
    return OkStatus();
  };
  cb.on_part_data = [&](std::string_view d) {
    Check(!d.empty(), "empty data callback");
    Check(!out.parts.empty() && !out.parts.back().ended, "data outside a part");
    out.parts.back().data.append(d);
    data_bytes += d.size();
    return OkStatus();
  };
  cb.on_part_end = [&] {
    Check(!out.parts.empty() && !out.parts.back().ended, "end outside a part");
    out.parts.back().ended = true;
    return OkStatus();
  };
  MultipartLimits limits;
  limits.max_header_bytes = 512;  // small, so the fuzzer reaches the limits
  limits.max_parts = 8;
  MultipartParser parser(boundary, limits, std::move(cb));
  size_t prev = 0;
  bool feed_ok = true;
  std::vector<size_t> all = cuts;
  all.push_back(input.size());
  for (size_t cut : all) {
    feed_ok = parser.Feed(input.substr(prev, cut - prev));
    if (!feed_ok) break;
    prev = cut;
  }
  Errc feed_code = parser.status().code();
  Status s = parser.Finish();
  out.code = s.code();
  out.message = s.message();
  out.done = parser.done();
  Check(feed_ok == (feed_code == Errc::kOk), "Feed result disagrees with status()");
  if (!feed_ok) Check(out.code == feed_code, "Finish changed the Feed error");
  Check(out.done == (out.code == Errc::kOk), "done() disagrees with Finish()");
  Check(out.parts.size() <= limits.max_parts, "more parts than the limit");
  Check(data_bytes <= input.size(), "more data out than bytes in");
  if (out.done) {
    for (const Part& p : out.parts) Check(p.ended, "finished with an open part");
  }
  return out;
}

std::string BoundaryOf(std::string_view input) {
  if (input.substr(0, 2) == "--") {
    size_t eol = input.find('\r');
    if (eol != std::string_view::npos && eol > 2 && eol - 2 <= 70) {
      return std::string(input.substr(2, eol - 2));  // may be invalid: also worth parsing
    }
  }
  return "XyZ";
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  std::string boundary = BoundaryOf(input);

  uint32_t hash = 2166136261u;  // FNV-1a picks the split point
  for (size_t i = 0; i < size; ++i) hash = (hash ^ data[i]) * 16777619u;
  size_t split = size == 0 ? 0 : hash % (size + 1);

  Outcome whole = Run(input, boundary, {});
  Outcome halves = Run(input, boundary, {split});
  Check(whole == halves, "split feed differs from whole feed");
  std::vector<size_t> bytewise;
  for (size_t i = 1; i < size; ++i) bytewise.push_back(i);
  Outcome bytes = Run(input, boundary, bytewise);
  Check(whole == bytes, "byte-at-a-time feed differs from whole feed");

  // The Content-Type parser, on the same bytes.
  auto b = conveyor::http::BoundaryFromContentType(input);
  if (b.ok()) Check(!b->empty() && b->size() <= 70 && b->back() != ' ', "bad boundary accepted");
  return 0;
}
