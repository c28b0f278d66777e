// File: tests/support/crafted_jwt.h
//
// JWTs built by hand, for tests that need tokens no minting function would
// produce: alg "none", other HMACs, missing claims, a foreign secret.
//
//   CraftJwt(R"({"alg":"HS256"})", R"({"sub":"u"})", EVP_sha256(), secret)
#pragma once

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace conveyor::testing {

// Unpadded base64url (RFC 7515 §2).
inline std::string Base64Url(std::string_view in) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (unsigned char c : in) {
    acc = (acc << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(kAlphabet[(acc >> bits) & 63]);
    }
  }
  if (bits > 0) out.push_back(kAlphabet[(acc << (6 - bits)) & 63]);
  return out;
}

// header.payload.signature with the JSON texts as given, signed with HMAC
// over `md` (nullptr: an empty signature, as for alg "none").
inline std::string CraftJwt(std::string_view header, std::string_view payload, const EVP_MD* md,
                            std::string_view secret) {
  std::string signing_input = Base64Url(header) + "." + Base64Url(payload);
  std::string sig;
  if (md != nullptr) {
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    HMAC(md, secret.data(), static_cast<int>(secret.size()),
         reinterpret_cast<const unsigned char*>(signing_input.data()), signing_input.size(), mac,
         &mac_len);
    sig = Base64Url(std::string_view(reinterpret_cast<char*>(mac), mac_len));
  }
  return signing_input + "." + sig;
}

}  // namespace conveyor::testing
