// File: http/internal/token_cache.h
//
// TokenCache: bearer tokens that already passed VerifyToken, so a client
// sending the same token on every request pays for the full verification
// (base64 and JSON decoding, HMAC-SHA256, libjwt's allocations: most of a
// status request's CPU) once per token rather than once per request.
//
// Correctness rests on two facts: a token's verdict depends only on the token
// bytes, the secret and the clock; and the only clock-dependent claims are
// `nbf` (once passed, stays passed) and `exp`. So an entry, keyed by the whole
// token string (a map lookup, no comparison secret to leak), holds the user id
// and the token's exp, and is used only while now < exp. The cache is bound
// to one secret. Only successes are cached: a bad token is verified (and
// refused) every time.
//
// Bounded: at most `capacity` entries. When full, expired entries are swept;
// if none were, an arbitrary entry is evicted. Thread-safe (one mutex; the
// critical section is a hash lookup).
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "core/error.h"

namespace conveyor::http {

class TokenCache {
 public:
  // Entries kept by the server: far more than the distinct tokens of the
  // clients of one API process, and each is a few hundred bytes.
  static constexpr size_t kDefaultCapacity = 4096;

  TokenCache(std::string secret, size_t capacity = kDefaultCapacity, bool require_exp = true);

  // Same contract as VerifyBearer(authorization, secret, now_s, require_exp);
  // sets `*tier` (when not null) to the token's `tier` claim ("" if none).
  Result<std::string> Verify(std::string_view authorization, int64_t now_s,
                             std::string* tier = nullptr);

  size_t size() const;

 private:
  struct Entry {
    std::string user_id;
    double exp_s;
    std::string tier;  // refused from this epoch second on (+inf: no exp)
  };
  // Hashes std::string and std::string_view alike, so lookups need no copy.
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };

  // Requires mu_. Makes room for one more entry.
  void EvictLocked(int64_t now_s);

  const std::string secret_;
  const size_t capacity_;
  const bool require_exp_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, Entry, Hash, std::equal_to<>> entries_;
};

}  // namespace conveyor::http
