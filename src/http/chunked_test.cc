// ChunkedDecoder and RequestHeadChecker: every case also split at every byte
// (and fed one byte at a time), as Beast's parsegrind does.
#include "http/chunked.h"

#include <gtest/gtest.h>

#include <string>

#include "http/request_head.h"

namespace conveyor::http {
namespace {

struct Decoded {
  Status status;
  std::string body;
  bool done = false;
  size_t consumed = 0;  // input bytes used up to `done` (or all)
};

// Feeds `pieces` in order, as a session would.
Decoded Feed(const std::vector<std::string_view>& pieces, ChunkedLimits limits = {}) {
  ChunkedDecoder d(limits);
  Decoded out;
  for (std::string_view p : pieces) {
    while (!p.empty() && !out.done) {
      auto e = d.Next(p);
      if (!e) {
        out.status = e.status();
        return out;
      }
      EXPECT_GT(e->consumed, 0u);
      out.body.append(e->data);
      out.consumed += e->consumed;
      p.remove_prefix(e->consumed);
      out.done = e->done;
    }
  }
  return out;
}

// The same input whole, split in two at every offset, and byte by byte: the
// outcome must not depend on where reads end.
Decoded FeedEverySplit(std::string_view in, ChunkedLimits limits = {}) {
  Decoded whole = Feed({in}, limits);
  for (size_t cut = 0; cut <= in.size(); ++cut) {
    Decoded split = Feed({in.substr(0, cut), in.substr(cut)}, limits);
    EXPECT_EQ(split.status.code(), whole.status.code()) << "cut at " << cut;
    EXPECT_EQ(split.body, whole.body) << "cut at " << cut;
    EXPECT_EQ(split.done, whole.done) << "cut at " << cut;
  }
  std::vector<std::string_view> bytes;
  for (size_t i = 0; i < in.size(); ++i) bytes.push_back(in.substr(i, 1));
  Decoded one = Feed(bytes, limits);
  EXPECT_EQ(one.status.code(), whole.status.code());
  EXPECT_EQ(one.body, whole.body);
  EXPECT_EQ(one.done, whole.done);
  return whole;
}

TEST(ChunkedDecoder, DecodesChunksExtensionsAndTrailers) {
  auto d = FeedEverySplit("5\r\nhello\r\n7;name=\"v\" ; x\r\n, world\r\n0\r\nX-Sum: 1\r\n\r\n");
  ASSERT_TRUE(d.status.ok()) << d.status.ToString();
  EXPECT_TRUE(d.done);
  EXPECT_EQ(d.body, "hello, world");
}

TEST(ChunkedDecoder, StopsAtTheEndAndLeavesTheNextRequest) {
  const std::string next = "GET /healthz HTTP/1.1\r\n\r\n";
  const std::string in = "3\r\nabc\r\n0\r\n\r\n" + next;
  auto d = FeedEverySplit(in);
  ASSERT_TRUE(d.done);
  EXPECT_EQ(in.substr(d.consumed), next);
}

TEST(ChunkedDecoder, UpperCaseHexAndLeadingZeros) {
  std::string data(0x1A, 'z');
  auto d = FeedEverySplit("001A\r\n" + data + "\r\n0000\r\n\r\n");
  ASSERT_TRUE(d.status.ok()) << d.status.ToString();
  EXPECT_EQ(d.body, data);
}

TEST(ChunkedDecoder, RejectsBadChunkSizes) {
  for (std::string in : std::vector<std::string>{"-1\r\nx\r\n0\r\n\r\n", "0x5\r\nhello\r\n0\r\n\r\n", "g\r\n",
                         "\r\n", " 5\r\nhello\r\n", "+5\r\nhello\r\n",
                         "10000000000000000\r\n",  // 17 digits
                         "8000000000000000\r\n",   // 2^63
                         "ffffffffffffffff\r\n"}) {
    auto d = FeedEverySplit(in);
    EXPECT_FALSE(d.status.ok()) << in;
    EXPECT_EQ(d.status.code(), Errc::kInvalidArgument) << in;
  }
  // The largest size is accepted (and then needs its data).
  auto big = FeedEverySplit("7fffffffffffffff\r\nabc");
  EXPECT_TRUE(big.status.ok());
  EXPECT_EQ(big.body, "abc");
}

TEST(ChunkedDecoder, RejectsBareLineFeedsAndMissingDataCrlf) {
  for (std::string in : std::vector<std::string>{"5\nhello\r\n0\r\n\r\n", "5\r\nhello\n0\r\n\r\n", "5\r\nhelloX\r\n",
                         "5\rhello", "0\r\n\n", "0\r\nA: b\n\r\n", "0\r\nA b\r\n\r\n",
                         "0\r\n: b\r\n\r\n", "5;a\x01\r\nhello\r\n0\r\n\r\n",
                         std::string("0\r\nA: b\0c\r\n\r\n", 14)}) {
    auto d = FeedEverySplit(in);
    EXPECT_EQ(d.status.code(), Errc::kInvalidArgument) << in;
  }
}

TEST(ChunkedDecoder, EndlessSizeLineFailsAtItsLimit_Hardening) {
  ChunkedLimits limits;
  limits.max_line_bytes = 64;
  // "1;" and then extension bytes without an end: refused once past 64 bytes
  // of line, however the bytes arrive, and without buffering them.
  std::string in = "1;" + std::string(200, 'a');
  auto d = FeedEverySplit(in, limits);
  EXPECT_EQ(d.status.code(), Errc::kResourceExhausted);
  std::string exact = "1;" + std::string(60, 'a') + "\r\n";  // 64 bytes: fits
  EXPECT_TRUE(FeedEverySplit(exact + "x\r\n0\r\n\r\n", limits).done);
  // Many hex digits count too (leading zeros are not free).
  EXPECT_EQ(FeedEverySplit(std::string(100, '0'), limits).status.code(),
            Errc::kInvalidArgument);  // more than 16 digits
}

TEST(ChunkedDecoder, EndlessTrailerFailsAtItsLimit_Hardening) {
  ChunkedLimits limits;
  limits.max_trailer_bytes = 100;
  std::string one_field = "0\r\nX: " + std::string(200, 'v');
  EXPECT_EQ(FeedEverySplit(one_field, limits).status.code(), Errc::kResourceExhausted);
  std::string many = "0\r\n";
  for (int i = 0; i < 50; ++i) many += "A: b\r\n";
  EXPECT_EQ(FeedEverySplit(many, limits).status.code(), Errc::kResourceExhausted);
  std::string over = "0\r\n";
  for (int i = 0; i < 10; ++i) over += "A: bcdefg\r\n";  // 10 * 11 = 110 > 100
  EXPECT_EQ(FeedEverySplit(over + "\r\n", limits).status.code(), Errc::kResourceExhausted);
  EXPECT_TRUE(FeedEverySplit("0\r\nA: b\r\n\r\n", limits).done);
}

TEST(ChunkedDecoder, CountsBodyBytesAndLargeChunksArriveInRuns) {
  std::string data(100000, 'q');
  std::string in = "186a0\r\n" + data + "\r\n0\r\n\r\n";
  ChunkedDecoder d;
  std::string_view rest = in;
  std::string body;
  while (!rest.empty() && !d.done()) {
    auto e = d.Next(rest.substr(0, 4096));
    ASSERT_TRUE(e.ok());
    body.append(e->data);
    rest.remove_prefix(e->consumed);
  }
  EXPECT_TRUE(d.done());
  EXPECT_EQ(d.body_bytes(), data.size());
  EXPECT_EQ(body, data);
}

struct Head {
  std::string target = "/";
  std::vector<std::pair<std::string, std::string>> fields;
  unsigned version = 11;
};

Result<RequestFraming> Check(const Head& h) {
  RequestHeadChecker c;
  if (Status s = c.Target(h.target); !s.ok()) return s;
  for (const auto& [n, v] : h.fields) {
    if (Status s = c.Field(n, v); !s.ok()) return s;
  }
  return c.Finish(h.version);
}

TEST(RequestHeadChecker, FramingOfOrdinaryRequests) {
  auto none = Check({"/healthz", {{"Host", "x"}}});
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->kind, BodyFraming::kNone);
  auto cl = Check({"/u", {{"Content-Length", " 42 "}}});
  ASSERT_TRUE(cl.ok());
  EXPECT_EQ(cl->kind, BodyFraming::kContentLength);
  EXPECT_EQ(cl->content_length, 42u);
  auto te = Check({"/u", {{"transfer-encoding", "Chunked"}}});
  ASSERT_TRUE(te.ok());
  EXPECT_EQ(te->kind, BodyFraming::kChunked);
}

TEST(RequestHeadChecker, RefusesSmugglingFraming_Hardening) {
  const std::vector<Head> bad = {
      {"/u", {{"Transfer-Encoding", "gzip"}}},
      {"/u", {{"Transfer-Encoding", "chunked, gzip"}}},
      {"/u", {{"Transfer-Encoding", "gzip, chunked"}}},
      {"/u", {{"Transfer-Encoding", "chunked"}, {"Transfer-Encoding", "chunked"}}},
      {"/u", {{"Transfer-Encoding", "chunked"}, {"Content-Length", "5"}}},
      {"/u", {{"Content-Length", "5"}, {"Transfer-Encoding", "chunked"}}},
      {"/u", {{"Content-Length", "5"}, {"Transfer-Encoding", "gzip"}}},
      {"/u", {{"Transfer-Encoding", "chunked"}}, 10},
      {"/u", {{"Content-Length", "5"}, {"Content-Length", "5"}}},
      {"/u", {{"Content-Length", "5, 5"}}},
      {"/u", {{"Content-Length", "-1"}}},
      {"/u", {{"Content-Length", "+5"}}},
      {"/u", {{"Content-Length", "0x10"}}},
      {"/u", {{"Content-Length", ""}}},
      {"/u", {{"Content-Length", "99999999999999999999"}}},
      {"/u", {{"Host", "a"}, {"Host", "b"}}},
      {"/u", {{"X-A", std::string("a\0b", 3)}}},
      {"/u", {{"X-A", "a\rb"}}},
      {"/u", {{"X-A", "a\x1b[31m"}}},
      {std::string("/a\0b", 4), {}},
      {"/a b", {}},
      {"/caf\xc3\xa9", {}},
      {"", {}},
  };
  for (const auto& h : bad) {
    auto r = Check(h);
    EXPECT_FALSE(r.ok()) << h.target << " " << (h.fields.empty() ? "" : h.fields[0].second);
    if (!r.ok()) {
      EXPECT_EQ(r.code(), Errc::kInvalidArgument);
    }
  }
}

}  // namespace
}  // namespace conveyor::http
