// The flashneox subcommands: each one's flags (flags.h) and its entry point,
// which takes the arguments after its name and returns the exit code; errors
// are thrown as flashneox::Error.
#pragma once

#include <string>
#include <vector>

#include "cli/flags.h"

namespace flashneox {

int run_logits(int argc, char** argv);
int run_tokenize(int argc, char** argv);
int run_generate(int argc, char** argv);
int run_perplexity(int argc, char** argv);
int run_serve(int argc, char** argv);
int run_bench(int argc, char** argv);

Flags logits_flags();
Flags tokenize_flags();
Flags generate_flags();
Flags perplexity_flags();
Flags serve_flags();
Flags bench_flags();

struct Command {
  const char* name;
  int (*run)(int, char**);
  Flags (*flags)();
  const char* summary;  // one line
};
const std::vector<Command>& commands();

// The bundled model: $FLASHNEOX_MODEL, else models/neox-shakespeare beside the
// binary's build folder, else under the current directory.
std::string default_model_dir();

}  // namespace flashneox
