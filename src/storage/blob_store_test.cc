#include "storage/blob_store.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>
#include <utime.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/ids.h"
#include "storage/write_behind.h"
#include "test_support.h"

namespace conveyor::storage {
namespace {

namespace fs = std::filesystem;
using conveyor::testing::TempDir;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::unique_ptr<BlobStore> Open(const TempDir& dir) {
  auto s = OpenLocalBlobStore(dir / "blobs");
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return std::move(*s);
}

TEST(LocalBlobStore, CommitMovesTempToFinalName) {
  TempDir dir;
  auto store = Open(dir);
  std::string id = NewUuid();
  auto w = store->Create(id);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  std::string temp = fs::canonical(dir / "blobs").string() + "/tmp/" + id + ".part";
  EXPECT_TRUE(fs::exists(temp));
  struct stat st {};
  ASSERT_EQ(::stat(temp.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  // Small appends are buffered, a big one goes straight through.
  std::string expected;
  for (int i = 0; i < 1000; ++i) {
    std::string part = "line " + std::to_string(i) + "\n";
    expected += part;
    ASSERT_TRUE((*w)->Append(part).ok());
  }
  std::string big(3 << 20, 'z');
  expected += big;
  ASSERT_TRUE((*w)->Append(big).ok());
  ASSERT_TRUE((*w)->Append("tail").ok());
  expected += "tail";
  EXPECT_EQ((*w)->size(), static_cast<int64_t>(expected.size()));

  auto path = (*w)->Commit(true);
  ASSERT_TRUE(path.ok()) << path.status().ToString();
  EXPECT_EQ(*path, store->Location(id));
  EXPECT_FALSE(fs::exists(temp));
  EXPECT_EQ(ReadAll(*path), expected);
  EXPECT_EQ(fs::path(*path).parent_path(), fs::canonical(dir / "blobs"));
  // Commit twice or append after commit: the writer is closed.
  EXPECT_EQ((*w)->Append("x").code(), Errc::kFailedPrecondition);
  EXPECT_EQ((*w)->Commit(false).code(), Errc::kFailedPrecondition);
  // Destroying a committed writer keeps the blob.
  w->reset();
  EXPECT_TRUE(fs::exists(*path));
  ASSERT_TRUE(store->Remove(id).ok());
  EXPECT_FALSE(fs::exists(*path));
  EXPECT_TRUE(store->Remove(id).ok());  // missing is fine
}

TEST(LocalBlobStore, CommitNameLaterRenamesAndSyncNamesSucceeds) {
  TempDir dir;
  auto store = Open(dir);
  std::vector<std::string> paths;
  for (int i = 0; i < 3; ++i) {
    auto w = store->Create(NewUuid());
    ASSERT_TRUE(w.ok()) << w.status().ToString();
    ASSERT_TRUE((*w)->Append("blob " + std::to_string(i)).ok());
    auto path = (*w)->CommitNameLater(/*fsync=*/true);
    ASSERT_TRUE(path.ok()) << path.status().ToString();
    EXPECT_TRUE(fs::exists(*path));
    EXPECT_EQ((*w)->CommitNameLater(true).code(), Errc::kFailedPrecondition);
    paths.push_back(*path);
  }
  EXPECT_TRUE(store->SyncNames().ok());
  for (const auto& p : paths) {
    EXPECT_EQ(fs::path(p).parent_path(), fs::canonical(dir / "blobs")) << p;
  }
  EXPECT_TRUE(fs::is_empty(fs::path(paths[0]).parent_path() / "tmp"));
}

TEST(WriteBehind, HandsOffEveryByteOnceInOrderAfterEachThreshold) {
  WriteBehind off(0);
  EXPECT_EQ(off.Wrote(1 << 30).length, 0);

  WriteBehind behind(8);
  EXPECT_EQ(behind.Wrote(3).length, 0);
  EXPECT_EQ(behind.Wrote(4).length, 0);
  auto r = behind.Wrote(2);  // 9 bytes since the start
  EXPECT_EQ(r.offset, 0);
  EXPECT_EQ(r.length, 9);
  r = behind.Wrote(20);  // one large write: all of it at once
  EXPECT_EQ(r.offset, 9);
  EXPECT_EQ(r.length, 20);
  EXPECT_EQ(behind.Wrote(7).length, 0);
  r = behind.Wrote(1);
  EXPECT_EQ(r.offset, 29);
  EXPECT_EQ(r.length, 8);
}

TEST(LocalBlobStore, WriteBehindKeepsTheBytesAsWritten) {
  TempDir dir;
  // A threshold below the write buffer and the direct writes, so hand-offs
  // fall in the middle of buffered, flushed and direct writes alike.
  auto store = OpenLocalBlobStore(dir / "blobs", LocalBlobOptions{.write_behind_bytes = 4096});
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  std::string id = NewUuid();
  auto w = (*store)->Create(id);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  std::string expected;
  for (size_t size : {1u, 4095u, 70000u, 3u, (1u << 20) + 7, 5000u, 200000u}) {
    std::string piece(size, '\0');
    for (size_t i = 0; i < size; ++i) {
      piece[i] = static_cast<char>('a' + (expected.size() + i) % 26);
    }
    ASSERT_TRUE((*w)->Append(piece).ok());
    expected += piece;
  }
  auto path = (*w)->Commit(true);
  ASSERT_TRUE(path.ok()) << path.status().ToString();
  EXPECT_EQ(ReadAll(*path), expected);
}

TEST(LocalBlobStore, AbortAndDestructorDeleteTemp) {
  TempDir dir;
  auto store = Open(dir);
  std::string tmp_dir = fs::canonical(dir / "blobs").string() + "/tmp";
  {
    auto w = store->Create(NewUuid());
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE((*w)->Append("data").ok());
    (*w)->Abort();
    (*w)->Abort();  // idempotent
    EXPECT_TRUE(fs::is_empty(tmp_dir));
  }
  {
    auto w = store->Create(NewUuid());
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE((*w)->Append("data").ok());
    EXPECT_FALSE(fs::is_empty(tmp_dir));
  }
  EXPECT_TRUE(fs::is_empty(tmp_dir));
}

TEST(LocalBlobStore, NonUuidIdIsRefused) {
  TempDir dir;
  auto store = Open(dir);
  for (const char* id : {"", "../etc/passwd", "abc", "/abs", "12345678-1234-1234-1234-1234567890ab/x"}) {
    EXPECT_EQ(store->Create(id).code(), Errc::kInvalidArgument) << id;
  }
}

TEST(LocalBlobStore, SameIdTwiceIsAlreadyExists) {
  TempDir dir;
  auto store = Open(dir);
  std::string id = NewUuid();
  auto a = store->Create(id);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(store->Create(id).code(), Errc::kAlreadyExists);
  ASSERT_TRUE((*a)->Commit(false).ok());
  auto b = store->Create(id);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ((*b)->Commit(false).code(), Errc::kAlreadyExists);
}

TEST(LocalBlobStore, RemoveTakesOnlyBlobKeys) {
  TempDir dir;
  auto store = Open(dir);
  std::string root = fs::canonical(dir / "blobs").string();
  std::string outside = dir / NewUuid();
  std::ofstream(outside) << "x";
  // A key is a UUID; anything else (a path, a traversal) is refused.
  for (const std::string& bad : {outside, std::string("../") + fs::path(outside).filename().string(),
                                 std::string("notes.txt"), std::string("")}) {
    EXPECT_EQ(store->Remove(bad).code(), Errc::kInvalidArgument) << bad;
  }
  EXPECT_TRUE(fs::exists(outside));
  EXPECT_EQ(store->Location("0b7e0c34-5c2c-4d52-9e0f-3f1d2a4b5c6d"),
            root + "/0b7e0c34-5c2c-4d52-9e0f-3f1d2a4b5c6d");
}

TEST(LocalBlobStore, RemoveStaleTempsDeletesOnlyOldParts) {
  TempDir dir;
  auto store = Open(dir);
  std::string tmp_dir = fs::canonical(dir / "blobs").string() + "/tmp";
  std::string old_part = tmp_dir + "/" + NewUuid() + ".part";
  std::ofstream(old_part) << "old";
  struct utimbuf times {1000, 1000};  // 1970: long stale
  ASSERT_EQ(::utime(old_part.c_str(), &times), 0);
  auto live = store->Create(NewUuid());
  ASSERT_TRUE(live.ok());
  std::string other = tmp_dir + "/keep.txt";
  std::ofstream(other) << "not ours";
  ::utime(other.c_str(), &times);

  EXPECT_EQ(store->RemoveStaleTemps(NowMs() - 60'000), 1);
  EXPECT_FALSE(fs::exists(old_part));
  EXPECT_TRUE(fs::exists(other));
  ASSERT_TRUE((*live)->Append("still writing").ok());
  EXPECT_TRUE((*live)->Commit(false).ok());
}

std::string Commit(BlobStore& store, const std::string& id, const std::string& text) {
  auto w = store.Create(id);
  EXPECT_TRUE(w.ok());
  EXPECT_TRUE((*w)->Append(text).ok());
  auto path = (*w)->Commit(false);
  EXPECT_TRUE(path.ok());
  return path.ok() ? *path : "";
}

std::string ReadFd(int fd) {
  std::string out(256, '\0');
  ssize_t n = ::pread(fd, out.data(), out.size(), 0);
  out.resize(n > 0 ? static_cast<size_t>(n) : 0);
  return out;
}

TEST(LocalBlobStore, DirectoriesAndBlobsArePrivate) {
  TempDir dir;
  auto store = Open(dir);
  std::string root = fs::canonical(dir / "blobs").string();
  auto mode = [](const std::string& p) {
    struct stat st {};
    EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
    return st.st_mode & 07777;
  };
  EXPECT_EQ(mode(root), 0700u);
  EXPECT_EQ(mode(root + "/tmp"), 0700u);
  EXPECT_EQ(mode(Commit(*store, NewUuid(), "x")), 0600u);
}

TEST(LocalBlobStore, OpenBlobReadsOnlyARegularFileByItsId) {
  TempDir dir;
  auto store = Open(dir);
  std::string id = NewUuid();
  Commit(*store, id, "blob text");
  auto b = store->OpenBlob(id);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ(ReadFd(b->fd.get()), "blob text");
  EXPECT_EQ(b->size_bytes, 9);
  EXPECT_EQ(store->OpenBlob(NewUuid()).code(), Errc::kNotFound);
  EXPECT_EQ(store->OpenBlob("../etc/passwd").code(), Errc::kInvalidArgument);
  // A symlink named like a blob is not one.
  std::string outside = dir / "outside.txt";
  std::ofstream(outside) << "secret";
  std::string link_id = NewUuid();
  fs::create_symlink(outside, store->Location(link_id));
  EXPECT_EQ(store->OpenBlob(link_id).code(), Errc::kInvalidArgument);
  // Nor is a second name for another file.
  std::string hard_id = NewUuid();
  fs::create_hard_link(store->Location(id), store->Location(hard_id));
  EXPECT_EQ(store->OpenBlob(hard_id).code(), Errc::kInvalidArgument);
}

TEST(LocalBlobStore, AdoptTakesAProducerFileAsTheJobsBlob) {
  TempDir dir;
  auto store = Open(dir);
  std::string root = fs::canonical(dir / "blobs").string();
  fs::create_directories(root + "/node/a");
  std::ofstream(root + "/node/a/report.pdf") << "producer bytes";
  std::string id = NewUuid();
  auto b = store->Adopt(root + "/node/a/report.pdf", id);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ(ReadFd(b->fd.get()), "producer bytes");
  EXPECT_EQ(b->path, store->Location(id));
  EXPECT_FALSE(fs::exists(root + "/node/a/report.pdf"));
  EXPECT_TRUE(fs::exists(store->Location(id)));
  // Again (a retried job): the producer's name is gone, the blob is found.
  auto again = store->Adopt(root + "/node/a/report.pdf", id);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(ReadFd(again->fd.get()), "producer bytes");
  // Its own id as the name: taken as it is.
  std::string own = NewUuid();
  Commit(*store, own, "own");
  EXPECT_TRUE(store->Adopt(store->Location(own), own).ok());
  EXPECT_EQ(store->Adopt(root + "/missing.txt", NewUuid()).code(), Errc::kNotFound);
}

TEST(LocalBlobStore, AdoptRefusesWhatIsNotTheProducersOwnFile) {
  TempDir dir;
  auto store = Open(dir);
  std::string root = fs::canonical(dir / "blobs").string();
  std::string other = NewUuid();
  Commit(*store, other, "another user's upload");
  std::string outside_dir = dir / "outside";
  fs::create_directories(outside_dir);
  std::ofstream(outside_dir + "/secret") << "secret";
  fs::create_directory_symlink(outside_dir, root + "/linkdir");
  fs::create_symlink(outside_dir + "/secret", root + "/link");
  fs::create_directories(root + "/d");
  fs::create_directory_symlink(outside_dir, root + "/d/inner");
  std::ofstream(root + "/tmp/x.part") << "in progress";
  std::ofstream(root + "/plain.txt") << "x";
  fs::create_hard_link(root + "/plain.txt", root + "/second-name.txt");
  ::mkfifo((root + "/fifo").c_str(), 0600);
  const std::string refused[] = {
      store->Location(other),          // another job's upload
      root + "/linkdir/secret",       // a symlinked directory
      root + "/link",                 // a symlink
      root + "/d/inner/secret",       // a symlink deeper down
      root + "/tmp/x.part",           // an upload in progress
      root + "/../outside/secret",    // ".."
      root + "/./plain.txt",          // "."
      root + "//plain.txt",           // empty component
      outside_dir + "/secret",        // outside
      root + "/second-name.txt",      // a second link
      root + "/fifo",                 // not a regular file
      root + "/d",                    // a directory
      root,
  };
  for (const auto& path : refused) {
    auto r = store->Adopt(path, NewUuid());
    EXPECT_EQ(r.code(), Errc::kInvalidArgument) << path << ": " << r.status().ToString();
    if (!r.ok()) {
      EXPECT_EQ(r.status().message(), "Invalid storage path") << path;
    }
  }
  EXPECT_TRUE(fs::exists(store->Location(other)));
  EXPECT_TRUE(fs::exists(outside_dir + "/secret"));
  EXPECT_EQ(store->Adopt(root + "/plain.txt", "not-a-uuid").code(), Errc::kInvalidArgument);
}

}  // namespace
}  // namespace conveyor::storage
