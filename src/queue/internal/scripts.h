// File: queue/internal/scripts.h
//
// The queue's Lua scripts (src/queue/lua/*.lua), embedded at build time by
// embed_lua.cmake, with their SHA-1 for EVALSHA.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace conveyor::queue::internal {

struct ScriptSource {
  const char* name;  // file stem, e.g. "move_to_active"
  const char* text;
};

// Every script in src/queue/lua, in CMake's list order (generated).
const std::vector<ScriptSource>& EmbeddedScripts();

struct Script {
  std::string name;
  std::string text;
  std::string sha1;  // lowercase hex, as SCRIPT LOAD answers
};

// The script named `name`; aborts (a build error, really) if there is none.
const Script& GetScript(std::string_view name);

}  // namespace conveyor::queue::internal
