// TusStore over a real directory (a temp dir), with a FakeClock for expiry:
// offsets, the record-after-data order across a reopen, pending bytes of a
// cut-off PATCH, the per-upload lock, owners, termination and the sweep.
#include "uploads/tus_store.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "core/ids.h"
#include "fakes.h"
#include "test_support.h"

namespace conveyor::uploads {
namespace {

namespace fs = std::filesystem;
using conveyor::testing::FakeClock;
using conveyor::testing::TempDir;

constexpr int64_t kExpirationMs = 60000;

class TusStoreTest : public ::testing::Test {
 protected:
  TusStoreTest() { clock_.Advance(1'700'000'000'000); }

  std::unique_ptr<TusStore> Open() {
    auto s = TusStore::Open(TusStoreOptions{dir_.path() + "/tus", kExpirationMs, true}, clock_);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? std::move(*s) : nullptr;
  }

  TusUpload Create(TusStore& s, int64_t length, const std::string& user = "alice") {
    auto u = s.Create(NewUuid(), user, length, TusMetadata{"s1", "a.txt", "text/plain", "hi"});
    EXPECT_TRUE(u.ok()) << u.status().ToString();
    return *u;
  }

  static void Write(TusStore& s, const TusUpload& u, int64_t offset, const std::string& bytes,
                    bool commit = true) {
    auto p = s.BeginPatch(u.id, u.user_id, offset);
    ASSERT_TRUE(p.ok()) << p.status().ToString();
    ASSERT_TRUE((*p)->Write(bytes).ok());
    if (commit) {
      ASSERT_TRUE((*p)->Commit().ok());
    }
  }

  int64_t FileSize(const std::string& path) { return static_cast<int64_t>(fs::file_size(path)); }

  TempDir dir_;
  FakeClock clock_;
};

TEST_F(TusStoreTest, CreateWritesPrivateFilesSeenOnlyByTheOwner) {
  auto s = Open();
  TusUpload u = Create(*s, 100);
  EXPECT_EQ(u.offset, 0);
  EXPECT_EQ(u.expires_ms, clock_.EpochMs() + kExpirationMs);
  struct stat st {};
  ASSERT_EQ(::stat((dir_.path() + "/tus").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  ASSERT_EQ(::stat(s->DataPath(u.id).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat(s->InfoPath(u.id).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_TRUE(s->Find(u.id, "alice").has_value());
  EXPECT_FALSE(s->Find(u.id, "mallory").has_value());
  EXPECT_EQ(s->BeginPatch(u.id, "mallory", 0).code(), Errc::kNotFound);
  EXPECT_EQ(s->Remove(u.id, "mallory").code(), Errc::kNotFound);
  EXPECT_EQ(s->Create("not-a-uuid", "alice", 10, {}).code(), Errc::kInvalidArgument);
  EXPECT_EQ(s->Create(NewUuid(), "alice", 0, {}).code(), Errc::kInvalidArgument);
}

TEST_F(TusStoreTest, CommittedOffsetAndMetadataSurviveAReopen) {
  std::string id;
  {
    auto s = Open();
    TusUpload u = Create(*s, 10);
    id = u.id;
    Write(*s, u, 0, "hello");
    EXPECT_EQ(s->Find(id, "alice")->offset, 5);
  }
  auto s = Open();
  auto u = s->Find(id, "alice");
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->offset, 5);
  EXPECT_EQ(u->length, 10);
  EXPECT_EQ(u->metadata.session_id, "s1");
  EXPECT_EQ(u->metadata.message, "hi");
  Write(*s, *u, 5, "world");
  std::ifstream in(s->DataPath(id));
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(all, "helloworld");
  EXPECT_TRUE(s->Find(id, "alice")->complete());
}

TEST_F(TusStoreTest, ReopenCutsBytesNoRecordCounts) {
  std::string id, data;
  {
    auto s = Open();
    TusUpload u = Create(*s, 100);
    id = u.id;
    data = s->DataPath(id);
    Write(*s, u, 0, "0123456789");
  }
  // Bytes written after the record (a crash before the next record).
  std::ofstream(data, std::ios::app) << "garbage";
  ASSERT_EQ(FileSize(data), 17);
  auto s = Open();
  EXPECT_EQ(s->Find(id, "alice")->offset, 10);
  EXPECT_EQ(FileSize(data), 10);
}

TEST_F(TusStoreTest, ReopenNeverClaimsBytesTheFileDoesNotHold) {
  std::string id, data;
  {
    auto s = Open();
    TusUpload u = Create(*s, 100);
    id = u.id;
    data = s->DataPath(id);
    Write(*s, u, 0, "0123456789");
  }
  fs::resize_file(data, 4);  // the file lost its tail
  auto s = Open();
  EXPECT_EQ(s->Find(id, "alice")->offset, 4);
}

TEST_F(TusStoreTest, CutOffPatchBytesArePendingUntilSettled) {
  std::string id;
  {
    auto s = Open();
    TusUpload u = Create(*s, 100);
    id = u.id;
    Write(*s, u, 0, "abcdef", /*commit=*/false);  // the PATCH is destroyed uncommitted
    EXPECT_EQ(s->Find(id, "alice")->offset, 6);    // counted at once
  }
  {
    // Not settled before the restart: the record still says 0.
    auto s = Open();
    EXPECT_EQ(s->Find(id, "alice")->offset, 0);
    auto u = *s->Find(id, "alice");
    Write(*s, u, 0, "abcdef", /*commit=*/false);
    auto settled = s->Settle(id, "alice");
    ASSERT_TRUE(settled.ok());
    EXPECT_EQ(settled->offset, 6);
  }
  auto s = Open();
  EXPECT_EQ(s->Find(id, "alice")->offset, 6);
}

TEST_F(TusStoreTest, DiscardedBytesDoNotCount) {
  auto s = Open();
  TusUpload u = Create(*s, 100);
  Write(*s, u, 0, "keep");
  {
    auto p = s->BeginPatch(u.id, "alice", 4);
    ASSERT_TRUE(p.ok());
    ASSERT_TRUE((*p)->Write("drop me").ok());
    (*p)->Discard();
  }
  EXPECT_EQ(s->Find(u.id, "alice")->offset, 4);
  Write(*s, u, 4, "more");  // the dropped bytes are cut before the next ones
  EXPECT_EQ(FileSize(s->DataPath(u.id)), 8);
}

TEST_F(TusStoreTest, OnePatchAtATimeAtTheUploadsOffset) {
  auto s = Open();
  TusUpload u = Create(*s, 10);
  EXPECT_EQ(s->BeginPatch(u.id, "alice", 3).code(), Errc::kFailedPrecondition);
  auto first = s->BeginPatch(u.id, "alice", 0);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(s->BeginPatch(u.id, "alice", 0).code(), Errc::kAborted);
  EXPECT_EQ(s->Remove(u.id, "alice").code(), Errc::kAborted);
  EXPECT_EQ((*first)->Write(std::string(11, 'x')).code(), Errc::kInvalidArgument);  // past the length
  first->reset();
  EXPECT_TRUE(s->BeginPatch(u.id, "alice", 0).ok());
}

TEST_F(TusStoreTest, CompletionRecordsTheJobAndDropsTheBytes) {
  std::string id;
  {
    auto s = Open();
    TusUpload u = Create(*s, 3);
    id = u.id;
    EXPECT_EQ(s->SetJobId(id, id).code(), Errc::kFailedPrecondition);  // not complete
    Write(*s, u, 0, "abc");
    auto done = s->SetJobId(id, id);
    ASSERT_TRUE(done.ok());
    EXPECT_FALSE(fs::exists(s->DataPath(id)));
  }
  auto s = Open();
  EXPECT_EQ(s->Find(id, "alice")->job_id, id);
}

TEST_F(TusStoreTest, ExpiredUploadsAreGoneAndSwept) {
  auto s = Open();
  TusUpload old = Create(*s, 10);
  clock_.Advance(kExpirationMs / 2);
  TusUpload young = Create(*s, 10);
  Write(*s, young, 0, "x");  // a PATCH pushes the expiry on
  clock_.Advance(kExpirationMs / 2);
  EXPECT_FALSE(s->Find(old.id, "alice").has_value());
  EXPECT_EQ(s->BeginPatch(old.id, "alice", 0).code(), Errc::kNotFound);
  EXPECT_EQ(s->SweepExpired(), 1);
  EXPECT_FALSE(fs::exists(s->DataPath(old.id)));
  EXPECT_FALSE(fs::exists(s->InfoPath(old.id)));
  EXPECT_TRUE(s->Find(young.id, "alice").has_value());
  clock_.Advance(kExpirationMs);
  EXPECT_EQ(s->SweepExpired(), 1);
  EXPECT_EQ(s->size(), 0u);
}

TEST_F(TusStoreTest, RemoveDeletesBothFiles) {
  auto s = Open();
  TusUpload u = Create(*s, 10);
  Write(*s, u, 0, "abc");
  ASSERT_TRUE(s->Remove(u.id, "alice").ok());
  EXPECT_FALSE(fs::exists(s->DataPath(u.id)));
  EXPECT_FALSE(fs::exists(s->InfoPath(u.id)));
  EXPECT_FALSE(s->Find(u.id, "alice").has_value());
  EXPECT_EQ(s->Remove(u.id, "alice").code(), Errc::kNotFound);
}

}  // namespace
}  // namespace conveyor::uploads
