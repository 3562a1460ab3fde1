// The flashneox subcommands. Each takes the arguments after its name and
// returns the process exit code; errors are thrown as flashneox::Error.
#pragma once

#include <string>

namespace flashneox {

int run_logits(int argc, char** argv);
int run_tokenize(int argc, char** argv);
int run_generate(int argc, char** argv);
int run_perplexity(int argc, char** argv);
int run_serve(int argc, char** argv);
int run_bench(int argc, char** argv);

// The bundled model: $FLASHNEOX_MODEL, else models/neox-shakespeare beside the
// binary's build folder, else under the current directory.
std::string default_model_dir();

}  // namespace flashneox
