// Design: libjwt 1.10 picks the verifier from the token's own `alg` header,
// so an HS384/HS512 token signed with our secret would verify; with an empty
// key it skips verification and accepts `alg: none` (with a key, Debian's
// 1.10.2 refuses `none`). So the header must say exactly "HS256" before
// libjwt sees the token, the algorithm libjwt decoded is checked again
// afterwards, and an empty secret is refused outright. libjwt 1.10 does not
// check `exp`; the claims are read here from the decoded JSON (exp and nbf may
// be any JSON number, as RFC 7519 allows), and a token without exp is refused
// unless the caller allows it.
#include "http/auth.h"
#include "http/internal/ascii.h"

#include <jwt.h>

#include <cstdlib>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace conveyor::http {
namespace {

using internal::EqualsIgnoreCase;

// A bearer token is a few hundred bytes; anything much larger is not ours.
constexpr size_t kMaxTokenBytes = 8 * 1024;

struct JwtFree {
  void operator()(jwt_t* jwt) const { jwt_free(jwt); }
};
using JwtPtr = std::unique_ptr<jwt_t, JwtFree>;

// libjwt returns strings allocated with malloc.
struct CFree {
  void operator()(char* p) const { std::free(p); }
};
using CStringPtr = std::unique_ptr<char, CFree>;

int Base64UrlValue(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

// Unpadded base64url (RFC 7515 §2); nullopt for anything else.
std::optional<std::string> Base64UrlDecode(std::string_view in) {
  if (in.size() % 4 == 1) return std::nullopt;
  std::string out;
  out.reserve(in.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    int v = Base64UrlValue(c);
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return out;
}

// True when the token's JOSE header says exactly alg "HS256".
bool HeaderIsHs256(std::string_view token) {
  size_t dot = token.find('.');
  if (dot == std::string_view::npos) return false;
  auto header = Base64UrlDecode(token.substr(0, dot));
  if (!header) return false;
  auto json = nlohmann::json::parse(*header, nullptr, /*allow_exceptions=*/false);
  if (!json.is_object()) return false;
  auto alg = json.find("alg");
  return alg != json.end() && alg->is_string() && alg->get_ref<const std::string&>() == "HS256";
}

}  // namespace

Result<std::string_view> BearerToken(std::string_view authorization) {
  if (authorization.empty()) return Unauthenticated("missing Authorization header");
  constexpr std::string_view kScheme = "Bearer";
  if (authorization.size() <= kScheme.size() ||
      !EqualsIgnoreCase(authorization.substr(0, kScheme.size()), kScheme) ||
      authorization[kScheme.size()] != ' ') {
    return Unauthenticated("not a bearer token");
  }
  std::string_view token = authorization.substr(kScheme.size());
  while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
  while (!token.empty() && token.back() == ' ') token.remove_suffix(1);
  if (token.empty() || token.size() > kMaxTokenBytes) return Unauthenticated("malformed token");
  if (token.find('\0') != std::string_view::npos) return Unauthenticated("malformed token");
  return token;
}

Result<VerifiedToken> VerifyToken(std::string_view token, std::string_view secret,
                                  int64_t now_s, bool require_exp) {
  // An empty key makes libjwt skip signature verification altogether.
  if (secret.empty()) return Unauthenticated("no token secret configured");
  if (!HeaderIsHs256(token)) return Unauthenticated("token algorithm is not HS256");

  std::string token_str(token);  // libjwt wants a NUL-terminated string
  jwt_t* raw = nullptr;
  int rc =
      jwt_decode(&raw, token_str.c_str(), reinterpret_cast<const unsigned char*>(secret.data()),
                 static_cast<int>(secret.size()));
  JwtPtr jwt(raw);
  if (rc != 0 || !jwt) return Unauthenticated("invalid token or signature");
  if (jwt_get_alg(jwt.get()) != JWT_ALG_HS256)
    return Unauthenticated("token algorithm is not HS256");

  CStringPtr grants(jwt_get_grants_json(jwt.get(), nullptr));
  if (!grants) return Unauthenticated("token without claims");
  auto claims = nlohmann::json::parse(grants.get(), nullptr, /*allow_exceptions=*/false);
  if (!claims.is_object()) return Unauthenticated("token claims are not an object");

  VerifiedToken out;
  if (auto exp = claims.find("exp"); exp != claims.end()) {
    if (!exp->is_number()) return Unauthenticated("token exp is not a number");
    out.exp_s = exp->get<double>();
    // RFC 7519 §4.1.4: the token must not be accepted on or after exp.
    if (static_cast<double>(now_s) >= out.exp_s) return Unauthenticated("token expired");
  } else if (require_exp) {
    // A token without exp would be valid forever, also after it leaked.
    return Unauthenticated("token without exp");
  }
  if (auto nbf = claims.find("nbf"); nbf != claims.end()) {
    if (!nbf->is_number()) return Unauthenticated("token nbf is not a number");
    if (static_cast<double>(now_s) < nbf->get<double>()) {
      return Unauthenticated("token not yet valid");
    }
  }
  auto sub = claims.find("sub");
  if (sub == claims.end() || !sub->is_string() || sub->get_ref<const std::string&>().empty()) {
    return Unauthenticated("token without a subject");
  }
  out.user_id = sub->get<std::string>();
  if (auto tier = claims.find("tier"); tier != claims.end() && tier->is_string()) {
    out.tier = tier->get<std::string>();
  }
  return out;
}

Result<std::string> VerifyBearer(std::string_view authorization, std::string_view secret,
                                 int64_t now_s, bool require_exp) {
  // An empty key makes libjwt skip signature verification altogether.
  if (secret.empty()) return Unauthenticated("no token secret configured");
  auto token = BearerToken(authorization);
  if (!token) return token.status();
  auto verified = VerifyToken(*token, secret, now_s, require_exp);
  if (!verified) return verified.status();
  return std::move(verified->user_id);
}

Result<std::string> MintToken(std::string_view secret, std::string_view user_id, int64_t now_s,
                              int64_t ttl_s) {
  if (secret.empty()) return InvalidArgument("empty token secret");
  if (user_id.empty() || user_id.find('\0') != std::string_view::npos) {
    return InvalidArgument("invalid user id");
  }
  if (ttl_s <= 0) return InvalidArgument("token lifetime must be positive");
  jwt_t* raw = nullptr;
  if (jwt_new(&raw) != 0 || raw == nullptr) return Internal("jwt_new failed");
  JwtPtr jwt(raw);
  std::string user(user_id);
  if (jwt_set_alg(jwt.get(), JWT_ALG_HS256, reinterpret_cast<const unsigned char*>(secret.data()),
                  static_cast<int>(secret.size())) != 0 ||
      jwt_add_grant(jwt.get(), "sub", user.c_str()) != 0 ||
      jwt_add_grant_int(jwt.get(), "iat", static_cast<long>(now_s)) != 0 ||
      jwt_add_grant_int(jwt.get(), "exp", static_cast<long>(now_s + ttl_s)) != 0) {
    return Internal("building the token failed");
  }
  CStringPtr encoded(jwt_encode_str(jwt.get()));
  if (!encoded) return Internal("encoding the token failed");
  return std::string(encoded.get());
}

}  // namespace conveyor::http
