// libFuzzer target for bearer-token authentication (http/auth.h) and the
// verified-token cache (http/internal/token_cache.h).
//
// The first input byte picks what the rest is:
//   0: an Authorization header value, verified as it is;
//   1: "<JOSE header JSON>\n<claims JSON>" (or only claims JSON, with an
//      HS256 header), base64url-encoded and signed here with the test secret,
//      so the fuzzer explores the claims of tokens whose signature is valid;
//   2: "<segment>.<segment>", given the valid HS256 signature of those exact
//      bytes (odd base64 in a correctly signed token);
//   3: a user id for MintToken, whose token must verify back to that user.
// The clock is fixed (kNow); a token that verifies is checked again at
// kNow + 1 year, directly and through a TokenCache warmed at kNow.
//
// Invariants: a token that verifies has a JOSE header saying alg "HS256",
// exactly three segments, a signature that is the HMAC-SHA256 of the first
// two under the secret, a non-empty user id and an exp in the future; it does
// not verify under another secret; VerifyBearer agrees with BearerToken +
// VerifyToken and with the cache, at both instants.
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "http/auth.h"
#include "http/internal/token_cache.h"
#include "../support/crafted_jwt.h"

namespace {

using conveyor::Errc;
using conveyor::Result;
using namespace conveyor::http;
using conveyor::testing::Base64Url;

constexpr std::string_view kSecret = "fuzz-secret-0123456789";
constexpr std::string_view kOtherSecret = "fuzz-secret-0123456788";
constexpr int64_t kNow = 1'700'000'000;
constexpr int64_t kLater = kNow + 365LL * 24 * 3600;

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "auth_fuzz: invariant broken: %s\n", what);
    std::abort();
  }
}

std::string Base64UrlDecode(std::string_view in) {  // lenient: skips non-alphabet bytes
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    int v = c >= 'A' && c <= 'Z'   ? c - 'A'
            : c >= 'a' && c <= 'z' ? c - 'a' + 26
            : c >= '0' && c <= '9' ? c - '0' + 52
            : c == '-'             ? 62
            : c == '_'             ? 63
                                   : -1;
    if (v < 0) continue;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return out;
}

std::string Hs256(std::string_view signing_input, std::string_view secret) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(signing_input.data()), signing_input.size(), mac,
       &mac_len);
  return Base64Url(std::string_view(reinterpret_cast<char*>(mac), mac_len));
}

// What must hold of a token that verified at `now`.
void CheckVerified(std::string_view token, const VerifiedToken& v, int64_t now) {
  Check(!v.user_id.empty(), "verified token without a user id");
  Check(!std::isnan(v.exp_s) && v.exp_s > static_cast<double>(now), "verified token is expired");
  size_t d1 = token.find('.');
  Check(d1 != std::string_view::npos, "verified token without a dot");
  size_t d2 = token.find('.', d1 + 1);
  Check(d2 != std::string_view::npos, "verified token with one dot");
  Check(token.find('.', d2 + 1) == std::string_view::npos, "verified token with three dots");
  auto header = nlohmann::json::parse(Base64UrlDecode(token.substr(0, d1)), nullptr, false);
  Check(header.is_object() && header.contains("alg") && header["alg"] == "HS256",
        "verified token whose header is not alg HS256");
  std::string_view sig = token.substr(d2 + 1);
  while (!sig.empty() && sig.back() == '=') sig.remove_suffix(1);
  Check(sig == Hs256(token.substr(0, d2), kSecret),
        "verified token whose signature is not HMAC-SHA256 of its first two segments");
  Check(!VerifyToken(token, kOtherSecret, now).ok(), "token verifies under another secret");
}

void CheckHeader(std::string_view authorization) {
  // The cache, fresh for each input, answers as VerifyBearer does.
  TokenCache cache{std::string(kSecret), 4};
  Result<std::string> cached = cache.Verify(authorization, kNow);
  Result<std::string_view> token = BearerToken(authorization);
  if (!token.ok()) {
    Check(!cached.ok() && cached.code() == Errc::kUnauthenticated,
          "header without a bearer token verified");
    return;
  }
  Check(!token->empty() && token->size() <= 8 * 1024, "bearer token of a bad size");
  Check(token->front() != ' ' && token->back() != ' ', "bearer token not trimmed");
  Check(token->data() >= authorization.data() &&
            token->data() + token->size() <= authorization.data() + authorization.size(),
        "bearer token is not a view into the header");
  Result<VerifiedToken> verified = VerifyToken(*token, kSecret, kNow);
  Check(verified.ok() == cached.ok(), "TokenCache disagrees with VerifyToken");
  if (!verified.ok()) {
    Check(verified.code() == Errc::kUnauthenticated, "refusal is not kUnauthenticated");
    return;
  }
  // Verified: the expensive checks only here, where they matter.
  Check(verified->user_id == *cached, "TokenCache and VerifyToken name different users");
  Result<std::string> user = VerifyBearer(authorization, kSecret, kNow);
  Check(user.ok() && *user == verified->user_id, "VerifyBearer disagrees with VerifyToken");
  CheckVerified(*token, *verified, kNow);
  Result<std::string> again = cache.Verify(authorization, kNow);  // from the cache now
  Check(again.ok() && *again == verified->user_id, "cached token changed its verdict");
  // A year later: the cached verdict must follow the clock as the direct one does.
  Result<std::string> later = VerifyBearer(authorization, kSecret, kLater);
  Result<std::string> later_cached = cache.Verify(authorization, kLater);
  Check(later.ok() == later_cached.ok(), "TokenCache disagrees with VerifyBearer later");
  Check(later.ok() == (verified->exp_s > static_cast<double>(kLater)),
        "verdict a year later disagrees with exp");
  if (later.ok()) Check(*later == *later_cached, "TokenCache names another user later");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t mode = data[0] % 4;
  std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (mode) {
    case 0:
      CheckHeader(rest);
      break;
    case 1: {
      std::string_view header = R"({"alg":"HS256","typ":"JWT"})";
      std::string_view claims = rest;
      if (size_t nl = rest.find('\n'); nl != std::string_view::npos) {
        header = rest.substr(0, nl);
        claims = rest.substr(nl + 1);
      }
      std::string signing_input = Base64Url(header) + "." + Base64Url(claims);
      CheckHeader("Bearer " + signing_input + "." + Hs256(signing_input, kSecret));
      break;
    }
    case 2:
      CheckHeader("Bearer " + std::string(rest) + "." + Hs256(rest, kSecret));
      break;
    case 3: {
      Result<std::string> token = MintToken(kSecret, rest, kNow, 3600);
      if (!token.ok()) {
        Check(rest.empty() || rest.find('\0') != std::string_view::npos ||
                  token.code() == Errc::kInternal,
              "MintToken refused a valid user id with the wrong code");
        break;
      }
      Result<VerifiedToken> v = VerifyToken(*token, kSecret, kNow);
      Check(v.ok(), "minted token does not verify");
      Check(v->user_id == rest, "minted token verifies to another user");
      Check(v->exp_s == static_cast<double>(kNow + 3600), "minted token has another exp");
      CheckVerified(*token, *v, kNow);
      CheckHeader("Bearer " + *token);
      break;
    }
  }
  return 0;
}
