#include "uploads/uploads.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/ids.h"
#include "fakes.h"
#include "uploads/upload_form.h"
#include "test_support.h"

namespace conveyor::uploads {
namespace {

using conveyor::testing::DirBlobStore;
using conveyor::testing::FakeMetadataStore;
using conveyor::testing::FakeQueue;
using conveyor::testing::TempDir;

AcceptedUpload Form() {
  AcceptedUpload up;
  up.user_id = "u1";
  up.session_id = "s1";
  up.original_name = "dir/report.pdf";
  up.mime_type = "application/pdf";
  up.message = "please summarise";
  return up;
}

TEST(CleanFileName, KeepsOnlyADisplayName) {
  EXPECT_EQ(CleanFileName("../../etc/passwd"), "passwd");
  EXPECT_EQ(CleanFileName("C:\\Users\\x\\a.txt"), "a.txt");
  EXPECT_EQ(CleanFileName("a\x01"
                          "b\nc"),
            "a_b_c");
  EXPECT_EQ(CleanFileName(".."), "_");
  EXPECT_EQ(CleanFileName(std::string(1000, 'x')).size(), kMaxOriginalNameBytes);
  // A multi-byte code point at the cut is dropped whole, never split.
  std::string name = std::string(kMaxOriginalNameBytes - 1, 'x') + "\xC3\xA9";
  EXPECT_EQ(CleanFileName(name), std::string(kMaxOriginalNameBytes - 1, 'x'));
}

TEST(FileSink, RefusesBytesPastTheLimitAndDeletesTheTempFileWhenDropped) {
  TempDir dir;
  DirBlobStore blobs(dir / "b");
  {
    FileSink sink(blobs, NewUuid(), 100000);
    ASSERT_TRUE(sink.Append(std::string(60000, 'a')).ok());
    EXPECT_EQ(sink.Append(std::string(60000, 'a')).code(), Errc::kResourceExhausted);
    EXPECT_EQ(sink.size(), 60000);
    EXPECT_EQ(DirBlobStore::ListFiles(blobs.dir() + "/tmp").size(), 1u);
  }
  EXPECT_TRUE(DirBlobStore::ListFiles(dir.path()).empty());
}


// A multipart body with the given file bytes and fields.
std::string Body(const std::string& file, const std::string& session = "s1",
                 const std::string& extra = "") {
  const std::string b = "--XyZ\r\n";
  std::string out = b + "Content-Disposition: form-data; name=\"session_id\"\r\n\r\n" + session +
                    "\r\n";
  out += extra;
  out += b + "Content-Disposition: form-data; name=\"file\"; filename=\"../r.txt\"\r\n" +
         "Content-Type: text/plain\r\n\r\n" + file + "\r\n--XyZ--\r\n";
  return out;
}

TEST(UploadForm, EverySplitOfTheBodyGivesTheSameUpload) {
  TempDir dir;
  DirBlobStore blobs(dir / "b");
  const std::string file = "line one\r\nline --XyZ two\r\n-";
  const std::string body = Body(file);
  for (size_t cut = 0; cut <= body.size(); ++cut) {
    UploadForm form(blobs, "XyZ", NewUuid(), 1 << 20);
    ASSERT_TRUE(form.Feed(body.substr(0, cut)).ok()) << cut;
    ASSERT_TRUE(form.Feed(body.substr(cut)).ok()) << cut;
    auto up = form.Finish("u1");
    ASSERT_TRUE(up.ok()) << cut << ": " << up.status().ToString();
    EXPECT_EQ(up->session_id, "s1");
    EXPECT_EQ(up->user_id, "u1");
    EXPECT_EQ(up->original_name, "../r.txt");  // cleaned by Seal, not here
    EXPECT_EQ(up->mime_type, "text/plain");
    EXPECT_EQ(form.sink().size(), static_cast<int64_t>(file.size()));
    auto row = Seal(std::move(*up), form.sink(), false);
    ASSERT_TRUE(row.ok()) << row.status().ToString();
    EXPECT_EQ(row->original_name, "r.txt");
    EXPECT_EQ(row->sha256_hex.size(), 64u);
  }
  // One byte at a time, too.
  UploadForm form(blobs, "XyZ", NewUuid(), 1 << 20);
  for (char c : body) ASSERT_TRUE(form.Feed(std::string_view(&c, 1)).ok());
  ASSERT_TRUE(form.Finish("u1").ok());
  EXPECT_EQ(form.sink().size(), static_cast<int64_t>(file.size()));
}

TEST(UploadForm, RefusalsCarryTheirClientCode) {
  TempDir dir;
  DirBlobStore blobs(dir / "b");
  struct Case {
    std::string body;
    int64_t max_file = 1 << 20;
    Errc code;
    std::string_view error_code;
    bool at_finish;
  };
  const std::string msg = "--XyZ\r\nContent-Disposition: form-data; name=\"message\"\r\n\r\n";
  std::vector<Case> cases = {
      {Body("x"), 0, Errc::kResourceExhausted, "payload_too_large", false},
      {Body("x", std::string(300, 's')), 1 << 20, Errc::kInvalidArgument, "invalid_session_id",
       false},
      {Body("x", "s1", msg + std::string(65 * 1024, 'm') + "\r\n"), 1 << 20,
       Errc::kInvalidArgument, "message_too_long", false},
      {"garbage without a delimiter", 1 << 20, Errc::kInvalidArgument, "malformed_body", true},
      {Body("x").substr(0, 40), 1 << 20, Errc::kInvalidArgument, "malformed_body", true},
      {Body(""), 1 << 20, Errc::kInvalidArgument, "empty_file", true},
      {Body("x", ""), 1 << 20, Errc::kInvalidArgument, "missing_session_id", true},
      {Body("x", "s\xff"), 1 << 20, Errc::kInvalidArgument, "invalid_session_id", true},
      {Body("x", "s1", msg + "\xc3\r\n"), 1 << 20, Errc::kInvalidArgument, "invalid_message",
       true},
      {"--XyZ\r\nContent-Disposition: form-data; name=\"session_id\"\r\n\r\ns\r\n--XyZ--\r\n",
       1 << 20, Errc::kInvalidArgument, "missing_file", true},
  };
  for (const Case& c : cases) {
    UploadForm form(blobs, "XyZ", NewUuid(), c.max_file);
    Status fed = form.Feed(c.body);
    if (!c.at_finish) {
      EXPECT_EQ(fed.code(), c.code) << c.error_code << ": " << fed.ToString();
      EXPECT_EQ(form.error_code(), c.error_code);
      continue;
    }
    ASSERT_TRUE(fed.ok()) << c.error_code << ": " << fed.ToString();
    auto up = form.Finish("u1");
    EXPECT_EQ(up.code(), c.code) << c.error_code;
    EXPECT_EQ(form.error_code(), c.error_code);
  }
  // Refused forms leave no file behind.
  EXPECT_TRUE(DirBlobStore::ListFiles(dir.path()).empty());
}

TEST(Accept, CommitsRecordsAndEnqueuesInOrder) {
  TempDir dir;
  DirBlobStore blobs(dir / "b");
  FakeMetadataStore store;
  FakeQueue queue;
  FileSink sink(blobs, NewUuid(), 1 << 20);
  // Many small pieces and one large one: the staging buffer keeps the order.
  std::string expected;
  for (int i = 0; i < 1000; ++i) {
    std::string piece = std::to_string(i) + ",";
    expected += piece;
    ASSERT_TRUE(sink.Append(piece).ok());
  }
  std::string big(100000, 'z');
  expected += big;
  ASSERT_TRUE(sink.Append(big).ok());
  auto out = Accept(Form(), sink, store, queue, AcceptOptions{false});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_TRUE(out->enqueued);
  auto rows = store.All();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].original_name, "report.pdf");
  EXPECT_EQ(rows[0].size_bytes, static_cast<int64_t>(expected.size()));
  EXPECT_EQ(rows[0].storage_path, out->storage_path);
  auto job = queue.Get(out->job_id);
  ASSERT_TRUE(job);
  auto data = nlohmann::json::parse(job->data_json);
  EXPECT_EQ(data["jobId"], out->job_id);
  EXPECT_EQ(data["storagePath"], out->storage_path);
  EXPECT_EQ(data["size"], expected.size());
  EXPECT_EQ(data["message"], "please summarise");
  EXPECT_EQ(data["mimeType"], "application/pdf");
}

TEST(Accept, InsertFailureRemovesTheBlob) {
  TempDir dir;
  DirBlobStore blobs(dir / "b");
  FakeMetadataStore store;
  FakeQueue queue;
  store.fail_insert = Errc::kUnavailable;
  FileSink sink(blobs, NewUuid(), 1 << 20);
  ASSERT_TRUE(sink.Append("data").ok());
  auto out = Accept(Form(), sink, store, queue, AcceptOptions{false});
  EXPECT_EQ(out.code(), Errc::kUnavailable);
  EXPECT_TRUE(DirBlobStore::ListFiles(dir.path()).empty());
  EXPECT_EQ(queue.add_calls.load(), 0);
}

TEST(Accept, QueueOutageLeavesThePendingRowForTheReconciler) {
  TempDir dir;
  DirBlobStore blobs(dir / "b");
  FakeMetadataStore store;
  FakeQueue queue;
  queue.fail_add = Errc::kUnavailable;
  FileSink sink(blobs, NewUuid(), 1 << 20);
  ASSERT_TRUE(sink.Append("data").ok());
  AcceptOptions opts;
  opts.fsync = false;
  opts.queue_retry_delay_ms = 1;
  auto out = Accept(Form(), sink, store, queue, opts);
  ASSERT_TRUE(out.ok());
  EXPECT_FALSE(out->enqueued);
  EXPECT_EQ(queue.add_calls.load(), opts.queue_add_attempts);
  EXPECT_EQ(store.size(), 1u);
}

TEST(Accept, RefusesAnEmptyFileOrBadFields) {
  TempDir dir;
  DirBlobStore blobs(dir / "b");
  FakeMetadataStore store;
  FakeQueue queue;
  {
    FileSink sink(blobs, NewUuid(), 1 << 20);
    EXPECT_EQ(Accept(Form(), sink, store, queue, {}).code(), Errc::kInvalidArgument);
  }
  {
    FileSink sink(blobs, NewUuid(), 1 << 20);
    ASSERT_TRUE(sink.Append("x").ok());
    AcceptedUpload up = Form();
    up.session_id = std::string(kMaxSessionIdBytes + 1, 's');
    EXPECT_EQ(Accept(up, sink, store, queue, {}).code(), Errc::kInvalidArgument);
  }
  // Invalid UTF-8 is refused, never stored raw while the job data carries a
  // replaced copy (the memory would land in another session).
  for (const std::string& bad :
       {std::string("s\xff"), std::string("s\xc3"), std::string("\xed\xa0\x80")}) {
    FileSink sink(blobs, NewUuid(), 1 << 20);
    ASSERT_TRUE(sink.Append("x").ok());
    AcceptedUpload up = Form();
    up.session_id = bad;
    auto r = Accept(up, sink, store, queue, {});
    EXPECT_EQ(r.code(), Errc::kInvalidArgument);
    EXPECT_EQ(r.status().message(), "session_id is not valid UTF-8");
  }
  // A NUL would be cut off by libpq (text parameters are C strings).
  {
    FileSink sink(blobs, NewUuid(), 1 << 20);
    ASSERT_TRUE(sink.Append("x").ok());
    AcceptedUpload up = Form();
    up.session_id = std::string("s\0t", 3);
    auto r = Accept(up, sink, store, queue, {});
    EXPECT_EQ(r.code(), Errc::kInvalidArgument);
    EXPECT_EQ(r.status().message(), "session_id contains a NUL byte");
  }
  EXPECT_EQ(store.size(), 0u);
  EXPECT_TRUE(DirBlobStore::ListFiles(dir.path()).empty());
}

}  // namespace
}  // namespace conveyor::uploads
