// File: storage/s3_blob_store.h
//
// A BlobStore in S3-compatible object storage (AWS S3, MinIO, Ceph RGW,
// Cloudflare R2), so that API and worker hosts share no file system. Blob
// `id` is the object "<prefix>/<id>" in one bucket; its location (a job's
// `storagePath`) is "s3://<bucket>/<prefix>/<id>".
//
// Requests go through libcurl; libcurl signs them (CURLOPT_AWS_SIGV4,
// "aws:amz:<region>:s3", AWS Signature Version 4) with the payload declared
// UNSIGNED-PAYLOAD in x-amz-content-sha256. No signing code of our own.
//
// Writing streams into a multipart upload while the body is still arriving:
// the writer holds one part buffer (part_size bytes); the first full part
// starts the upload (CreateMultipartUpload) and every full part is sent as it
// fills (UploadPart), so memory is one part whatever the file size. Commit
// sends the rest as the last part and completes the upload; a blob smaller
// than one part is a single PutObject at commit. Abort (or destroying an
// uncommitted writer) aborts the multipart upload, on a thread of the store
// (a writer may be destroyed on a thread that must not wait for the
// network: the API's socket threads, when a client goes away mid-upload);
// the store's destructor waits for those aborts. The commit returns only
// once the object is complete, so the API's 202 follows the whole object.
//
// Reading (OpenBlob) copies the object into a private temp file in
// download_dir (O_EXCL, 0600), opens it read-only and unlinks it at once:
// the worker hands that descriptor to the sandboxed parser, and no temp file
// outlives the descriptor, whatever happens to the process.
//
// Adopt takes an object a Node.js producer wrote for a job without a row:
// "s3://<bucket>/<key>" must name this store's bucket and a key under its
// prefix (plain components, no "." or ".."); another job's blob
// ("<prefix>/<other uuid>") is refused. The object is copied to
// "<prefix>/<id>" (CopyObject) and the original deleted, so from then on it
// is that job's blob (the local store's rename), then read like any blob.
//
// Leftovers: ListBlobs lists the UUID-named objects directly under the
// prefix; RemoveStaleTemps aborts the multipart uploads under the prefix
// initiated before the given time (an API killed mid-upload); CountTemps
// counts those in progress.
//
// Transient failures (HTTP 5xx, 429, SlowDown, RequestTimeout, curl
// connection errors and timeouts) are retried up to max_attempts with
// exponential backoff; what still fails is kUnavailable. A missing object is
// kNotFound, a refused request (403...) kPermissionDenied or kInternal.
//
// Threads: every call blocks (network I/O); call them on a blocking pool.
// The store is thread-safe (a pool of curl handles keeps connections alive);
// a writer is used by one thread at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/error.h"
#include "storage/blob_store.h"

namespace conveyor::storage {

// The smallest part S3 accepts (every part but the last).
inline constexpr int64_t kS3MinPartBytes = 5LL << 20;

struct S3Settings {
  std::string bucket;
  std::string prefix;    // key prefix without leading or trailing '/'; may be empty
  std::string endpoint;  // "http(s)://host[:port]"; empty: https://s3.<region>.amazonaws.com
  std::string region = "us-east-1";
  std::string access_key_id;      // both empty: requests go unsigned
  std::string secret_access_key;
  bool force_path_style = false;  // https://host/bucket/key instead of https://bucket.host/key
  int64_t part_size = 8LL << 20;  // multipart part size, >= kS3MinPartBytes
  std::string download_dir;       // private temp files of OpenBlob (created 0700)
  int max_attempts = 5;           // tries of one request (transient failures)
  int64_t retry_base_ms = 100;    // first backoff, doubled each retry
  int64_t retry_max_ms = 5000;    // longest backoff
  int64_t connect_timeout_ms = 10000;
  int64_t stall_timeout_ms = 60000;  // a transfer without a byte for this long fails
};

// "s3://bucket[/prefix]" split into bucket and prefix (no slashes at its
// ends). kInvalidArgument for anything else.
struct S3Url {
  std::string bucket;
  std::string prefix;
};
Result<S3Url> ParseS3Url(std::string_view url);

// A store on `settings` (checked: bucket set, part size, download_dir
// created). It sends no request until used.
Result<std::unique_ptr<BlobStore>> OpenS3BlobStore(S3Settings settings);

}  // namespace conveyor::storage
