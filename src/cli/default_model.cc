#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "cli/commands.h"

namespace flashneox {

std::string default_model_dir() {
  namespace fs = std::filesystem;
  if (const char* env = std::getenv("FLASHNEOX_MODEL"); env && *env) return env;
  const fs::path relative = "models/neox-shakespeare";
  char exe[4096];
  const ssize_t n = ::readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (n > 0) {
    exe[n] = '\0';
    for (fs::path dir = fs::path(exe).parent_path(); !dir.empty() && dir != dir.root_path();
         dir = dir.parent_path())
      if (fs::exists(dir / relative / "config.json")) return (dir / relative).string();
  }
  return relative.string();
}

}  // namespace flashneox
