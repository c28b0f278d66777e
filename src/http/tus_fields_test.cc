// The tus routes' Upload-Metadata and Upload-Checksum parsing
// (http/internal/tus_fields.h); tests/fuzz/tus_fields_fuzz.cc fuzzes them.
#include "http/internal/tus_fields.h"

#include <gtest/gtest.h>

namespace conveyor::http {
namespace {

TEST(TusFields, MetadataTakesTheKnownKeys) {
  std::string_view code;
  auto m = ParseUploadMetadata(
      "session_id czE=, filename YS50eHQ=,filetype dGV4dC9wbGFpbg==,message aGk=,extra,other eA==",
      &code);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->session_id, "s1");
  EXPECT_EQ(m->filename, "a.txt");
  EXPECT_EQ(m->filetype, "text/plain");
  EXPECT_EQ(m->message, "hi");
  auto uppy = ParseUploadMetadata("session_id czE=,name YS50eHQ=,type dGV4dC9wbGFpbg==", &code);
  ASSERT_TRUE(uppy.ok());
  EXPECT_EQ(uppy->filename, "a.txt");
  EXPECT_EQ(uppy->filetype, "text/plain");
}

TEST(TusFields, MetadataRefusalsNameTheirCode) {
  std::string_view code;
  EXPECT_FALSE(ParseUploadMetadata("filename YS50eHQ=", &code).ok());
  EXPECT_EQ(code, "missing_session_id");
  EXPECT_FALSE(ParseUploadMetadata("session_id", &code).ok());  // empty session id
  EXPECT_EQ(code, "invalid_session_id");
  EXPECT_FALSE(ParseUploadMetadata("session_id //4=", &code).ok());  // 0xff 0xfe: not UTF-8
  EXPECT_EQ(code, "invalid_session_id");
  EXPECT_FALSE(ParseUploadMetadata("session_id czE=,message //4=", &code).ok());
  EXPECT_EQ(code, "invalid_message");
  EXPECT_FALSE(ParseUploadMetadata("session_id c!E=", &code).ok());
  EXPECT_EQ(code, "invalid_metadata");
  EXPECT_FALSE(ParseUploadMetadata(",session_id czE=", &code).ok());  // an empty key
  EXPECT_EQ(code, "invalid_metadata");
}

TEST(TusFields, ChecksumIsSha256Only) {
  auto none = ParseUploadChecksum("");
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  const std::string digest(32, '\x07');
  auto ok = ParseUploadChecksum("sha256 " + Base64Encode(digest));
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(**ok, digest);
  EXPECT_FALSE(ParseUploadChecksum("md5 " + Base64Encode(std::string(16, 'x'))).ok());
  EXPECT_FALSE(ParseUploadChecksum("sha256 " + Base64Encode("short")).ok());
  EXPECT_FALSE(ParseUploadChecksum("sha256").ok());
}

}  // namespace
}  // namespace conveyor::http
