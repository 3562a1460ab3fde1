#include "cli/command_line.h"

#include <cstdio>
#include <cstring>
#include <exception>

#ifndef FLASHNEOX_VERSION
#define FLASHNEOX_VERSION "dev"
#endif

#include "cli/commands.h"
#include "core/error.h"
#include "distributed/tensor_parallel_job.h"

namespace flashneox {
namespace {

void usage(FILE* out) {
  std::fprintf(out, "usage: flashneox <command> [options]   (flashneox <command> --help, flashneox --version)\n\ncommands:\n");
  for (const Command& c : commands()) std::fprintf(out, "  %-11s %s\n", c.name, c.summary);
}

}  // namespace

int run_command_line(int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (std::strcmp(argv[1], "--version") == 0) {
    std::printf("flashneox %s\n", FLASHNEOX_VERSION);
    return 0;
  }
  for (const Command& c : commands()) {
    if (std::strcmp(argv[1], c.name) != 0) continue;
    for (int i = 2; i < argc; ++i)
      if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) {
        std::fputs(help_text(c.name, c.summary, c.flags()).c_str(), stdout);
        return 0;
      }
    try {
      return c.run(argc, argv);
    } catch (const Error& e) {
      std::fprintf(stderr, "flashneox %s: error: %s\n", c.name, e.what());
      return 1;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "flashneox %s: internal error: %s\n", c.name, e.what());
      return 1;
    }
  }
  std::fprintf(stderr, "flashneox: unknown command '%s'\n\n", argv[1]);
  usage(stderr);
  return 2;
}

int run_tensor_parallel_command_line(Communicator& world, int argc, char** argv) {
  set_tensor_parallel_world(&world);
  if (world.rank() != 0) return run_tensor_parallel_worker(world);
  const int status = run_command_line(argc, argv);
  stop_tensor_parallel_workers(world);
  set_tensor_parallel_world(nullptr);
  return status;
}

}  // namespace flashneox
