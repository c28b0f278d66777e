// conveyor: one binary, subcommands (DESIGN.md §1).
#include <cstdio>

#include "app/config.h"

int main(int argc, char** argv) {
  auto cfg = conveyor::app::LoadConfigFromEnvironment();
  if (!cfg) {
    std::fprintf(stderr, "conveyor: %s\n", cfg.status().message().c_str());
    return 2;
  }
  return 0;
}
