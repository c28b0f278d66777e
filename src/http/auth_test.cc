#include "http/auth.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <string>
#include <vector>

#include "crafted_jwt.h"

namespace conveyor::http {
namespace {

constexpr std::string_view kSecret = "test-secret-0123456789";
constexpr int64_t kNow = 1'700'000'000;

// A token built by hand: header and payload JSON as given, signed with HMAC
// over `md` (nullptr: empty signature, as for alg "none").
std::string Craft(std::string_view header, std::string_view payload, const EVP_MD* md,
                  std::string_view secret = kSecret) {
  return testing::CraftJwt(header, payload, md, secret);
}

std::string Payload(std::string_view sub = "user-1", int64_t exp = kNow + 3600) {
  return R"({"sub":")" + std::string(sub) + R"(","iat":)" + std::to_string(kNow) + R"(,"exp":)" +
         std::to_string(exp) + "}";
}

Errc Verify(const std::string& token, std::string_view secret = kSecret) {
  return VerifyBearer("Bearer " + token, secret, kNow).code();
}

TEST(Auth, TierClaimIsReadWhenItIsAString) {
  const std::string base = R"({"sub":"u","exp":)" + std::to_string(kNow + 60);
  auto premium = VerifyToken(Craft(R"({"alg":"HS256"})", base + R"(,"tier":"premium"})",
                                   EVP_sha256()),
                             kSecret, kNow);
  ASSERT_TRUE(premium.ok()) << premium.status().ToString();
  EXPECT_EQ(premium->tier, "premium");
  auto none = VerifyToken(Craft(R"({"alg":"HS256"})", base + "}", EVP_sha256()), kSecret, kNow);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->tier, "");
  auto number = VerifyToken(Craft(R"({"alg":"HS256"})", base + R"(,"tier":3})", EVP_sha256()),
                            kSecret, kNow);
  ASSERT_TRUE(number.ok());
  EXPECT_EQ(number->tier, "");
}

TEST(Auth, MintedTokenVerifiesToItsSubject) {
  auto token = MintToken(kSecret, "user-42", kNow, 3600);
  ASSERT_TRUE(token.ok()) << token.status().ToString();
  auto user = VerifyBearer("Bearer " + *token, kSecret, kNow);
  ASSERT_TRUE(user.ok()) << user.status().ToString();
  EXPECT_EQ(*user, "user-42");
  // The scheme is case-insensitive.
  user = VerifyBearer("bEaReR " + *token, kSecret, kNow + 3599);
  ASSERT_TRUE(user.ok());
  EXPECT_EQ(*user, "user-42");
}

TEST(Auth, HandCraftedHs256TokenVerifies) {
  auto user = VerifyBearer(
      "Bearer " + Craft(R"({"alg":"HS256","typ":"JWT"})", Payload(), EVP_sha256()), kSecret, kNow);
  ASSERT_TRUE(user.ok()) << user.status().ToString();
  EXPECT_EQ(*user, "user-1");
}

TEST(Auth, TokenWithoutExpIsRefusedUnlessAllowed_Hardening) {
  const std::string no_exp =
      "Bearer " + Craft(R"({"alg":"HS256"})", R"({"sub":"u"})", EVP_sha256());
  auto user = VerifyBearer(no_exp, kSecret, kNow);
  EXPECT_EQ(user.code(), Errc::kUnauthenticated);
  EXPECT_EQ(user.status().message(), "token without exp");
  // JWT_REQUIRE_EXP=false: accepted, valid until the secret changes.
  user = VerifyBearer(no_exp, kSecret, kNow, /*require_exp=*/false);
  ASSERT_TRUE(user.ok()) << user.status().ToString();
  EXPECT_EQ(*user, "u");
}

TEST(Auth, RejectsWrongSecret) {
  auto token = MintToken("another-secret", "user-1", kNow, 3600);
  ASSERT_TRUE(token.ok());
  EXPECT_EQ(Verify(*token), Errc::kUnauthenticated);
}

TEST(Auth, RejectsAlgNone) {
  std::string payload = Payload();
  EXPECT_EQ(Verify(Craft(R"({"alg":"none","typ":"JWT"})", payload, nullptr)),
            Errc::kUnauthenticated);
  EXPECT_EQ(Verify(Craft(R"({"alg":"None"})", payload, nullptr)), Errc::kUnauthenticated);
  // A none token carrying a (valid HS256) signature is refused as well.
  EXPECT_EQ(Verify(Craft(R"({"alg":"none"})", payload, EVP_sha256())), Errc::kUnauthenticated);
}

TEST(Auth, RejectsOtherAlgorithmsSignedWithTheSecret) {
  std::string payload = Payload();
  EXPECT_EQ(Verify(Craft(R"({"alg":"HS384","typ":"JWT"})", payload, EVP_sha384())),
            Errc::kUnauthenticated);
  EXPECT_EQ(Verify(Craft(R"({"alg":"HS512","typ":"JWT"})", payload, EVP_sha512())),
            Errc::kUnauthenticated);
  // Algorithm confusion: RS256 in the header, HMAC with the secret as signature.
  EXPECT_EQ(Verify(Craft(R"({"alg":"RS256","typ":"JWT"})", payload, EVP_sha256())),
            Errc::kUnauthenticated);
  EXPECT_EQ(Verify(Craft(R"({"alg":"hs256"})", payload, EVP_sha256())), Errc::kUnauthenticated);
  EXPECT_EQ(Verify(Craft(R"({"typ":"JWT"})", payload, EVP_sha256())), Errc::kUnauthenticated);
  EXPECT_EQ(Verify(Craft(R"({"alg":256})", payload, EVP_sha256())), Errc::kUnauthenticated);
}

TEST(Auth, RejectsExpiredToken) {
  auto token = MintToken(kSecret, "user-1", kNow - 7200, 3600);
  ASSERT_TRUE(token.ok());
  auto r = VerifyBearer("Bearer " + *token, kSecret, kNow);
  EXPECT_EQ(r.code(), Errc::kUnauthenticated);
  EXPECT_EQ(r.status().message(), "token expired");
  // Expiry is exclusive: at exp the token is no longer valid.
  token = MintToken(kSecret, "user-1", kNow - 3600, 3600);
  ASSERT_TRUE(token.ok());
  EXPECT_EQ(VerifyBearer("Bearer " + *token, kSecret, kNow).status().message(), "token expired");
  EXPECT_EQ(Verify(Craft(R"({"alg":"HS256"})", R"({"sub":"u","exp":"never"})", EVP_sha256())),
            Errc::kUnauthenticated);
}

TEST(Auth, RejectsTokenWithoutSubject) {
  EXPECT_EQ(Verify(Craft(R"({"alg":"HS256"})", R"({"exp":1800000000})", EVP_sha256())),
            Errc::kUnauthenticated);
  EXPECT_EQ(Verify(Craft(R"({"alg":"HS256"})", R"({"sub":""})", EVP_sha256())),
            Errc::kUnauthenticated);
  EXPECT_EQ(Verify(Craft(R"({"alg":"HS256"})", R"({"sub":42})", EVP_sha256())),
            Errc::kUnauthenticated);
}

TEST(Auth, RejectsGarbage) {
  for (std::string t : std::vector<std::string>{
           "", "x", "a.b", "a.b.c", "...", "eyJhbGciOiJIUzI1NiJ9..", "\xff\xfe.\x01.x",
           "eyJhbGciOiJIUzI1NiJ9.e30.", "eyJhbGciOiJIUzI1NiJ9.!!!.abc", std::string(20000, 'a')}) {
    SCOPED_TRACE(t.substr(0, 40));
    EXPECT_EQ(Verify(t), Errc::kUnauthenticated);
  }
  // Payload that is not JSON, correctly signed.
  EXPECT_EQ(Verify(Craft(R"({"alg":"HS256"})", "not json", EVP_sha256())), Errc::kUnauthenticated);
  EXPECT_EQ(Verify(Craft("not json", Payload(), EVP_sha256())), Errc::kUnauthenticated);
}

TEST(Auth, RejectsMissingBearerScheme) {
  auto token = MintToken(kSecret, "user-1", kNow, 3600);
  ASSERT_TRUE(token.ok());
  EXPECT_EQ(VerifyBearer("", kSecret, kNow).code(), Errc::kUnauthenticated);
  EXPECT_EQ(VerifyBearer(*token, kSecret, kNow).code(), Errc::kUnauthenticated);
  EXPECT_EQ(VerifyBearer("Basic " + *token, kSecret, kNow).code(), Errc::kUnauthenticated);
  EXPECT_EQ(VerifyBearer("Bearer", kSecret, kNow).code(), Errc::kUnauthenticated);
  EXPECT_EQ(VerifyBearer("Bearer ", kSecret, kNow).code(), Errc::kUnauthenticated);
  EXPECT_EQ(VerifyBearer("Bearer" + *token, kSecret, kNow).code(), Errc::kUnauthenticated);
}

TEST(Auth, RejectsTamperedPayload) {
  auto token = MintToken(kSecret, "user-1", kNow, 3600);
  ASSERT_TRUE(token.ok());
  size_t first = token->find('.');
  size_t second = token->find('.', first + 1);
  std::string forged =
      token->substr(0, first + 1) + testing::Base64Url(Payload("admin")) + token->substr(second);
  EXPECT_EQ(Verify(forged), Errc::kUnauthenticated);
  // Flipping one signature character fails too.
  std::string flipped = *token;
  flipped.back() = flipped.back() == 'A' ? 'B' : 'A';
  EXPECT_EQ(Verify(flipped), Errc::kUnauthenticated);
}

TEST(Auth, EmptySecretVerifiesNothing) {
  // libjwt skips the signature check without a key; we must not.
  EXPECT_EQ(Verify(Craft(R"({"alg":"HS256"})", Payload(), EVP_sha256(), ""), ""),
            Errc::kUnauthenticated);
  EXPECT_FALSE(MintToken("", "user-1", kNow, 3600).ok());
}

TEST(Auth, MintRejectsBadArguments) {
  EXPECT_EQ(MintToken(kSecret, "", kNow, 3600).code(), Errc::kInvalidArgument);
  EXPECT_EQ(MintToken(kSecret, "u", kNow, 0).code(), Errc::kInvalidArgument);
}

}  // namespace
}  // namespace conveyor::http
