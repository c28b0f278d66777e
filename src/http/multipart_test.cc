#include "http/multipart.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace conveyor::http {
namespace {

using namespace std::string_literals;

constexpr std::string_view kBoundary = "XyZ";

struct Part {
  PartHeaders headers;
  std::string data;
  bool ended = false;

  bool operator==(const Part& o) const {
    return headers.name == o.headers.name && headers.filename == o.headers.filename &&
           headers.content_type == o.headers.content_type && data == o.data && ended == o.ended;
  }
};

// Everything a parse produced, independent of how the input was split.
struct Outcome {
  std::vector<Part> parts;
  Errc feed_code = Errc::kOk;  // the first failed Feed's status
  Errc finish_code = Errc::kOk;
  std::string message;
  bool done = false;
  size_t data_calls = 0;  // not compared: depends on the split

  bool operator==(const Outcome& o) const {
    return parts == o.parts && feed_code == o.feed_code && finish_code == o.finish_code &&
           message == o.message && done == o.done;
  }
};

std::ostream& operator<<(std::ostream& os, const Outcome& o) {
  os << "{feed=" << ErrcName(o.feed_code) << " finish=" << ErrcName(o.finish_code) << " msg='"
     << o.message << "' done=" << o.done << " parts=[";
  for (const Part& p : o.parts) {
    os << "(" << p.headers.name << "," << p.headers.filename.value_or("<none>") << ","
       << p.headers.content_type << ",'" << p.data << "'," << p.ended << ")";
  }
  return os << "]}";
}

// Feeds `body` cut at `cuts` (ascending offsets) and records the callbacks.
Outcome Parse(std::string_view body, const std::vector<size_t>& cuts, MultipartLimits limits = {},
              std::string boundary = std::string(kBoundary)) {
  Outcome out;
  MultipartCallbacks cb;
  cb.on_part_begin = [&](const PartHeaders& h) {
    out.parts.push_back({h, "", false});
    return OkStatus();
  };
  cb.on_part_data = [&](std::string_view d) {
    EXPECT_FALSE(d.empty()) << "empty data callback";
    EXPECT_FALSE(out.parts.empty());
    if (!out.parts.empty()) {
      EXPECT_FALSE(out.parts.back().ended);
      out.parts.back().data.append(d);
    }
    ++out.data_calls;
    return OkStatus();
  };
  cb.on_part_end = [&] {
    EXPECT_FALSE(out.parts.empty());
    if (!out.parts.empty()) out.parts.back().ended = true;
    return OkStatus();
  };
  MultipartParser parser(std::move(boundary), limits, std::move(cb));
  size_t prev = 0;
  std::vector<size_t> all = cuts;
  all.push_back(body.size());
  for (size_t cut : all) {
    if (!parser.Feed(body.substr(prev, cut - prev))) {
      out.feed_code = parser.status().code();
      break;
    }
    prev = cut;
  }
  Status s = parser.Finish();
  out.finish_code = s.code();
  out.message = s.message();
  out.done = parser.done();
  if (out.feed_code != Errc::kOk) {
    EXPECT_EQ(out.feed_code, out.finish_code) << "Finish must repeat the Feed error";
  }
  return out;
}

// Parses `body` whole, split in two at every position, and one byte at a
// time; every way must give the same outcome, which is returned.
Outcome ParseAllSplits(std::string_view body, MultipartLimits limits = {},
                       std::string boundary = std::string(kBoundary)) {
  Outcome whole = Parse(body, {}, limits, boundary);
  for (size_t i = 0; i <= body.size(); ++i) {
    Outcome split = Parse(body, {i}, limits, boundary);
    EXPECT_EQ(whole, split) << "split at " << i;
    if (!(whole == split)) break;  // one report is enough
  }
  std::vector<size_t> bytewise;
  for (size_t i = 1; i < body.size(); ++i) bytewise.push_back(i);
  Outcome one = Parse(body, bytewise, limits, boundary);
  EXPECT_EQ(whole, one) << "one byte at a time";
  // Three pieces at a few pseudo-random places.
  std::mt19937 rng(42);
  for (int round = 0; round < 20 && body.size() > 2; ++round) {
    size_t a = rng() % body.size(), b = rng() % body.size();
    if (a > b) std::swap(a, b);
    Outcome three = Parse(body, {a, b}, limits, boundary);
    EXPECT_EQ(whole, three) << "split at " << a << " and " << b;
  }
  return whole;
}

std::string FieldPart(std::string_view name, std::string_view value) {
  return "--XyZ\r\nContent-Disposition: form-data; name=\"" + std::string(name) + "\"\r\n\r\n" +
         std::string(value) + "\r\n";
}

constexpr std::string_view kClose = "--XyZ--\r\n";

TEST(MultipartParser, ParsesSingleField) {
  Outcome o = ParseAllSplits(FieldPart("session_id", "s-1") + std::string(kClose));
  EXPECT_EQ(o.finish_code, Errc::kOk);
  EXPECT_TRUE(o.done);
  ASSERT_EQ(o.parts.size(), 1u);
  EXPECT_EQ(o.parts[0].headers.name, "session_id");
  EXPECT_FALSE(o.parts[0].headers.filename.has_value());
  EXPECT_EQ(o.parts[0].headers.content_type, "");
  EXPECT_EQ(o.parts[0].data, "s-1");
  EXPECT_TRUE(o.parts[0].ended);
}

TEST(MultipartParser, ParsesFileWithFilenameAndContentType) {
  std::string body =
      "--XyZ\r\n"
      "Content-Disposition: form-data; name=\"file\"; filename=\"report.pdf\"\r\n"
      "Content-Type: application/pdf\r\n"
      "\r\n"
      "%PDF-1.4 body\r\n"
      "--XyZ--\r\n";
  Outcome o = ParseAllSplits(body);
  EXPECT_EQ(o.finish_code, Errc::kOk);
  ASSERT_EQ(o.parts.size(), 1u);
  EXPECT_EQ(o.parts[0].headers.name, "file");
  EXPECT_EQ(o.parts[0].headers.filename, "report.pdf");
  EXPECT_EQ(o.parts[0].headers.content_type, "application/pdf");
  EXPECT_EQ(o.parts[0].data, "%PDF-1.4 body");
}

TEST(MultipartParser, ParsesMultipleFieldsInOrder) {
  std::string body =
      FieldPart("a", "1") + FieldPart("b", "two") + FieldPart("c", "") +
      "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.txt\"\r\n"
      "Content-Type: text/plain\r\n\r\nhello\r\nworld\r\n" +
      std::string(kClose);
  Outcome o = ParseAllSplits(body);
  EXPECT_EQ(o.finish_code, Errc::kOk);
  ASSERT_EQ(o.parts.size(), 4u);
  EXPECT_EQ(o.parts[0].data, "1");
  EXPECT_EQ(o.parts[1].data, "two");
  EXPECT_EQ(o.parts[2].data, "");
  EXPECT_EQ(o.parts[3].data, "hello\r\nworld");
  EXPECT_EQ(o.parts[3].headers.content_type, "text/plain");
  for (const Part& p : o.parts) EXPECT_TRUE(p.ended);
}

TEST(MultipartParser, EmptyPartGetsBeginAndEndButNoData) {
  Outcome o = ParseAllSplits(FieldPart("empty", "") + std::string(kClose));
  EXPECT_EQ(o.finish_code, Errc::kOk);
  ASSERT_EQ(o.parts.size(), 1u);
  EXPECT_EQ(o.parts[0].data, "");
  EXPECT_EQ(o.data_calls, 0u);
  EXPECT_TRUE(o.parts[0].ended);
}

TEST(MultipartParser, PreservesBinaryDataWithNulsAndControlBytes) {
  std::string data = "\0\x01\xff\r\0\n\r\r\n\n-\0"s;
  for (int i = 0; i < 256; ++i) data.push_back(static_cast<char>(i));
  Outcome o = ParseAllSplits(FieldPart("bin", data) + std::string(kClose));
  EXPECT_EQ(o.finish_code, Errc::kOk);
  ASSERT_EQ(o.parts.size(), 1u);
  EXPECT_EQ(o.parts[0].data, data);
}

TEST(MultipartParser, IgnoresPreamble) {
  std::string body =
      "This is the preamble.\r\n-XyZ\r\n--Xy\r\n" + FieldPart("a", "1") + std::string(kClose);
  Outcome o = ParseAllSplits(body);
  EXPECT_EQ(o.finish_code, Errc::kOk);
  ASSERT_EQ(o.parts.size(), 1u);
  EXPECT_EQ(o.parts[0].data, "1");
}

TEST(MultipartParser, AcceptsPreambleEndingInCrlfBeforeFirstBoundary) {
  Outcome o = ParseAllSplits("\r\n" + FieldPart("a", "1") + std::string(kClose));
  EXPECT_EQ(o.finish_code, Errc::kOk);
  ASSERT_EQ(o.parts.size(), 1u);
  o = ParseAllSplits("\r\r\n" + FieldPart("a", "1") + std::string(kClose));
  EXPECT_EQ(o.finish_code, Errc::kOk);
  ASSERT_EQ(o.parts.size(), 1u);
}

TEST(MultipartParser, BoundaryInPreambleNotAtLineStartIsIgnored) {
  Outcome o = ParseAllSplits("junk--XyZ\r\n" + FieldPart("a", "1") + std::string(kClose));
  EXPECT_EQ(o.finish_code, Errc::kOk);
  ASSERT_EQ(o.parts.size(), 1u);
  EXPECT_EQ(o.parts[0].headers.name, "a");
}

TEST(MultipartParser, ToleratesTransportPaddingAfterBoundary) {
  std::string body =
      "--XyZ \t \r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--XyZ\t\r\n"
      "Content-Disposition: form-data; name=\"b\"\r\n\r\n2\r\n--XyZ--";
  Outcome o = ParseAllSplits(body);
  EXPECT_EQ(o.finish_code, Errc::kOk);
  ASSERT_EQ(o.parts.size(), 2u);
  EXPECT_EQ(o.parts[1].data, "2");
}

TEST(MultipartParser, ClosingDelimiterEndsBodyAndEpilogueIsIgnored) {
  std::string body = FieldPart("a", "1") + "--XyZ--  trailing\r\n--XyZ\r\ngarbage: \x01\r\n";
  Outcome o = ParseAllSplits(body);
  EXPECT_EQ(o.finish_code, Errc::kOk);
  EXPECT_TRUE(o.done);
  ASSERT_EQ(o.parts.size(), 1u);
}

TEST(MultipartParser, ClosingDelimiterWithoutTrailingCrlfEnds) {
  Outcome o = ParseAllSplits(FieldPart("a", "1") + "--XyZ--");
  EXPECT_EQ(o.finish_code, Errc::kOk);
  EXPECT_TRUE(o.done);
}

TEST(MultipartParser, BoundaryNotPrecededByCrlfIsData) {
  const std::string safe = "x--XyZ y\n--XyZ\r--XyZ\n\r--XyZ --XyZ-- end";
  Outcome o = ParseAllSplits(FieldPart("a", safe) + std::string(kClose));
  EXPECT_EQ(o.finish_code, Errc::kOk);
  ASSERT_EQ(o.parts.size(), 1u);
  EXPECT_EQ(o.parts[0].data, safe);
}

TEST(MultipartParser, PartialDelimiterFollowedByOtherBytesIsData) {
  const std::vector<std::string> datas = {
      "a\r\n--XyQ",
      "a\r\n--Xy",
      "a\r\n--X\r\n--Xy!",
      "\r",
      "\r\n",
      "\r\n-",
      "\r\n--",
      "\r\r",
      "\r\r\n",
      "abc\r",
      "abc\r\n",
      "\r\n\r\n--X",
      "\r\n-\r\n--XY",
      "--XyZ",
  };
  for (const std::string& d : datas) {
    SCOPED_TRACE(testing::PrintToString(d));
    Outcome o = ParseAllSplits(FieldPart("a", d) + std::string(kClose));
    EXPECT_EQ(o.finish_code, Errc::kOk) << o;
    ASSERT_EQ(o.parts.size(), 1u);
    EXPECT_EQ(o.parts[0].data, d);
  }
}

// Many CRs in a row switch the search from memchr to Horspool; the result
// must not change, including delimiters cut at chunk ends.
TEST(MultipartParser, DataDenseInCarriageReturnsIsParsedTheSame) {
  std::string data = std::string(40, '\r') + "\r\n--XyQ" + std::string(40, '\r') + "\r\n--Xy";
  for (int i = 0; i < 20; ++i) data += "\r\r\n\n-";
  data += "\r";
  std::string body = FieldPart("a", data) + FieldPart("b", std::string(30, '\r')) +
                     FieldPart("c", "\r\n--X" + std::string(50, '\r')) + std::string(kClose);
  Outcome o = ParseAllSplits(body);
  EXPECT_EQ(o.finish_code, Errc::kOk) << o;
  ASSERT_EQ(o.parts.size(), 3u);
  EXPECT_EQ(o.parts[0].data, data);
  EXPECT_EQ(o.parts[1].data, std::string(30, '\r'));
  EXPECT_EQ(o.parts[2].data, "\r\n--X" + std::string(50, '\r'));
}

TEST(MultipartParser, LoneLfBeforeBoundaryIsData) {
  // "\n--XyZ\r\n" inside the data: not a delimiter (no CR).
  std::string body =
      "--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nline\n--XyZ\nmore"
      "\r\n--XyZ--\r\n";
  Outcome o = ParseAllSplits(body);
  EXPECT_EQ(o.finish_code, Errc::kOk);
  ASSERT_EQ(o.parts.size(), 1u);
  EXPECT_EQ(o.parts[0].data, "line\n--XyZ\nmore");
}

TEST(MultipartParser, DelimiterFollowedByGarbageIsRejected) {
  Outcome o = ParseAllSplits(FieldPart("a", "1") + "--XyZZ\r\n");
  EXPECT_EQ(o.finish_code, Errc::kInvalidArgument);
  o = ParseAllSplits(FieldPart("a", "1") + "--XyZ-x");
  EXPECT_EQ(o.finish_code, Errc::kInvalidArgument);
  o = ParseAllSplits(FieldPart("a", "1") + "--XyZ  x\r\n");
  EXPECT_EQ(o.finish_code, Errc::kInvalidArgument);
}

TEST(MultipartParser, BoundaryLineEndedByLoneLfIsRejected) {
  Outcome o =
      ParseAllSplits("--XyZ\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--XyZ--");
  EXPECT_EQ(o.finish_code, Errc::kInvalidArgument);
  o = ParseAllSplits("--XyZ\r\rContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--XyZ--");
  EXPECT_EQ(o.finish_code, Errc::kInvalidArgument);
}

TEST(MultipartParser, HeaderNamesAndDispositionAreCaseInsensitive) {
  std::string body =
      "--XyZ\r\ncOnTeNt-DiSpOsItIoN: Form-Data; NAME=\"a\"; FileName=\"f.txt\"\r\n"
      "CONTENT-TYPE:text/plain  \r\n\r\nx\r\n--XyZ--";
  Outcome o = ParseAllSplits(body);
  EXPECT_EQ(o.finish_code, Errc::kOk);
  ASSERT_EQ(o.parts.size(), 1u);
  EXPECT_EQ(o.parts[0].headers.name, "a");
  EXPECT_EQ(o.parts[0].headers.filename, "f.txt");
  EXPECT_EQ(o.parts[0].headers.content_type, "text/plain");
}

TEST(MultipartParser, ParsesUnquotedNameAndFilename) {
  std::string body =
      "--XyZ\r\nContent-Disposition: form-data;name=file ; filename=a.bin\r\n\r\nx\r\n--XyZ--";
  Outcome o = ParseAllSplits(body);
  EXPECT_EQ(o.finish_code, Errc::kOk);
  ASSERT_EQ(o.parts.size(), 1u);
  EXPECT_EQ(o.parts[0].headers.name, "file");
  EXPECT_EQ(o.parts[0].headers.filename, "a.bin");
}

TEST(MultipartParser, UnescapesQuotesInQuotedStrings) {
  std::string body =
      "--XyZ\r\nContent-Disposition: form-data; name=\"a\\\"b\"; "
      "filename=\"C:\\dir\\say \\\"hi\\\"; x=y.txt\"\r\n\r\nx\r\n--XyZ--";
  Outcome o = ParseAllSplits(body);
  EXPECT_EQ(o.finish_code, Errc::kOk) << o;
  ASSERT_EQ(o.parts.size(), 1u);
  EXPECT_EQ(o.parts[0].headers.name, "a\"b");
  EXPECT_EQ(o.parts[0].headers.filename, "C:\\dir\\say \"hi\"; x=y.txt");
}

TEST(MultipartParser, KeepsRawUtf8AndEmptyFilename) {
  std::string body =
      "--XyZ\r\nContent-Disposition: form-data; name=\"f\"; "
      "filename=\"r\xc3\xa9sum\xc3\xa9.pdf\"\r\n"
      "\r\nx\r\n--XyZ\r\nContent-Disposition: form-data; name=\"g\"; "
      "filename=\"\"\r\n\r\n\r\n--XyZ--";
  Outcome o = ParseAllSplits(body);
  EXPECT_EQ(o.finish_code, Errc::kOk);
  ASSERT_EQ(o.parts.size(), 2u);
  EXPECT_EQ(o.parts[0].headers.filename, "r\xc3\xa9sum\xc3\xa9.pdf");
  EXPECT_EQ(o.parts[1].headers.filename, "");
}

TEST(MultipartParser, IgnoresFilenameStar) {
  std::string body =
      "--XyZ\r\nContent-Disposition: form-data; name=\"f\"; filename*=UTF-8''%e2%82%ac.txt\r\n"
      "\r\nx\r\n--XyZ\r\nContent-Disposition: form-data; name=\"g\"; filename*=%%%; "
      "filename=\"b.txt\"\r\n\r\ny\r\n--XyZ--";
  Outcome o = ParseAllSplits(body);
  EXPECT_EQ(o.finish_code, Errc::kOk);
  ASSERT_EQ(o.parts.size(), 2u);
  EXPECT_FALSE(o.parts[0].headers.filename.has_value());
  EXPECT_EQ(o.parts[1].headers.filename, "b.txt");
}

TEST(MultipartParser, IgnoresOtherHeadersAndFoldsContinuationLines) {
  std::string body =
      "--XyZ\r\nX-Whatever: 1\r\nContent-Disposition: form-data;\r\n name=\"a\"\r\n"
      "Content-Transfer-Encoding: binary\r\n\r\nx\r\n--XyZ--";
  Outcome o = ParseAllSplits(body);
  EXPECT_EQ(o.finish_code, Errc::kOk) << o;
  ASSERT_EQ(o.parts.size(), 1u);
  EXPECT_EQ(o.parts[0].headers.name, "a");
}

Errc ParseCode(const std::string& body, MultipartLimits limits = {}) {
  return ParseAllSplits(body, limits).finish_code;
}

TEST(MultipartParser, RejectsPartWithoutContentDisposition) {
  EXPECT_EQ(ParseCode("--XyZ\r\nContent-Type: text/plain\r\n\r\nx\r\n--XyZ--"),
            Errc::kInvalidArgument);
  EXPECT_EQ(ParseCode("--XyZ\r\n\r\nx\r\n--XyZ--"), Errc::kInvalidArgument);
}

TEST(MultipartParser, RejectsDispositionOtherThanFormData) {
  EXPECT_EQ(ParseCode("--XyZ\r\nContent-Disposition: attachment; name=\"a\"\r\n\r\nx\r\n--XyZ--"),
            Errc::kInvalidArgument);
  EXPECT_EQ(ParseCode("--XyZ\r\nContent-Disposition: form-datax; name=\"a\"\r\n\r\nx\r\n--XyZ--"),
            Errc::kInvalidArgument);
}

TEST(MultipartParser, RejectsPartWithoutName) {
  EXPECT_EQ(ParseCode("--XyZ\r\nContent-Disposition: form-data\r\n\r\nx\r\n--XyZ--"),
            Errc::kInvalidArgument);
  EXPECT_EQ(
      ParseCode("--XyZ\r\nContent-Disposition: form-data; filename=\"a\"\r\n\r\nx\r\n--XyZ--"),
      Errc::kInvalidArgument);
  EXPECT_EQ(ParseCode("--XyZ\r\nContent-Disposition: form-data; name=\"\"\r\n\r\nx\r\n--XyZ--"),
            Errc::kInvalidArgument);
}

TEST(MultipartParser, RejectsMalformedHeaderLines) {
  const std::vector<std::string> headers = {
      "Content-Disposition form-data; name=\"a\"",               // no colon
      "Content-Disposition: form-data; name=\"a\"\r\nbogus",     // no colon
      ": form-data",                                             // empty name
      "Content Disposition: form-data; name=\"a\"",              // space in name
      " Content-Disposition: form-data; name=\"a\"",             // fold first
      "Content-Disposition: form-data; name=\"a",                // open quote
      "Content-Disposition: form-data; name",                    // no '='
      "Content-Disposition: form-data; name=\"a\" junk",         // junk
      "Content-Disposition: form-data; name=\"a\"; name=\"b\"",  // duplicate
      "Content-Disposition: form-data; name=\"a\x01\"",          // control char
      "Content-Disposition: form-data; name=\"a\nb\"",           // lone LF
      "Content-Disposition: form-data; name=\"a\rb\"",           // lone CR
      "Content-Disposition: form-data; name=a\"b",               // stray quote
      "Content-Disposition: form-data; name=\"a\"\r\n"
      "Content-Disposition: form-data; name=\"b\"",  // duplicate header
  };
  for (const std::string& h : headers) {
    SCOPED_TRACE(testing::PrintToString(h));
    EXPECT_EQ(ParseCode("--XyZ\r\n" + h + "\r\n\r\nx\r\n--XyZ--"), Errc::kInvalidArgument);
  }
}

TEST(MultipartParser, TruncatedBodyFailsAtFinishAtEveryLength) {
  std::string body = "pre\r\n" + FieldPart("a", "1\r\n--Xy2") +
                     "--XyZ  \r\nContent-Disposition: form-data; name=\"f\"; filename=\"x\"\r\n"
                     "Content-Type: text/plain\r\n\r\n\r\n\r\n" +
                     "--XyZ--";
  ASSERT_EQ(Parse(body, {}).finish_code, Errc::kOk);
  for (size_t len = 0; len < body.size(); ++len) {
    SCOPED_TRACE(len);
    Outcome o = ParseAllSplits(std::string_view(body).substr(0, len));
    EXPECT_EQ(o.finish_code, Errc::kInvalidArgument) << o;
    EXPECT_FALSE(o.done);
  }
}

TEST(MultipartParser, BodyWithoutDelimiterFails) {
  EXPECT_EQ(ParseCode(""), Errc::kInvalidArgument);
  EXPECT_EQ(ParseCode("just some text"), Errc::kInvalidArgument);
  EXPECT_EQ(ParseCode("--XyY\r\n\r\n--XyY--"), Errc::kInvalidArgument);
}

TEST(MultipartParser, HeaderBlockOverLimitIsResourceExhausted) {
  MultipartLimits limits;
  limits.max_header_bytes = 64;
  std::string ok_header = "Content-Disposition: form-data; name=\"a\"\r\n";  // 42 bytes
  std::string pad = "X: " + std::string(64 - ok_header.size() - 2 - 5, 'p') + "\r\n";
  std::string block = ok_header + pad + "\r\n";
  ASSERT_EQ(block.size(), 64u);
  EXPECT_EQ(ParseCode("--XyZ\r\n" + block + "x\r\n--XyZ--", limits), Errc::kOk);
  std::string over =
      ok_header + "X: " + std::string(64 - ok_header.size() - 2 - 4, 'p') + "\r\n\r\n";
  ASSERT_EQ(over.size(), 65u);
  EXPECT_EQ(ParseCode("--XyZ\r\n" + over + "x\r\n--XyZ--", limits), Errc::kResourceExhausted);
  // A block that never ends is cut off at the limit, not buffered.
  EXPECT_EQ(ParseCode("--XyZ\r\n" + std::string(1000, 'h'), limits), Errc::kResourceExhausted);
}

TEST(MultipartParser, TooManyPartsIsResourceExhausted) {
  MultipartLimits limits;
  limits.max_parts = 2;
  EXPECT_EQ(ParseCode(FieldPart("a", "1") + FieldPart("b", "2") + std::string(kClose), limits),
            Errc::kOk);
  EXPECT_EQ(ParseCode(FieldPart("a", "1") + FieldPart("b", "2") + FieldPart("c", "3") +
                          std::string(kClose),
                      limits),
            Errc::kResourceExhausted);
}

TEST(MultipartParser, RejectsInvalidBoundary) {
  for (std::string b : {""s, "a b "s, std::string(71, 'a'), "a\rb"s, "a\"b"s, "\xc3\xa9"s}) {
    MultipartParser p(b, {}, {});
    EXPECT_FALSE(p.Feed("--" + b + "--"));
    EXPECT_EQ(p.Finish().code(), Errc::kInvalidArgument);
  }
  MultipartParser p(std::string(70, 'a'), {}, {});
  EXPECT_TRUE(p.Feed("--" + std::string(70, 'a') + "--"));
  EXPECT_TRUE(p.Finish().ok());
}

TEST(MultipartParser, BoundaryWithSpecialCharactersWorks) {
  std::string b = "'()+_,-./:=? x";
  std::string body = "--" + b + "\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n--" + b +
                     "x\r\n--" + b + "--";
  Outcome o = ParseAllSplits(body, {}, b);
  EXPECT_EQ(o.finish_code, Errc::kOk) << o;
  ASSERT_EQ(o.parts.size(), 1u);
  EXPECT_EQ(o.parts[0].data, "--" + b + "x");
}

TEST(MultipartParser, CallbackErrorStopsParserWithThatStatus) {
  std::string body = FieldPart("a", "1") + FieldPart("b", "2") + std::string(kClose);
  for (int which = 0; which < 3; ++which) {
    int calls = 0;
    MultipartCallbacks cb;
    cb.on_part_begin = [&](const PartHeaders&) {
      ++calls;
      return which == 0 ? Status(Errc::kPermissionDenied, "no") : OkStatus();
    };
    cb.on_part_data = [&](std::string_view) {
      ++calls;
      return which == 1 ? Status(Errc::kPermissionDenied, "no") : OkStatus();
    };
    cb.on_part_end = [&] {
      ++calls;
      return which == 2 ? Status(Errc::kPermissionDenied, "no") : OkStatus();
    };
    MultipartParser p(std::string(kBoundary), {}, std::move(cb));
    EXPECT_FALSE(p.Feed(body));
    EXPECT_EQ(p.status().code(), Errc::kPermissionDenied);
    EXPECT_EQ(calls, which + 1);
    EXPECT_FALSE(p.Feed("more"));
    EXPECT_EQ(calls, which + 1);
    EXPECT_EQ(p.Finish().code(), Errc::kPermissionDenied);
  }
}

TEST(MultipartParser, WorksWithoutCallbacks) {
  MultipartParser p(std::string(kBoundary), {}, {});
  EXPECT_TRUE(p.Feed(FieldPart("a", "1") + std::string(kClose)));
  EXPECT_TRUE(p.done());
  EXPECT_TRUE(p.Finish().ok());
}

TEST(MultipartParser, HoldsBackNoMoreThanAPossibleDelimiter) {
  std::string received;
  MultipartCallbacks cb;
  cb.on_part_begin = [](const PartHeaders&) { return OkStatus(); };
  cb.on_part_data = [&](std::string_view d) {
    received.append(d);
    return OkStatus();
  };
  MultipartParser p(std::string(kBoundary), {}, std::move(cb));
  ASSERT_TRUE(p.Feed("--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n"));
  ASSERT_TRUE(p.Feed(std::string(1000, 'd')));
  EXPECT_EQ(received.size(), 1000u);
  ASSERT_TRUE(p.Feed("tail\r\n--Xy"));
  EXPECT_EQ(received.size(), 1004u);  // only the would-be delimiter is held
  ASSERT_TRUE(p.Feed("Q"));
  EXPECT_EQ(received, std::string(1000, 'd') + "tail\r\n--XyQ");
}

TEST(MultipartParser, EmitsALargeChunkInOneCallback) {
  std::string head = "--XyZ\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\n";
  std::string data(1 << 20, 'z');
  size_t calls = 0;
  MultipartCallbacks cb;
  cb.on_part_data = [&](std::string_view d) {
    ++calls;
    EXPECT_EQ(d.size(), data.size());
    return OkStatus();
  };
  MultipartParser p(std::string(kBoundary), {}, std::move(cb));
  ASSERT_TRUE(p.Feed(head));
  ASSERT_TRUE(p.Feed(data));
  EXPECT_EQ(calls, 1u);
}

// Random bodies of random parts with boundary-like noise, fed in random
// chunks: the data must round-trip exactly.
TEST(MultipartParser, RandomBodiesRoundTripUnderRandomSplits) {
  std::mt19937 rng(7);
  const std::vector<std::string> noise = {"\r",       "\n",    "\r\n",      "\r\n-", "\r\n--",
                                          "\r\n--Xy", "--XyZ", "\r\r\n--X", "a",     "\0"s};
  for (int round = 0; round < 200; ++round) {
    std::vector<std::string> values;
    std::string body = (rng() % 2) ? "preamble\r\n" : "";
    int nparts = 1 + static_cast<int>(rng() % 4);
    for (int i = 0; i < nparts; ++i) {
      std::string v;
      // Long values are dense in CR and exercise the Horspool search.
      int pieces = static_cast<int>(rng() % (round % 2 == 0 ? 12 : 200));
      for (int k = 0; k < pieces; ++k) v += noise[rng() % noise.size()];
      // The one thing a value cannot hold is the delimiter itself.
      for (size_t at; (at = v.find("\r\n--XyZ")) != std::string::npos;) v.erase(at, 2);
      values.push_back(v);
      body += FieldPart("f" + std::to_string(i), v);
    }
    body += "--XyZ--\r\nepilogue";
    std::vector<size_t> cuts;
    for (size_t at = rng() % 5; at < body.size(); at += 1 + rng() % 9) cuts.push_back(at);
    Outcome o = Parse(body, cuts);
    Outcome whole = Parse(body, {});
    EXPECT_EQ(o, whole);
    ASSERT_EQ(o.finish_code, Errc::kOk) << o;
    ASSERT_EQ(o.parts.size(), values.size());
    for (size_t i = 0; i < values.size(); ++i) EXPECT_EQ(o.parts[i].data, values[i]);
  }
}

// Not a benchmark harness, but it keeps the fast path honest: a 64 MiB random
// body in 64 KiB chunks, as the upload handler feeds it.
TEST(MultipartParser, StreamsLargeBodyQuickly) {
  constexpr size_t kBodyBytes = 64 << 20;
  constexpr size_t kChunk = 64 << 10;
  std::mt19937_64 rng(1);
  std::string data(kBodyBytes, '\0');
  for (size_t i = 0; i + 8 <= data.size(); i += 8) {
    uint64_t v = rng();
    std::memcpy(&data[i], &v, 8);
  }
  std::string body =
      "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big\"\r\n"
      "\r\n" +
      data + "\r\n--XyZ--\r\n";
  size_t received = 0;
  MultipartCallbacks cb;
  cb.on_part_data = [&](std::string_view d) {
    received += d.size();
    return OkStatus();
  };
  MultipartParser p(std::string(kBoundary), {}, std::move(cb));
  auto start = std::chrono::steady_clock::now();
  for (size_t at = 0; at < body.size(); at += kChunk) {
    ASSERT_TRUE(p.Feed(std::string_view(body).substr(at, kChunk)));
  }
  ASSERT_TRUE(p.Finish().ok());
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(received, kBodyBytes);
  double gbps = static_cast<double>(body.size()) / seconds / 1e9;
  std::printf("multipart: %zu MiB in %zu KiB chunks: %.3f s, %.2f GB/s\n", kBodyBytes >> 20,
              kChunk >> 10, seconds, gbps);
  RecordProperty("throughput_gb_per_s", std::to_string(gbps));
}

TEST(BoundaryFromContentType, ParsesQuotedAndUnquotedBoundaries) {
  EXPECT_EQ(*BoundaryFromContentType("multipart/form-data; boundary=abc"), "abc");
  EXPECT_EQ(*BoundaryFromContentType("multipart/form-data; boundary=\"a b:c\""), "a b:c");
  EXPECT_EQ(*BoundaryFromContentType("Multipart/Form-Data;BOUNDARY=----WebKitFormBoundaryx7"),
            "----WebKitFormBoundaryx7");
  EXPECT_EQ(*BoundaryFromContentType("multipart/form-data ; charset=utf-8; boundary=x ; a=\"b;c\""),
            "x");
  EXPECT_EQ(*BoundaryFromContentType("multipart/form-data; boundary=" + std::string(70, 'b')),
            std::string(70, 'b'));
  EXPECT_EQ(*BoundaryFromContentType("multipart/form-data; boundary='()+_,-./:=?"), "'()+_,-./:=?");
}

TEST(BoundaryFromContentType, RejectsWrongTypeAndBadBoundaries) {
  const std::vector<std::string> bad = {
      "",
      "text/plain; boundary=abc",
      "multipart/mixed; boundary=abc",
      "multipart/form-data",
      "multipart/form-data;",
      "multipart/form-data; charset=utf-8",
      "multipart/form-data; boundary=",
      "multipart/form-data; boundary=\"\"",
      "multipart/form-data; boundary=\"abc \"",
      "multipart/form-data; boundary=a b",
      "multipart/form-data; boundary=" + std::string(71, 'b'),
      "multipart/form-data; boundary=\"abc",
      "multipart/form-data; boundary=a; boundary=b",
      "multipart/form-data; boundary=ab\x01",
      "multipart/form-data; boundary=a\"b",
      "multipart/form-data; boundary=\"a\rb\"",
      "multipart/form-data; boundary=\"a\xc3\xa9\"",
      "multipart/form-data; boundary=abc*",
      "multipart/form-data boundary=abc",
  };
  for (const std::string& ct : bad) {
    SCOPED_TRACE(testing::PrintToString(ct));
    auto r = BoundaryFromContentType(ct);
    EXPECT_FALSE(r.ok());
    EXPECT_EQ(r.code(), Errc::kInvalidArgument);
  }
}

}  // namespace
}  // namespace conveyor::http
