#include "queue/internal/scripts.h"

#include <openssl/evp.h>

#include <cstdio>
#include <cstdlib>
#include <map>

namespace conveyor::queue::internal {
namespace {

std::string Sha1Hex(const std::string& text) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(text.data(), text.size(), digest, &len, EVP_sha1(), nullptr);
  static const char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < len; ++i) {
    hex.push_back(kHex[digest[i] >> 4]);
    hex.push_back(kHex[digest[i] & 0xf]);
  }
  return hex;
}

const std::map<std::string, Script, std::less<>>& Registry() {
  static const auto* registry = [] {
    auto* m = new std::map<std::string, Script, std::less<>>;
    for (const ScriptSource& s : EmbeddedScripts()) {
      (*m)[s.name] = Script{s.name, s.text, Sha1Hex(s.text)};
    }
    return m;
  }();
  return *registry;
}

}  // namespace

const Script& GetScript(std::string_view name) {
  const auto& registry = Registry();
  auto it = registry.find(name);
  if (it == registry.end()) {
    std::fprintf(stderr, "conveyor: no embedded Lua script named %.*s\n",
                 static_cast<int>(name.size()), name.data());
    std::abort();
  }
  return it->second;
}

}  // namespace conveyor::queue::internal
