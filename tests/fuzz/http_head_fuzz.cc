// libFuzzer target for a request as the session reads it: the head parsed by
// Beast's request parser (header-only here), checked by RequestHeadChecker
// (http/request_head.h), then a chunked body decoded by ChunkedDecoder
// (http/chunked.h).
//
// The head is fed to Beast split at a point derived from the data. When the
// checker accepts it and the body is chunked, the rest of the input is
// decoded three ways: whole, split in two, and one byte at a time. All three
// must agree on the status, the decoded body and where the body ended; each
// event must consume at least one byte and never report more data than it
// consumed. Anything else aborts. Seeds: tests/fuzz/corpus/http_head_fuzz.
#include <boost/asio/buffer.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "http/chunked.h"
#include "http/request_head.h"

namespace {

namespace bhttp = boost::beast::http;
using conveyor::Errc;
using conveyor::http::BodyFraming;
using conveyor::http::ChunkedDecoder;
using conveyor::http::ChunkedLimits;
using conveyor::http::RequestHeadChecker;

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "http_head_fuzz: invariant broken: %s\n", what);
    std::abort();
  }
}

struct Decoded {
  Errc code = Errc::kOk;
  std::string body;
  bool done = false;
  size_t consumed = 0;
};

Decoded Decode(std::string_view in, size_t piece) {
  ChunkedLimits limits;
  limits.max_line_bytes = 256;  // small, so inputs reach the limits
  limits.max_trailer_bytes = 512;
  ChunkedDecoder d(limits);
  Decoded out;
  while (!in.empty() && !out.done) {
    std::string_view p = in.substr(0, piece);
    while (!p.empty() && !out.done) {
      auto e = d.Next(p);
      if (!e) {
        out.code = e.code();
        return out;
      }
      Check(e->consumed > 0, "an event consumed nothing");
      Check(e->consumed <= p.size(), "consumed more than given");
      Check(e->data.size() <= e->consumed, "more data than input");
      Check(e->data.empty() || (e->data.data() >= p.data() &&
                                e->data.data() + e->data.size() <= p.data() + p.size()),
            "data outside the input");
      out.body.append(e->data);
      out.consumed += e->consumed;
      out.done = e->done;
      p.remove_prefix(e->consumed);
      in.remove_prefix(e->consumed);
    }
  }
  Check(d.body_bytes() == out.body.size(), "body_bytes disagrees");
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  bhttp::request_parser<bhttp::buffer_body> parser;
  parser.header_limit(4096);
  parser.eager(false);
  const size_t split = size == 0 ? 0 : data[0] % (size + 1);
  size_t used = 0;
  boost::beast::error_code ec;
  // Beast wants the whole header in one buffer once it has seen part of it
  // (need_more); feed growing prefixes as the session's buffer would.
  for (size_t avail = split; !parser.is_header_done();) {
    if (avail > size) avail = size;
    size_t n = parser.put(boost::asio::buffer(in.data() + used, avail - used), ec);
    used += n;
    if (ec == bhttp::error::need_more) {
      if (avail == size) return 0;  // incomplete head
      avail = avail + 1 + (size - avail) / 2;
      ec = {};
      continue;
    }
    if (ec) return 0;  // Beast refused the head
  }
  const auto& req = parser.get();
  RequestHeadChecker check;
  if (!check.Target(std::string_view(req.target().data(), req.target().size())).ok()) return 0;
  for (const auto& f : req) {
    if (!check.Field(std::string_view(f.name_string().data(), f.name_string().size()),
                     std::string_view(f.value().data(), f.value().size()))
             .ok()) {
      return 0;
    }
  }
  auto framing = check.Finish(req.version());
  if (!framing) return 0;
  // What the checker accepts, Beast agrees with.
  if (framing->kind == BodyFraming::kChunked) Check(parser.chunked(), "chunked disagrees");
  if (framing->kind == BodyFraming::kContentLength) {
    Check(parser.content_length() && *parser.content_length() == framing->content_length,
          "Content-Length disagrees");
  }
  if (framing->kind != BodyFraming::kChunked) return 0;

  std::string_view body = in.substr(used);
  Decoded whole = Decode(body, body.size() + 1);
  Decoded halves = Decode(body, body.empty() ? 1 : 1 + split % body.size());
  Decoded bytes = Decode(body, 1);
  for (const Decoded* d : {&halves, &bytes}) {
    Check(d->code == whole.code, "status depends on the split");
    Check(d->body == whole.body, "body depends on the split");
    Check(d->done == whole.done, "end depends on the split");
    if (whole.done) Check(d->consumed == whole.consumed, "end offset depends on the split");
  }
  return 0;
}
