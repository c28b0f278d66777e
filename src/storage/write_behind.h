// Which part of a file being written to hand to the disk early, so that the
// fsync at its end finds little left to write. Without it a large upload's
// every byte waits in the page cache until the fsync after its last one, and
// the disk's whole write comes after the network's instead of beside it.
// Pure bookkeeping: the caller starts the writeback
// (sync_file_range(2) with SYNC_FILE_RANGE_WRITE, which does not wait for it).
#ifndef CONVEYOR_STORAGE_WRITE_BEHIND_H_
#define CONVEYOR_STORAGE_WRITE_BEHIND_H_

#include <cstdint>

namespace conveyor::storage {

class WriteBehind {
 public:
  struct Range {
    int64_t offset = 0;
    int64_t length = 0;  // 0: nothing to start
  };

  // `every`: the bytes gathered before each hand-off; 0 turns it off.
  explicit WriteBehind(int64_t every) : every_(every) {}

  // `n` more bytes were written at the end of the file. Returns every byte
  // written since the last hand-off once there are at least `every` of them,
  // and an empty range until then.
  Range Wrote(int64_t n) {
    written_ += n;
    if (every_ <= 0 || written_ - started_ < every_) return {};
    Range r{started_, written_ - started_};
    started_ = written_;
    return r;
  }

 private:
  const int64_t every_;
  int64_t written_ = 0;
  int64_t started_ = 0;  // bytes handed off so far
};

}  // namespace conveyor::storage

#endif  // CONVEYOR_STORAGE_WRITE_BEHIND_H_
