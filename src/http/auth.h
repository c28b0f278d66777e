// File: http/auth.h
//
// Bearer-token authentication: HS256 JWTs signed with JWT_SECRET (libjwt).
// The user id is the `sub` claim (the optional `tier` claim, "premium",
// "standard" or "free", orders the user's jobs: uploads/priority.h); `exp` (seconds since the epoch) is required
// unless the caller allows tokens without it (JWT_REQUIRE_EXP=false), and
// honoured when present; any algorithm other than HS256, `none` included, is
// refused.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

#include "core/error.h"

namespace conveyor::http {

// Verifies the value of an Authorization header ("Bearer <jwt>") and returns
// the user id. kUnauthenticated with a short reason (missing header, not a
// bearer token, malformed token, bad signature, wrong algorithm, expired,
// missing or empty `sub`, no `exp` when `require_exp`) otherwise. `now_s` is
// the current epoch time in seconds. Thread-safe.
Result<std::string> VerifyBearer(std::string_view authorization, std::string_view secret,
                                 int64_t now_s, bool require_exp = true);

// The two steps of VerifyBearer, for callers that cache verified tokens
// (internal/token_cache.h).
//
// The token of an Authorization header value "Bearer <jwt>" (a view into
// `authorization`); kUnauthenticated when the header is missing, not a bearer
// token or malformed.
Result<std::string_view> BearerToken(std::string_view authorization);

struct VerifiedToken {
  std::string user_id;  // `sub`
  std::string tier;     // `tier` when it is a string (uploads/priority.h), else empty
  // `exp` in seconds since the epoch: the token is refused from this instant
  // on. +infinity when the token has no `exp` (and that was allowed).
  double exp_s = std::numeric_limits<double>::infinity();
};
// Verifies a bare JWT (signature, algorithm, exp, nbf, sub); the errors of
// VerifyBearer. Thread-safe.
Result<VerifiedToken> VerifyToken(std::string_view token, std::string_view secret, int64_t now_s,
                                  bool require_exp = true);

// Shortest JWT_SECRET `conveyor api` accepts: an HS256 key shorter than the
// hash output (RFC 7518 §3.2) can be brute-forced from one token.
inline constexpr size_t kMinSecretBytes = 32;

// Mints an HS256 token for `user_id` expiring `ttl_s` seconds after `now_s`
// (for `conveyor token` and tests).
Result<std::string> MintToken(std::string_view secret, std::string_view user_id, int64_t now_s,
                              int64_t ttl_s);

}  // namespace conveyor::http
