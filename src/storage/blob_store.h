// File: storage/blob_store.h
//
// BlobStore: where uploaded files wait for the worker. Names are chosen by the
// server (a UUID), never derived from client input, so nothing can be written
// outside the store's directory.
//
// Writing is two-phase: Create() opens a temp file ("<dir>/tmp/<uuid>.part"),
// the caller appends to it, then Commit() optionally fsyncs it, renames it to
// "<dir>/<uuid>" and fsyncs the directory. Abort() (or destroying an uncommitted
// writer) deletes the temp file.
//
// Threads: a BlobWriter is used by one thread at a time; the BlobStore itself
// is thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/error.h"

namespace conveyor::storage {

class BlobWriter {
 public:
  virtual ~BlobWriter() = default;
  // Appends bytes. kUnavailable on an I/O error (disk full...).
  virtual Result<void> Append(std::string_view bytes) = 0;
  // Bytes appended so far.
  virtual int64_t size() const = 0;
  // Makes the file durable (fsync when `fsync`) and visible under its final
  // name; returns that absolute path.
  virtual Result<std::string> Commit(bool fsync) = 0;
  // Deletes the temp file. Idempotent; also done by the destructor if neither
  // Commit nor Abort ran.
  virtual void Abort() = 0;
};

class BlobStore {
 public:
  virtual ~BlobStore() = default;
  // A writer for a new blob named `id` (must be a UUID: kInvalidArgument else).
  virtual Result<std::unique_ptr<BlobWriter>> Create(const std::string& id) = 0;
  // Absolute path of a committed blob named `id` (whether or not it exists).
  virtual std::string PathFor(const std::string& id) const = 0;
  // True when `path` is a committed blob path inside this store.
  virtual bool Owns(const std::string& path) const = 0;
  // Deletes a committed blob; missing is not an error.
  virtual Result<void> Remove(const std::string& path) = 0;
  // Deletes temp files left by a crash (older than `older_than_ms` epoch ms).
  virtual int RemoveStaleTemps(int64_t older_than_ms) = 0;
};

// A store in the local directory `dir` (created if missing, with tmp/).
Result<std::unique_ptr<BlobStore>> OpenLocalBlobStore(const std::string& dir);

}  // namespace conveyor::storage
